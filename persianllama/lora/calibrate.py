"""The memory plan against measurement: LoRA steps measured part by part, and the plan's error per part.

`benchmarks/gpu_check.py` measures (on a GPU, or at a smoke size on CPU) and writes the measurements into
its results JSON; ``persianllama plan --calibrate RESULTS.json`` reads them back and prints the error of
*this* code's plan for every part, so a user with another GPU (or a later version of the plan) can check
it against a real card.

What is measured, and how it maps onto the plan's parts (`persianllama.lora.plan`):

- on CUDA, from the caching allocator (``torch.cuda.memory_allocated``), as deltas: **weights** after
  the frozen base is built and prepared for k-bit training (peft upcasts the non-quantized weights to
  fp32); **adapter** after the LoRA matrices (and trained embedding copies) are attached; **gradients**
  after the first backward pass; **optimizer** after the first optimizer step. Per (seq, micro-batch)
  point, the **allocator peak** of whole training steps (``max_memory_allocated``, what the trainer
  reports) and the **device peak** (peak reserved memory plus what CUDA holds outside torch's allocator,
  to set against the plan's total with its margin). **activations** = allocator peak minus the four
  static parts: the plan's saved activations plus its backward transient.
- on CPU there are no allocator statistics: the static parts are the bytes of the real tensors
  (parameters, buffers, bitsandbytes' quantization statistics, gradients, optimizer state); peaks are
  not measured.

Errors are ``predicted / measured - 1`` (positive: the plan over-predicts), the sign convention of the
trainer's own ``plan_error``.

A 13B-shaped model needs no checkpoint: `random_quantized_llama` builds the LLaMA on the meta device and
gives each projection random fp16 weights on the target device, quantized at once the way bitsandbytes
quantizes a loaded checkpoint, so neither the host nor the GPU ever holds the full-precision model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from persianllama.errors import UserError
from persianllama.lora.plan import GIB, Arch, PlanInputs, estimate

STATIC_PARTS = ("weights", "adapter", "gradients", "optimizer")
"""Measured once per model: they do not depend on the sequence length or micro-batch."""
POINT_PARTS = ("activations", "allocator_peak", "device_peak")
"""Measured per (seq, micro-batch) point."""
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


# --------------------------------------------------------------------------------------------------
# A quantized LLaMA of any shape, without a checkpoint


def random_quantized_llama(config, *, device: str, dtype: str = "bf16", seed: int = 0, init_std: float | None = None,
                           threshold: float = 6.0, weights: Callable[[str, tuple], Any] | None = None):
    """A ``LlamaForCausalLM`` of `config`'s shape with LLM.int8 projections, as ``from_pretrained(...,
    quantization_config=BitsAndBytesConfig(load_in_8bit=True))`` returns it, but with random weights.

    Built on the meta device; then every projection gets fp16 weights on `device` (normal, std
    `init_std` or the config's ``initializer_range``; or ``weights(name, shape)`` when given, for tests),
    quantized row-wise at once by ``bitsandbytes.functional.int8_vectorwise_quant`` (what ``Int8Params``
    does to a loaded checkpoint); embeddings, output layer and norms are made in `dtype` (the load dtype;
    peft's k-bit preparation upcasts them later). The largest full-precision tensor alive at any time is
    one projection, so a 13B shape needs ~14 GB of GPU memory and almost no host memory.
    """
    import bitsandbytes as bnb
    import torch
    from transformers import LlamaForCausalLM
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    from persianllama.run.device import torch_dtype

    dev = torch.device(device)
    load_dtype = torch_dtype(dtype)
    std = config.initializer_range if init_std is None else init_std
    gen = torch.Generator(device=dev).manual_seed(seed)
    config._attn_implementation = getattr(config, "_attn_implementation", None) or "sdpa"
    with torch.device("meta"):
        model = LlamaForCausalLM(config)

    def values(name: str, shape: tuple, out_dtype) -> torch.Tensor:
        if weights is not None:
            return weights(name, shape).to(device=dev, dtype=out_dtype)
        if name.endswith("norm.weight"):
            return torch.ones(shape, device=dev, dtype=out_dtype)
        return torch.randn(shape, device=dev, dtype=out_dtype, generator=gen).mul_(std)

    for prefix, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if child_name in PROJECTIONS and type(child) is torch.nn.Linear:
                name = f"{prefix}.{child_name}"
                q = bnb.nn.Linear8bitLt(child.in_features, child.out_features, bias=child.bias is not None,
                                        has_fp16_weights=False, threshold=threshold, device="meta")
                w = values(f"{name}.weight", (child.out_features, child.in_features), torch.float16)
                cb, scb, _ = bnb.functional.int8_vectorwise_quant(w)
                del w
                q.weight = bnb.nn.Int8Params(cb, requires_grad=False, has_fp16_weights=False, CB=cb, SCB=scb)
                if child.bias is not None:
                    q.bias = torch.nn.Parameter(values(f"{name}.bias", tuple(child.bias.shape), load_dtype))
                setattr(module, child_name, q)
    for prefix, module in model.named_modules():
        for pname, p in list(module._parameters.items()):
            if p is not None and p.is_meta:
                full = f"{prefix}.{pname}" if prefix else pname
                module._parameters[pname] = torch.nn.Parameter(values(full, tuple(p.shape), load_dtype))
    model.model.rotary_emb = LlamaRotaryEmbedding(config).to(dev)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"tensors left on the meta device: {', '.join(left[:5])}")
    # What transformers' bitsandbytes quantizer marks on a model it loaded in 8-bit (peft reads these).
    model.is_loaded_in_8bit = True
    model.is_quantized = True
    model.quantization_method = "bitsandbytes"
    model.config.use_cache = False
    return model.eval()  # from_pretrained returns eval mode; the trainer switches to train()


# --------------------------------------------------------------------------------------------------
# Measuring


def tensor_bytes(tensors) -> int:
    """Bytes of distinct tensors (a storage shared by two names counts once)."""
    seen, total = set(), 0
    for t in tensors:
        if t is None or t.numel() == 0:
            continue
        key = (t.untyped_storage().data_ptr(), t.dtype, tuple(t.shape), t.storage_offset())
        if key not in seen:
            seen.add(key)
            total += t.numel() * t.element_size()
    return total


def quantization_statistics(net) -> list:
    """What bitsandbytes keeps beside quantized weights: int8 row scales (on the weight before the first
    forward, on the layer's state after it); 4-bit absmax and code books."""
    out = []
    for m in net.modules():
        name = type(m).__name__
        if name == "Linear8bitLt":
            out.append(getattr(m.weight, "SCB", None))
            out.append(getattr(getattr(m, "state", None), "SCB", None))
        elif name == "Linear4bit" and getattr(m.weight, "quant_state", None) is not None:
            qs = m.weight.quant_state
            out += [qs.absmax, qs.code, getattr(qs, "offset", None)]
            if getattr(qs, "state2", None) is not None:
                out += [qs.state2.absmax, qs.state2.code]
    return [t for t in out if t is not None]


def frozen_bytes(net) -> int:
    """The plan's `weights`: every frozen parameter and buffer plus quantization statistics."""
    frozen = tensor_bytes(p for p in net.parameters() if not p.requires_grad)
    return frozen + tensor_bytes(quantization_statistics(net)) + tensor_bytes(b for _, b in net.named_buffers())


def trained_bytes(net) -> int:
    """The plan's `adapter`: LoRA matrices and trained embedding copies."""
    return tensor_bytes(p for p in net.parameters() if p.requires_grad)


def gradient_bytes(net) -> int:
    return tensor_bytes(p.grad for p in net.parameters() if p.requires_grad)


def optimizer_bytes(optimizer) -> int:
    import torch

    return tensor_bytes(t for st in optimizer.state.values() for t in st.values() if torch.is_tensor(t))


def device_used_outside_allocator() -> int:
    """CUDA context, cuBLAS/cuDNN handles and other memory outside torch's caching allocator, now."""
    import torch

    free, total = torch.cuda.mem_get_info()
    return max(0, int(total - free - torch.cuda.memory_reserved()))


# --------------------------------------------------------------------------------------------------
# Comparing


def plan_inputs_from_dict(d: dict, where: str) -> PlanInputs:
    """The `PlanInputs` a measurement recorded (``Plan.to_dict()["inputs"]``); keys this version does not know
    are ignored, a missing key is refused."""
    if not isinstance(d, dict) or not isinstance(d.get("arch"), dict):
        raise UserError(f"{where}: no plan inputs with an architecture (plan_inputs.arch); was it written by "
                        "benchmarks/gpu_check.py?")
    arch_keys = {f.name for f in fields(Arch)}
    input_keys = {f.name for f in fields(PlanInputs)}
    try:
        arch = Arch(**{k: v for k, v in d["arch"].items() if k in arch_keys})
        kwargs = {k: v for k, v in d.items() if k in input_keys and k != "arch"}
        if "target_modules" in kwargs:
            kwargs["target_modules"] = tuple(kwargs["target_modules"])
        return PlanInputs(arch=arch, **kwargs)
    except TypeError as e:
        raise UserError(f"{where}: the recorded plan inputs do not fit this version's plan ({e})") from None


@dataclass
class Row:
    part: str
    """The results part that measured it (e.g. lora-13b-8bit)."""
    quantity: str
    """weights, adapter, gradients, optimizer, activations, allocator_peak, device_peak."""
    point: str
    """seq x micro-batch, or "-" for the static parts."""
    predicted: float
    measured: float
    method: str
    """allocator, device or tensors."""

    @property
    def error(self) -> float:
        return self.predicted / self.measured - 1 if self.measured else math.inf

    def to_dict(self) -> dict:
        return {"part": self.part, "quantity": self.quantity, "point": self.point,
                "predicted_bytes": int(self.predicted), "measured_bytes": int(self.measured),
                "error": round(self.error, 4), "method": self.method}


def predicted_parts(inputs: PlanInputs) -> dict[str, float]:
    """The plan's numbers for what is measured (this version of the plan)."""
    plan = estimate(inputs)
    p = plan.parts
    return {"weights": p["weights"], "adapter": p["adapter"], "gradients": p["gradients"],
            "optimizer": p["optimizer"], "activations": p["activations"] + p["backward_transient"],
            "allocator_peak": plan.allocator_peak, "device_peak": plan.total}


def _number(value, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise UserError(f"{where}: {value!r} is not a byte count")
    return float(value)


def compare(results: dict, source: str = "results") -> list[Row]:
    """Rows of plan against measurement for every part of `results` that holds a ``memory`` block."""
    parts = results.get("parts") if isinstance(results, dict) else None
    if not isinstance(parts, dict):
        raise UserError(f"{source}: no 'parts' object; pass the gpu_check.json that benchmarks/gpu_check.py wrote")
    rows: list[Row] = []
    for name, part in parts.items():
        memory = part.get("memory") if isinstance(part, dict) else None
        if not isinstance(memory, dict):
            continue
        method = str(memory.get("method", "allocator"))
        points = memory.get("points") or []
        if not isinstance(points, list):
            raise UserError(f"{source}: parts.{name}.memory.points is not a list")
        static = memory.get("static") or {}
        static_done = False
        for i, pt in enumerate(points):
            where = f"{source}: parts.{name}.memory.points[{i}]"
            if not isinstance(pt, dict) or pt.get("status", "ok") != "ok":
                continue
            inputs = plan_inputs_from_dict(pt.get("plan_inputs"), where)
            pred = predicted_parts(inputs)
            label = f"{inputs.seq_len}x{inputs.micro_batch}"
            if not static_done:  # the same for every point: shown once
                for q in STATIC_PARTS:
                    m = _number(static.get(q), f"{source}: parts.{name}.memory.static.{q}")
                    if m:
                        rows.append(Row(name, q, "-", pred[q], m, method))
                static_done = True
            measured = pt.get("measured") or {}
            for q in POINT_PARTS:
                m = _number(measured.get(q), f"{where}.measured.{q}")
                if m:
                    rows.append(Row(name, q, label, pred[q], m, "device" if q == "device_peak" else method))
    return rows


def load_results(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "gpu_check.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"--calibrate {path}: file not found (benchmarks/gpu_check.py writes "
                        "OUTPUT/gpu_check.json)") from None
    except UnicodeDecodeError:
        raise UserError(f"--calibrate {path}: not a UTF-8 text file (expected gpu_check.json)") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"--calibrate {path}: not valid JSON ({e.msg}, line {e.lineno})") from None


def _gib(x: float) -> str:
    return f"{x / GIB:.2f} GiB" if x >= 0.01 * GIB else f"{x / 1024**2:.2f} MiB"


LABELS = {"weights": "weights (frozen)", "adapter": "adapter + embeddings", "gradients": "gradients",
          "optimizer": "optimizer state", "activations": "activations + transient",
          "allocator_peak": "allocator peak", "device_peak": "device peak vs plan total"}


def format_rows(rows: list[Row], header: str) -> str:
    lines = [header, f"  {'part':<16}{'quantity':<27}{'seq x mb':>9}{'predicted':>13}{'measured':>13}{'error':>9}"
                     "  method"]
    for r in rows:
        lines.append(f"  {r.part:<16}{LABELS.get(r.quantity, r.quantity):<27}{r.point:>9}{_gib(r.predicted):>13}"
                     f"{_gib(r.measured):>13}{100 * r.error:>+8.1f}%  {r.method}")
    worst = max(rows, key=lambda r: abs(r.error))
    lines.append(f"  largest error: {100 * worst.error:+.1f}% ({LABELS.get(worst.quantity, worst.quantity)}, "
                 f"{worst.part} {worst.point}); positive = the plan predicts more than was measured")
    return "\n".join(lines)


def calibrate(path: str | Path) -> tuple[list[Row], str]:
    """The rows and the printed report for a results file."""
    results = load_results(path)
    rows = compare(results, str(path))
    if not rows:
        failed = {n: p.get("reason") for n, p in (results.get("parts") or {}).items()
                  if isinstance(p, dict) and "memory" in p and p.get("status") != "ok"}
        why = "; ".join(f"{n}: {r}" for n, r in failed.items()) if failed else "no part measured memory"
        raise UserError(f"--calibrate {path}: holds no memory measurement to compare ({why}); run "
                        "benchmarks/gpu_check.py on the GPU to check")
    device = results.get("device", {}) if isinstance(results.get("device"), dict) else {}
    header = (f"memory plan against measurement ({path}): {device.get('name', 'unknown device')}, "
              f"{results.get('mode', '?')} shapes, measured {results.get('started', '?')}")
    return rows, format_rows(rows, header)


def run_calibrate(path: str, *, as_json: bool = False) -> int:
    """``persianllama plan --calibrate RESULTS.json``."""
    rows, text = calibrate(path)
    if as_json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        print(text)
    return 0
