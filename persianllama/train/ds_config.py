"""DeepSpeed JSON configs: fill their ``"auto"`` values from the training config, refuse contradictions.

The JSON files in ``ds_configs/`` say what only DeepSpeed needs to know (ZeRO stage, offload,
communication buckets) and write ``"auto"`` for everything the training config knows. Here each
``"auto"`` is replaced by the training config's value; a key that is absent is added; an explicit
value that differs from the training config is an error listing every disagreement, so the two can
never silently disagree. An ``"auto"`` that the trainer has no value for is an error too.

Filled keys:

    train_micro_batch_size_per_gpu, gradient_accumulation_steps, train_batch_size   <- batch arithmetic
    gradient_clipping                                                                 <- train.grad_clip
    bf16.enabled, fp16.enabled                                                        <- train.precision
    optimizer.params.{lr, betas, eps, weight_decay}                                   <- train.*
    scheduler.params.* (WarmupCosineLR, WarmupLR, WarmupDecayLR, when a block is given)
    zero_optimization.{reduce_bucket_size, stage3_prefetch_bucket_size,
                       stage3_param_persistence_threshold}      <- model.hidden_size (h^2 with a floor, 10 h)
    steps_per_print                                                                   <- never (we log)

Without a ``scheduler`` block (the shipped files), the schedule is `persianllama.run.schedule`,
handed to DeepSpeed as a client scheduler; a block, if given, takes over with DeepSpeed's own
implementation and conventions.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

from persianllama.errors import UserError
from persianllama.run.batch import Batch
from persianllama.train.config import TrainConfig

AUTO = "auto"
NEVER_PRINT = 10**9
MIN_BUCKET = 25_000_000  # elements: 100 MB in fp32


def load_ds_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"DeepSpeed config not found: {path} (see ds_configs/ for zero0..zero3_offload.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"DeepSpeed config {path} is not valid JSON: line {e.lineno}: {e.msg}") from e
    if not isinstance(data, dict):
        raise UserError(f"DeepSpeed config {path} must be a JSON object")
    zero_stage(data, source=str(path))  # checked before the engine starts
    return data


def zero_stage(ds: dict, source: str = "the DeepSpeed config") -> int:
    """The ZeRO stage (0-3) of a DeepSpeed config; anything else is refused in one line."""
    zo = ds.get("zero_optimization") or {}
    if not isinstance(zo, dict):
        raise UserError(f"{source}: zero_optimization must be a JSON object, got {zo!r}")
    stage = zo.get("stage", 0)
    if isinstance(stage, bool) or not isinstance(stage, int) or not 0 <= stage <= 3:
        raise UserError(f"{source}: zero_optimization.stage={stage!r} is not a ZeRO stage; use 0, 1, 2 or 3")
    return stage


def _same(theirs: Any, ours: Any) -> bool:
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return bool(theirs) == bool(ours) and isinstance(theirs, bool)
    if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)):
        return math.isclose(float(theirs), float(ours), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(ours, (list, tuple)) and isinstance(theirs, (list, tuple)):
        return len(ours) == len(theirs) and all(_same(a, b) for a, b in zip(theirs, ours))
    return theirs == ours


class _Filler:
    def __init__(self, source: str):
        self.source = source
        self.problems: list[str] = []

    def settle(self, node: dict, key: str, ours: Any, setting: str, path: str, *, add: bool = True) -> None:
        """Fill `node[key]` if "auto" (or absent and `add`); record a contradiction otherwise."""
        if key not in node:
            if add:
                node[key] = ours
            return
        if node[key] == AUTO:
            node[key] = ours
        elif not _same(node[key], ours):
            self.problems.append(
                f'{path}{key} is {json.dumps(node[key])} but {setting} gives {json.dumps(ours)} '
                f'(write "auto" there, or change {setting.split("=")[0]})'
            )


def _leftover_autos(node: Any, path: str = "") -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leftover_autos(v, f"{path}{k}.")]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _leftover_autos(v, f"{path}{i}.")]
    return [path.rstrip(".")] if node == AUTO else []


def fill_ds_config(raw: dict, *, train: TrainConfig, batch: Batch, precision: str, hidden_size: int,
                   source: str = "ds_config") -> dict:
    """`raw` with every "auto" filled from the training config; UserError on any contradiction."""
    ds = copy.deepcopy(raw)
    f = _Filler(source)
    gb_setting = ("train.global_batch_size" if train.global_batch_size is not None
                  else "micro_batch_size x grad_accum_steps x world size")
    f.settle(ds, "train_micro_batch_size_per_gpu", batch.micro, f"train.micro_batch_size={batch.micro}", "")
    f.settle(ds, "gradient_accumulation_steps", batch.accum, f"train.grad_accum_steps={batch.accum}", "")
    f.settle(ds, "train_batch_size", batch.global_batch, f"{gb_setting}={batch.global_batch}", "")
    f.settle(ds, "gradient_clipping", float(train.grad_clip), f"train.grad_clip={train.grad_clip}", "")
    if ds.get("steps_per_print", AUTO) == AUTO:
        ds["steps_per_print"] = NEVER_PRINT

    p_setting = f"train.precision={precision}"
    bf16_key = "bfloat16" if "bfloat16" in ds and "bf16" not in ds else "bf16"
    for key, want in ((bf16_key, precision == "bf16"), ("fp16", precision == "fp16")):
        block = ds.get(key)
        if block is None:
            if want:
                ds[key] = {"enabled": True}
            continue
        if not isinstance(block, dict):
            f.problems.append(f"{key} must be an object")
            continue
        f.settle(block, "enabled", want, p_setting, f"{key}.")

    opt = ds.setdefault("optimizer", {"type": "AdamW", "params": {"torch_adam": True}})
    params = opt.setdefault("params", {})
    f.settle(params, "lr", train.lr, f"train.lr={train.lr}", "optimizer.params.")
    f.settle(params, "weight_decay", train.weight_decay, f"train.weight_decay={train.weight_decay}", "optimizer.params.")
    if str(opt.get("type", "")).lower() in ("adam", "adamw", "cpuadam", "fusedadam", "onebitadam", "zerooneadam"):
        f.settle(params, "betas", [train.beta1, train.beta2], f"train.beta1/beta2=[{train.beta1}, {train.beta2}]",
                 "optimizer.params.")
        f.settle(params, "eps", train.eps, f"train.eps={train.eps}", "optimizer.params.")

    sched = ds.get("scheduler")
    if sched is not None:
        _fill_scheduler(f, sched, train)

    zero = ds.get("zero_optimization")
    if isinstance(zero, dict):
        # The HF Trainer's rule (h^2, 0.9 h^2, 10 h), with a floor: for small models h^2 buckets are so
        # small that every few parameters cost a collective call (measured: 10-15% of a tiny model's step).
        h = hidden_size
        bucket = max(h * h, MIN_BUCKET)
        for key, value in (("reduce_bucket_size", bucket), ("stage3_prefetch_bucket_size", int(0.9 * bucket)),
                           ("stage3_param_persistence_threshold", 10 * h)):
            if zero.get(key) == AUTO:
                zero[key] = value

    f.problems.extend(f'{p} is "auto" but the training config has no value for it; give a number'
                      for p in _leftover_autos(ds))
    if f.problems:
        raise UserError(f"DeepSpeed config {source} contradicts the training config: " + "; ".join(f.problems))
    return ds


def _fill_scheduler(f: _Filler, sched: dict, train: TrainConfig) -> None:
    kind = sched.get("type")
    params = sched.setdefault("params", {})
    path = "scheduler.params."
    warm = max(1, train.warmup_steps)
    if kind == "WarmupCosineLR":
        f.settle(params, "total_num_steps", train.max_steps, f"train.max_steps={train.max_steps}", path)
        f.settle(params, "warmup_num_steps", warm, f"train.warmup_steps={warm}", path)
        f.settle(params, "warmup_min_ratio", 0.0, "warmup from 0", path)
        f.settle(params, "cos_min_ratio", train.min_lr / train.lr, f"train.min_lr/train.lr={train.min_lr / train.lr}",
                 path)
        f.settle(params, "warmup_type", "linear", "linear warmup", path)
    elif kind in ("WarmupLR", "WarmupDecayLR"):
        f.settle(params, "warmup_min_lr", 0.0, "warmup from 0", path)
        f.settle(params, "warmup_max_lr", train.lr, f"train.lr={train.lr}", path)
        f.settle(params, "warmup_num_steps", warm, f"train.warmup_steps={warm}", path)
        f.settle(params, "warmup_type", "linear", "linear warmup", path)
        if kind == "WarmupDecayLR":
            f.settle(params, "total_num_steps", train.max_steps, f"train.max_steps={train.max_steps}", path)
    elif _leftover_autos(params):
        f.problems.append(f'scheduler type {kind!r} has "auto" values the trainer cannot fill '
                          "(it fills WarmupCosineLR, WarmupLR, WarmupDecayLR); give numbers or drop the block "
                          "to use the training config's warmup + cosine schedule")
