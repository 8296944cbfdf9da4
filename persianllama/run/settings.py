"""The settings sections every training track shares. A track's config composes these (and subclasses
them to change a default or add a field) instead of copying them, so `train.lr`, `checkpoint.resume` or
`log.eval_interval` mean the same thing in every track."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from persianllama.config import Count, NonNeg, NonNegInt, Positive, Range, check_order

Precision = Literal["auto", "fp32", "bf16", "fp16"]
Probability = Annotated[float, Range(0, 1, hi_open=True)]


@dataclass
class TrainSettings:
    """Batch, optimizer, schedule and precision."""

    seq_len: Annotated[int, Range(2)] = 2048
    """Tokens per sequence (the packed block size)."""
    micro_batch_size: Count = 1
    """Sequences per rank per forward/backward pass."""
    grad_accum_steps: Count | None = None
    """Micro steps per optimizer step; None: derived from global_batch_size (or 1)."""
    global_batch_size: Count | None = None
    """Sequences per optimizer step over all ranks; None: micro_batch_size x grad_accum_steps x world size."""
    max_steps: Count = 1000
    """Optimizer steps to train for."""
    lr: Positive = 3e-4
    """Peak learning rate (AdamW)."""
    min_lr: NonNeg = 3e-5
    """Learning rate at the end of the cosine decay (<= lr)."""
    warmup_steps: NonNegInt = 100
    """Linear warmup steps from 0 to lr (step 1 already uses lr/warmup)."""
    weight_decay: NonNeg = 0.1
    """AdamW weight decay, applied to matrices only (not to norms)."""
    beta1: Probability = 0.9
    """AdamW beta1."""
    beta2: Probability = 0.95
    """AdamW beta2."""
    eps: Positive = 1e-8
    """AdamW epsilon."""
    grad_clip: NonNeg = 1.0
    """Clip the global gradient norm to this value; 0: no clipping."""
    precision: Precision = "auto"
    """auto: bf16 on GPUs that have it (Ampere+), fp16 with dynamic loss scaling on older GPUs (T4, V100), fp32 on CPU."""
    seed: int = 1234
    """Seed for initialisation and the data order."""

    def __post_init__(self) -> None:
        check_order(self, "min_lr", "lr")


@dataclass
class CheckpointConfig:
    """Saving and resuming."""

    save_interval: Count = 1000
    """Optimizer steps between checkpoints (one is also written at the end and on SIGTERM/SIGINT)."""
    keep_last: NonNegInt = 3
    """Complete checkpoints to keep; older ones are deleted (0: keep all)."""
    resume: str = "auto"
    """auto: continue from the newest intact checkpoint in out_dir if any (a damaged newer one is reported and passed
    over); none: start fresh; or a checkpoint folder."""
    verify: Literal["hash", "size"] = "hash"
    """How resume checks a checkpoint against the manifest written with it: hash (xxh3-128 of every file, ~5 GB/s)
    or size (file sizes only, instant)."""


@dataclass
class LogSettings:
    """What a run reports."""

    log_interval: Count = 10
    """Optimizer steps between log lines (loss, lr, grad norm, tokens/s, ETA); every step goes to metrics.jsonl."""
    eval_interval: NonNegInt = 500
    """Optimizer steps between validation runs (loss and bits-per-byte on held-out documents); 0: only at the end."""
    eval_docs: NonNegInt = 64
    """Held-out documents scored per validation run (0: no validation)."""
    eval_batch_size: Count = 8
    """Windows per forward pass during validation."""
    tensorboard: bool = True
    """Write TensorBoard logs to out_dir/tensorboard."""
    wandb_project: str | None = None
    """Also log to this Weights & Biases project (needs `pip install wandb`)."""
    progress_bar: bool = True
    """Show a progress bar of the steps (on rank 0, when stderr is a terminal)."""
