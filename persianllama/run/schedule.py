"""The learning-rate schedule: linear warmup, then cosine decay to a floor.

Optimizer step ``s`` (counting from 1) uses

    lr(s) = lr * s / warmup                                   for s <= warmup
    lr(s) = min_lr + (lr - min_lr) * (1 + cos(pi * p)) / 2    after, p = (s - warmup) / (max_steps - warmup)

so the first step already moves the weights (DeepSpeed's own WarmupCosineLR and HF's cosine schedule
spend their first step at lr 0), the peak is reached exactly at ``warmup`` and the floor at
``max_steps``. It is handed to DeepSpeed as a client scheduler, whose state DeepSpeed saves and
restores with every checkpoint.
"""

from __future__ import annotations

import math

from persianllama.run.settings import TrainSettings


def lr_at(step: int, lr: float, min_lr: float, warmup: int, max_steps: int) -> float:
    """Learning rate of optimizer step `step` (1-based)."""
    if warmup > 0 and step <= warmup:
        return lr * step / warmup
    if max_steps <= warmup:
        return min_lr
    p = min(1.0, (step - warmup) / (max_steps - warmup))
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * p))


def warmup_cosine(optimizer, train: TrainSettings):
    """A `torch.optim.lr_scheduler.LambdaLR` following `lr_at` (the optimizer's lr is the peak)."""
    from torch.optim.lr_scheduler import LambdaLR

    peak, floor, warmup, total = train.lr, train.min_lr, train.warmup_steps, train.max_steps

    # LambdaLR calls this with the number of scheduler steps taken so far: 0 before the first
    # optimizer step, so step s = taken + 1.
    def factor(taken: int) -> float:
        return lr_at(taken + 1, peak, floor, warmup, total) / peak

    return LambdaLR(optimizer, factor)
