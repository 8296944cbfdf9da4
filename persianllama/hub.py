"""Models, tokenizers and adapters by local folder or Hugging Face hub id, with one clear line when neither works.

Every place that loads something by name goes through :func:`from_pretrained` (or :func:`local_dir`
for things read as files, such as a PEFT adapter or a ``tokenizer.model``):

- an existing local path is checked first, and a folder that is not what was asked for is named
  with what it lacks (``no config.json``, ``config.json but no weights``...);
- a hub id is looked up on the hub, or only in the local cache when the machine is offline
  (``HF_HUB_OFFLINE=1``, or the hub's host cannot be reached: checked once with a short connect, so
  an offline machine does not spend ~25 s per file in the hub client's retries); a failure says
  whether the machine is offline or the id does not exist, and how to pass a local folder instead
  (``hf download ID --local-dir DIR``, then pass DIR).

``trust_remote_code`` is never set here: a repository that needs its own Python code is refused by
transformers, with its own message.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlparse

from persianllama.errors import UserError

T = TypeVar("T")
Kind = Literal["model", "config", "tokenizer", "adapter"]
"""model: config.json and weights; config: config.json (memory plans, architecture checks); tokenizer: its
files; adapter: a PEFT save_pretrained folder."""

MODEL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
# The file whose presence in the hub cache means "this id was downloaded before".
_MARKER = {"model": ("config.json",), "config": ("config.json",), "tokenizer": TOKENIZER_FILES,
           "adapter": ("adapter_config.json",)}
_TRUE = {"1", "ON", "YES", "TRUE"}
PROBE_TIMEOUT_S = 3.0


def first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:400]


# --------------------------------------------------------------------------- what a name is


def hub_id(name: str) -> str | None:
    """`name` as a hub repository id (``org/name`` or ``name``), or None if it cannot be one.

    A name that exists on disk, starts with ``.``, ``/`` or ``~``, or breaks the hub's id rules (two
    slashes, ``--``, ``..``, over 96 characters) is not a hub id."""
    if not name or name.startswith((".", "/", "~")) or os.path.exists(name):
        return None
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except Exception:  # noqa: BLE001 - HFValidationError: not a hub id, so a missing local path
        return None
    return name


def offline_reason() -> str | None:
    """Why the hub cannot be asked right now (read at call time), or None when it can."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in _TRUE:
            return f"{var}={os.environ[var].strip()} is set"
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    url = urlparse(endpoint)
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    if not _reachable(host, port):
        return f"{host}:{port} cannot be reached"
    return None


@functools.lru_cache(maxsize=8)
def _reachable(host: str, port: int) -> bool:
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                                        "all_proxy")):
        return True  # the hub client goes through the proxy; a direct connect proves nothing
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def in_cache(repo: str, kind: Kind, cache_dir: str | Path | None = None) -> bool:
    """Whether the hub cache holds the marker file of a `kind` for `repo` (a download made before)."""
    from huggingface_hub import try_to_load_from_cache

    for filename in _MARKER[kind]:
        try:
            found = try_to_load_from_cache(repo, filename, cache_dir=cache_dir)
        except Exception:  # noqa: BLE001 - a broken cache entry is "not cached"
            continue
        if isinstance(found, str):
            return True
    return False


# --------------------------------------------------------------------------- local folders


def _listing(path: Path, limit: int = 6) -> str:
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    except OSError:
        return "it cannot be listed"
    if not names:
        return "it is empty"
    more = f", ... ({len(names)} entries)" if len(names) > limit else ""
    return "it holds " + ", ".join(names[:limit]) + more


def check_local(path: str | Path, kind: Kind, label: str | None = None) -> Path:
    """Refuse, in one line naming what is missing, a local path that is not a `kind` folder."""
    path = Path(path)
    label = label or str(path)
    if not path.exists():
        raise UserError(f"{kind} {label}: no such file or directory")
    if not path.is_dir():
        wanted = {"model": "config.json and the weights", "config": "config.json",
                  "tokenizer": "tokenizer.json or tokenizer.model",
                  "adapter": "adapter_config.json and the adapter weights"}[kind]
        raise UserError(f"{kind} {label} is a file; pass the folder that holds {wanted}")
    if kind in ("model", "config"):
        if not (path / "config.json").is_file():
            raise UserError(f"{label}: not a model folder: no config.json ({_listing(path)}); pass a folder "
                            "written by save_pretrained")
        if kind == "config":
            return path
        weights = [w for w in MODEL_WEIGHTS if (path / w).is_file()]
        if not weights:
            raise UserError(f"{label}: not a model folder: config.json but no weights (none of "
                            f"{', '.join(MODEL_WEIGHTS)}); an unfinished copy or export?")
        for index in (w for w in weights if w.endswith(".index.json")):
            _check_shards(path, index, label)
    elif kind == "tokenizer":
        if not any((path / f).is_file() for f in TOKENIZER_FILES):
            raise UserError(f"{label}: not a tokenizer folder: none of {', '.join(TOKENIZER_FILES)} "
                            f"({_listing(path)})")
    elif kind == "adapter":
        if not (path / "adapter_config.json").is_file():
            raise UserError(f"{label}: no adapter_config.json here ({_listing(path)}); is this a PEFT adapter "
                            "folder (save_pretrained of a PeftModel)?")
        if not any((path / w).is_file() for w in ADAPTER_WEIGHTS):
            raise UserError(f"{label}: not a PEFT adapter folder: adapter_config.json but no "
                            f"{' or '.join(ADAPTER_WEIGHTS)}")
    return path


def _check_shards(path: Path, index: str, label: str) -> None:
    try:
        weight_map = json.loads((path / index).read_text(encoding="utf-8")).get("weight_map", {})
    except (OSError, ValueError, AttributeError) as e:
        raise UserError(f"{label}/{index}: not a readable shard index ({first_line(e)})") from None
    missing = sorted({f for f in weight_map.values() if not (path / f).is_file()})
    if missing:
        raise UserError(f"{label}: {index} names {len(missing)} shard file(s) that are not there, e.g. "
                        f"{missing[0]}; an interrupted copy or download?")


# --------------------------------------------------------------------------- the one way to load by name


def _download_hint(repo: str) -> str:
    return (f"if the id is right, run `hf download {repo} --local-dir DIR` on a machine with network "
            "and pass DIR instead")


def offline_message(repo: str, kind: Kind, reason: str) -> str:
    return (f"{kind} {repo}: no such local folder, and this machine is offline ({reason}), so the hub cannot "
            f"say whether the id exists, and the local hub cache does not hold it; {_download_hint(repo)}")


def failure_message(repo: str, kind: Kind, e: BaseException, offline: str | None = None, context: str = "") -> str:
    """One line for a failed hub load, from the exception chain: offline, no such repository, gated,
    a file the repository lacks, or else the library's first line."""
    from huggingface_hub import errors as hub_errors

    chain: list[BaseException] = []
    cur: BaseException | None = e
    while cur is not None and len(chain) < 20:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__

    def has(*types: type) -> BaseException | None:
        return next((x for x in chain if isinstance(x, types)), None)

    if has(hub_errors.GatedRepoError):
        return (f"{kind} {repo}: the hub repository is gated; accept its terms on its hub page and log in "
                f"(`hf auth login`), or {_download_hint(repo).removeprefix('if the id is right, ')}")
    if has(hub_errors.RepositoryNotFoundError):
        return (f"{kind} {repo}: no such local folder, and the hub has no repository {repo} (or it is private: "
                "log in with `hf auth login`); check the id or pass a local folder")
    if has(hub_errors.RevisionNotFoundError):
        return f"{kind} {repo}: the hub repository has no such revision; check the revision or pass a local folder"
    if offline or has(hub_errors.OfflineModeIsEnabled, hub_errors.LocalEntryNotFoundError, ConnectionError,
                      socket.gaierror, TimeoutError):
        return offline_message(repo, kind, offline or "the hub did not answer")
    missing = has(hub_errors.EntryNotFoundError)
    if missing is not None or "does not appear to have a file named" in str(e):
        return (f"{kind} {repo}: the hub repository has no {' or '.join(_MARKER[kind])}; is it a {kind} "
                f"repository? ({first_line(missing or e)})")
    return f"cannot load {kind} {repo}{context}: {first_line(e)}"


def check(name: str, kind: Kind, cache_dir: str | Path | None = None) -> tuple[str, str | None]:
    """Fail fast, before anything is loaded: a local path must be a `kind` folder; a hub id must be
    askable (online) or in the cache (offline). Returns (what to pass to the loader, offline reason)."""
    name = str(name)
    path = Path(name).expanduser()
    if path.exists():
        check_local(path, kind, name)
        return str(path), None
    repo = hub_id(name)
    if repo is None:
        raise UserError(f"{kind} {name}: no such file or directory")
    reason = offline_reason()
    if reason and not in_cache(repo, kind, cache_dir):
        raise UserError(offline_message(repo, kind, reason))
    return repo, reason


@contextlib.contextmanager
def _no_requests(offline: str | None) -> Iterator[None]:
    """Offline, make every hub request fail at once, so the client reads its cache without retrying.

    ``local_files_only=True`` alone is not enough: transformers 5.x looks for an ``adapter_config.json``
    without passing it on (~25 s of retries per load). The hub client reads its offline switch at import;
    this sets it for the call (the environment variable may have been set after the import)."""
    if not offline:
        yield
        return
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def from_pretrained(loader: Callable[..., T], name: str, kind: Kind, context: str = "", **kwargs: Any) -> T:
    """``loader(name, **kwargs)`` (an ``AutoX.from_pretrained``) with every failure as one UserError line.

    `context` goes after the name in a load failure (`" in 8-bit on cuda"`). Offline, the loader is told
    ``local_files_only=True`` so it reads the cache at once instead of retrying the network."""
    source, offline = check(name, kind, kwargs.get("cache_dir"))
    if offline:
        kwargs["local_files_only"] = True
    try:
        with _no_requests(offline):
            return loader(source, **kwargs)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - libraries raise many types; the user gets one line
        if Path(source).exists():
            raise UserError(f"cannot load {kind} {name}{context}: {first_line(e)}") from None
        raise UserError(failure_message(source, kind, e, offline, context)) from None


def local_dir(name: str, kind: Kind, allow_patterns: list[str] | None = None) -> Path:
    """A local folder for `name`: the path itself, or the hub snapshot of the id (only `allow_patterns`
    downloaded), checked to be a `kind` folder. For things read as files (adapters, tokenizer.model)."""
    source, offline = check(name, kind)
    if Path(source).exists():
        return Path(source)
    from huggingface_hub import snapshot_download

    try:
        with _no_requests(offline):
            folder = Path(snapshot_download(source, allow_patterns=allow_patterns, local_files_only=bool(offline)))
    except Exception as e:  # noqa: BLE001
        raise UserError(failure_message(source, kind, e, offline)) from None
    return check_local(folder, kind, f"{source} (hub snapshot {folder})")
