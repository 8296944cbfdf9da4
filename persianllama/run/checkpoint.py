"""Checkpoint folders, the same in every track: naming, completeness, manifest, discovery, prune, safe loading.

A checkpoint is ``OUT/checkpoints/step_00001000/``. The track writes its files into it (DeepSpeed's
model/optimizer shards, or a PEFT adapter and an optimizer state), then `finalize` (on one process, after
every rank finished writing) fsyncs the folder and writes ``trainer_state.json`` last and atomically. That
file marks the checkpoint complete and holds:

- the track's state (step, data position, last validation ...) and its `identity` / `settings` (see `resume`);
- ``manifest``: the size and xxh3-128 hash of every other file in the folder.

Resume (`find_resumable`) takes the newest complete checkpoint whose files still match its manifest; a
damaged one (truncated, changed, missing file, unreadable state) is reported in one line, moved aside to
``step_N.damaged`` (nothing is deleted), and the next older intact one is used.

Loading never unpickles arbitrary objects: RNG state is safetensors + JSON, and the ``.pt`` files that
torch optimizers and DeepSpeed need are read with ``torch.load(weights_only=True)`` and an explicit
allow-list of the few DeepSpeed classes its checkpoints hold (`safe_torch_load`).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from persianllama.atomic import write_text
from persianllama.errors import UserError

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
LATEST_FILE = "latest"
_TAG = re.compile(r"^step_(\d+)$")
_CHUNK = 8 << 20


class DamagedCheckpoint(UserError):
    """A checkpoint whose files do not match its manifest, or cannot be read; the message names the file."""


def tag_for(step: int) -> str:
    return f"step_{step:08d}"


def is_complete(path: Path) -> bool:
    return (Path(path) / STATE_FILE).is_file()


def read_state(path: Path) -> dict:
    f = Path(path) / STATE_FILE
    try:
        state = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DamagedCheckpoint(f"{f} cannot be read ({type(e).__name__}: {str(e)[:120]})") from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise DamagedCheckpoint(f"{f} is not a trainer state (no integer 'step')")
    return state


def list_checkpoints(root: Path) -> list[tuple[int, Path, bool]]:
    """``(step, folder, complete)`` for every ``step_N`` folder under `root`, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        m = _TAG.match(p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p, is_complete(p)))
    return sorted(out)


# --- the manifest ----------------------------------------------------------------------------------------


def file_hash(path: Path) -> str:
    import xxhash

    h = xxhash.xxh3_128()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != STATE_FILE
                  and not p.name.startswith(f".{STATE_FILE}"))


def manifest(folder: Path) -> dict[str, dict]:
    """``{relative path: {"size", "xxh3_128"}}`` of every file in `folder` but the state file."""
    return {str(p.relative_to(folder)): {"size": p.stat().st_size, "xxh3_128": file_hash(p)} for p in _files(folder)}


def verify(folder: Path, mode: str = "hash") -> dict:
    """The checkpoint's state if every file matches its manifest; `DamagedCheckpoint` naming the first that does not.

    Checkpoints written before manifests existed (no ``manifest`` key) are taken as they are."""
    folder = Path(folder)
    state = read_state(folder)
    files = state.get("manifest")
    if not isinstance(files, dict):
        return state
    for rel, want in files.items():
        f = folder / rel
        if not f.is_file():
            raise DamagedCheckpoint(f"{f} is missing (listed in {folder / STATE_FILE})")
        size = f.stat().st_size
        if size != want.get("size"):
            raise DamagedCheckpoint(f"{f} has {size:,} bytes, the manifest says {want.get('size'):,} (truncated or "
                                    "replaced)")
        if mode == "hash" and want.get("xxh3_128") and file_hash(f) != want["xxh3_128"]:
            raise DamagedCheckpoint(f"{f} does not match the hash in its manifest (changed after it was written)")
    return state


def fsync_tree(path: Path) -> None:
    for f in Path(path).rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prepare(root: Path, step: int) -> Path:
    """The folder for step `step`, empty (a folder left by a cut-off save of that step is replaced)."""
    path = Path(root) / tag_for(step)
    if path.exists():
        shutil.rmtree(path)  # our own step_N folder without a state file: a save that was cut off
    path.mkdir(parents=True)
    return path


def finalize(path: Path, state: dict) -> Path:
    """Mark `path` complete: fsync its files, then write the state with the manifest, atomically, last."""
    path = Path(path)
    fsync_tree(path)
    write_text(path / STATE_FILE, json.dumps({**state, "manifest": manifest(path)}, indent=2, ensure_ascii=False) + "\n")
    write_text(path.parent / LATEST_FILE, path.name)  # DeepSpeed's own tools (zero_to_fp32.py) read `latest`
    return path


def prune(root: Path, keep_last: int) -> None:
    """Keep the newest `keep_last` complete checkpoints (0: all); drop older ones and older cut-off leftovers.
    Only ``step_N`` folders are touched (never ``*.damaged`` ones or anything else in `root`)."""
    found = list_checkpoints(root)
    complete = [p for _, p, ok in found if ok]
    if not complete:
        return
    keep = set(complete[-keep_last:]) if keep_last > 0 else set(complete)
    newest_complete = max(s for s, _, ok in found if ok)
    for step, p, ok in found:
        if (ok and p not in keep) or (not ok and step < newest_complete):
            shutil.rmtree(p, ignore_errors=True)


def _set_aside(path: Path, reason: str) -> None:
    target = path.with_name(path.name + ".damaged")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged{n}")
    try:
        path.rename(target)
        log.warning("checkpoint %s is damaged: %s; moved it to %s and falling back to the newest intact one",
                    path, reason, target.name)
    except OSError:
        log.warning("checkpoint %s is damaged: %s; falling back to the newest intact one", path, reason)


def find_resumable(root: Path, *, verify_mode: str = "hash", set_aside: bool = True) -> tuple[Path, dict] | None:
    """The newest complete checkpoint that passes `verify`, with its state; None when there is none.

    Cut-off saves (no state file) are passed over; damaged ones are reported in one line each and, with
    `set_aside`, renamed so that the run can write that step again (only one process of a run should)."""
    for _step, path, complete in reversed(list_checkpoints(root)):
        if not complete:
            log.warning("skipping incomplete checkpoint %s (no %s: the save was cut off)", path, STATE_FILE)
            continue
        try:
            return path, verify(path, verify_mode)
        except DamagedCheckpoint as e:
            if set_aside:
                _set_aside(path, str(e))
            else:
                log.warning("checkpoint %s is damaged: %s; falling back to the newest intact one", path, e)
    return None


def resolve_checkpoint(path: str | Path, *, verify_mode: str = "hash") -> tuple[Path, dict]:
    """A checkpoint named by the user (run folder, its checkpoints/ folder, or one step_N folder), verified."""
    p = Path(path)
    if is_complete(p):
        return p, verify(p, verify_mode)
    for root in (p / "checkpoints", p):
        if root.is_dir() and list_checkpoints(root):
            found = find_resumable(root, verify_mode=verify_mode, set_aside=False)
            if found is None:
                raise UserError(f"{root} holds no intact checkpoint (each was cut off or is damaged; see above)")
            return found
    if _TAG.match(p.name) and p.is_dir():
        raise UserError(f"checkpoint {p} is incomplete (no {STATE_FILE}: its save was cut off)")
    raise UserError(f"no checkpoint found at {p} (expected a run folder, its checkpoints/ folder or a step_N folder)")


# --- RNG state: safetensors + JSON, never pickle -------------------------------------------------------------


def save_rng(path: Path) -> None:
    """This process's Python, NumPy, torch (and CUDA) RNG states."""
    import torch
    from safetensors.torch import save_file

    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    tensors = {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64))}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda_{i}"] = s
    meta = {"python": json.dumps([py_version, list(py_state), py_gauss]),
            "numpy": json.dumps([np_name, int(np_pos), int(np_has_gauss), float(np_gauss)])}
    save_file(tensors, str(path), metadata=meta)


def load_rng(path: Path) -> None:
    import torch
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        py_version, py_state, py_gauss = json.loads(meta["python"])
        np_name, np_pos, np_has_gauss, np_gauss = json.loads(meta["numpy"])
    except Exception as e:  # noqa: BLE001 - any fault of the file: one line naming it
        raise DamagedCheckpoint(f"{path} is not a readable RNG state ({type(e).__name__}: {str(e)[:120]})") from None
    random.setstate((py_version, tuple(py_state), py_gauss))
    np.random.set_state((np_name, tensors["numpy_keys"].numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda_")), key=lambda k: int(k[5:]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


# --- .pt files without unpickling arbitrary objects ------------------------------------------------------------

# The only non-tensor, non-builtin objects DeepSpeed 0.19 puts in its checkpoints (found by loading ZeRO 0-3
# checkpoints with weights_only=True): its loss scalers, the ZeRO stage enum and optimizer fragment addresses.
DEEPSPEED_ALLOWED = (
    "deepspeed.runtime.fp16.loss_scaler.LossScaler",
    "deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler",
    "deepspeed.runtime.zero.config.ZeroStageEnum",
    "deepspeed.utils.tensor_fragment.fragment_address",
)


def _resolve(names: tuple[str, ...]) -> list:
    import importlib

    out = []
    for name in names:
        module, _, attr = name.rpartition(".")
        try:
            out.append(getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError):
            pass  # not in this version of the library: nothing to allow
    return out


def safe_torch_load(path: str | Path, *, allow: tuple[str, ...] = (), map_location: Any = "cpu",
                    mmap: bool | None = None) -> Any:
    """`torch.load` with ``weights_only=True`` (tensors, containers, numbers, strings) plus the `allow`-listed
    classes; a file holding anything else is refused in one line, before any of it runs."""
    import pickle

    import torch

    try:
        with torch.serialization.safe_globals(_resolve(allow)):
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        found = re.findall(r"GLOBAL ([\w.]+)", str(e)) or re.findall(r"Unsupported operand \d+", str(e))
        what = f" ({found[0]})" if found else ""
        raise UserError(f"{path}: refused to load: it holds a Python object{what} that is not a tensor or plain "
                        "data, and unpickling it could run code; only load checkpoints you made or trust, and "
                        "resume from a clean copy") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise DamagedCheckpoint(f"{path} cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None


def use_safe_deepspeed_loading(engine) -> None:
    """Make `engine.load_checkpoint` read its .pt files through `safe_torch_load` (DeepSpeed's own loader
    calls ``torch.load(weights_only=False)``)."""
    ce = engine.checkpoint_engine

    def load(path, map_location=None):
        return safe_torch_load(path, allow=DEEPSPEED_ALLOWED, map_location=map_location or "cpu")

    ce.load = load
