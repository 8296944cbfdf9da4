"""LoRA checkpoints: the adapter (PEFT's own save), optimizer, scheduler, RNG and data position.

``OUT/checkpoints/step_00000100/`` holds

- ``adapter/``: ``save_pretrained`` of the PEFT model: LoRA matrices and the trained embedding and
  output weights (so every checkpoint is also a usable adapter);
- ``training_state.pt``: optimizer, LR scheduler and loss scaler states, and the names of the trained
  parameters in optimizer order (tensors and plain data only: read with ``weights_only=True``);
- ``rng_state.safetensors``: the RNG states;
- ``trainer_state.json``: step, samples consumed (the data position), the run's identity and settings,
  a checksum of every trained tensor and the manifest of the folder's files. Written last, atomically:
  its presence marks the checkpoint complete (`persianllama.run.checkpoint`, shared by every track).

Resume loads the adapter back with peft's ``set_peft_model_state_dict``, then checks that *every*
trained tensor was restored and matches its checksum; a checkpoint that restored anything less fails
loudly instead of silently training fresh LoRA matrices (the failure the Chinese-LLaMA-Alpaca and
peft issue trackers are full of).
"""

from __future__ import annotations

import logging
from pathlib import Path

from persianllama.errors import UserError
from persianllama.run import checkpoint as ckpt

log = logging.getLogger(__name__)

TRAINING_STATE = "training_state.pt"
RNG_STATE = "rng_state.safetensors"


def checksums(named) -> dict[str, float]:
    """Sum of |x| of each trained tensor, in float64: identical after an exact restore."""
    import torch

    with torch.no_grad():
        return {n: float(p.detach().double().abs().sum().item()) for n, p in named}


def save(root: Path, net, optimizer, scheduler, scaler, state: dict, *, save_embedding_layers: bool,
         keep_last: int) -> Path:
    """Write checkpoint ``step_<state['step']>`` (a no-op if that step is already complete)."""
    import torch

    from persianllama.lora.model import trainable

    step = int(state["step"])
    path = root / ckpt.tag_for(step)
    if ckpt.is_complete(path):
        return path
    path = ckpt.prepare(root, step)
    net.save_pretrained(str(path / "adapter"), save_embedding_layers=save_embedding_layers)
    named = trainable(net)
    torch.save({
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "param_names": [n for n, _ in named],
    }, path / TRAINING_STATE)
    ckpt.save_rng(path / RNG_STATE)
    ckpt.finalize(path, {**state, "checksums": checksums(named)})
    ckpt.prune(root, keep_last)
    return path


def load(path: Path, net, optimizer, scheduler, scaler, device: str) -> dict:
    """Restore adapter, optimizer, scheduler, scaler and RNG from `path`; return its trainer state."""
    from peft.utils import set_peft_model_state_dict

    from persianllama.lora.model import trainable

    state = ckpt.read_state(path)
    extra = ckpt.safe_torch_load(path / TRAINING_STATE)  # before anything is changed: a refusal leaves all as it was
    adapter = path / "adapter"
    weights = adapter / "adapter_model.safetensors"
    if not weights.is_file():
        raise UserError(f"checkpoint {path} has no adapter/adapter_model.safetensors; it cannot be resumed")
    from safetensors.torch import load_file

    result = set_peft_model_state_dict(net, load_file(str(weights), device=device))
    named = trainable(net)
    names = {n for n, _ in named}
    missing = sorted(n for n in getattr(result, "missing_keys", []) if n in names)
    unexpected = list(getattr(result, "unexpected_keys", []))
    if missing or unexpected:
        raise UserError(f"checkpoint {path}: the adapter does not fit this model (missing trained tensors: "
                        f"{missing[:3]}, unexpected: {unexpected[:3]}); resume with the settings it was written with")
    saved_sums = state.get("checksums", {})
    now = checksums(named)
    wrong = [n for n in names if n in saved_sums and saved_sums[n] != now[n]]
    if wrong or (saved_sums and set(saved_sums) != names):
        raise UserError(f"checkpoint {path}: {len(wrong) or len(set(saved_sums) ^ names)} trained tensor(s) were not "
                        f"restored exactly (e.g. {(wrong or sorted(set(saved_sums) ^ names))[:2]}); is the adapter "
                        "folder from another run?")
    if not isinstance(extra, dict) or extra.get("param_names") != [n for n, _ in named]:
        raise UserError(f"checkpoint {path}: the optimizer was saved for other parameters; resume with the same "
                        "lora and embedding settings")
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    if scaler is not None and extra.get("scaler"):
        scaler.load_state_dict(extra["scaler"])
    ckpt.load_rng(path / RNG_STATE)
    return state
