"""The teacher: loaded once, un-merged (base + PEFT adapter), in eval mode, called only under no_grad.

It is loaded by the eval harness's loader (`persianllama.eval.loading.load_model`: hub ids and folders, an
adapter's extended vocabulary, one-line errors), so a teacher is anything `persianllama evaluate` can score.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from persianllama.distill.config import TeacherConfig

log = logging.getLogger("persianllama.distill")


@dataclass
class Teacher:
    model: Any
    tokenizer: Any
    device: str
    info: dict

    def logits(self, input_ids, attention_mask=None):
        """The teacher's logits for a batch of its own token ids (fp32 on return)."""
        import torch

        with torch.no_grad():
            ids = input_ids.to(self.device)
            mask = attention_mask.to(self.device) if attention_mask is not None else None
            return self.model(input_ids=ids, attention_mask=mask).logits.float()


def teacher_dtype(cfg: TeacherConfig, device: str) -> str:
    if cfg.precision != "auto":
        return cfg.precision
    if device == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"


def load_teacher(cfg: TeacherConfig, device: str) -> Teacher:
    from persianllama.eval.loading import load_model

    if cfg.load_in_8bit:
        log.warning("the teacher is loaded in 8-bit: its distributions are noisier than in bf16/fp32, and the "
                    "student learns that noise too (use it when the teacher would not fit otherwise)")
    dtype = teacher_dtype(cfg, device)
    loaded = load_model(cfg.model, adapter=cfg.adapter, tokenizer=cfg.tokenizer, load_in_8bit=cfg.load_in_8bit,
                        dtype=dtype, device=device)
    loaded.model.eval()
    for p in loaded.model.parameters():
        p.requires_grad_(False)
    return Teacher(loaded.model, loaded.tokenizer, device, loaded.info | {"precision": dtype})


def _files_signature(folder: str | None) -> list:
    """Each file's name, size and time (the corpus cache's rule: no full read of a multi-GB model)."""
    from persianllama.data.sources import corpus_fingerprint

    if not folder or not Path(folder).is_dir():
        return [folder]
    return corpus_fingerprint(sorted(p for p in Path(folder).iterdir() if p.is_file()))


def fingerprint(cfg: TeacherConfig) -> str:
    """Which teacher (model, adapter, tokenizer and their files' sizes and times, precision): a cache key part."""
    parts = [cfg.model, _files_signature(cfg.model), cfg.adapter, _files_signature(cfg.adapter), cfg.tokenizer,
             cfg.precision, cfg.load_in_8bit]
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()
