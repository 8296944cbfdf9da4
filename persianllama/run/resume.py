"""What a resumed run must share with the checkpoint it continues, and what it may change.

Each track describes a run by two flat mappings that every checkpoint stores:

- `identity`: what the saved tensors depend on (model shape, vocabulary size, tokenizer hash, LoRA rank,
  ZeRO stage and world size where the shards depend on it ...). A difference is refused before any
  weights are loaded, naming the setting and both values;
- `settings`: what may change between runs (lr, seed, max_steps, val_fraction ...). Differences are
  listed in one warning line, so a changed setting is never silent.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from persianllama.errors import UserError

log = logging.getLogger(__name__)


def _fmt(v: Any) -> str:
    if isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v):
        return v[:12] + "…"  # a hash
    return repr(v)


def check_compatible(checkpoint: Path, saved: dict, *, identity: dict, settings: dict,
                     hint: str = "resume with the settings it was written with, or choose another out_dir") -> list[str]:
    """Refuse an identity mismatch (UserError); return (and log in one line) the changed settings."""
    saved_id = saved.get("identity") or {}
    for key, now in identity.items():
        if key in saved_id and saved_id[key] != now:
            raise UserError(f"cannot resume from {checkpoint}: it was written with {key}={_fmt(saved_id[key])}, this "
                            f"run has {key}={_fmt(now)}; {hint}")
    saved_settings = saved.get("settings") or {}
    changed = [f"{k} {_fmt(saved_settings[k])} -> {_fmt(v)}" for k, v in settings.items()
               if k in saved_settings and saved_settings[k] != v]
    if changed:
        log.warning("resuming from %s with changed settings: %s", checkpoint, ", ".join(changed))
    return changed
