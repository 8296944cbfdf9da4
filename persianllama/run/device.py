"""One rule for device and precision, used by every track and by the memory plan.

auto: bf16 where the device has it natively (CUDA capability 8.0+: A100, H100, RTX 30xx+), fp16 with dynamic
loss scaling on older GPUs (T4, V100), fp32 on CPU. An explicit choice the device cannot honour is refused in
one line that names the setting.
"""

from __future__ import annotations

import os

from persianllama.errors import UserError


def device_type(requested: str = "auto", *, key: str = "train.device") -> str:
    """cuda or cpu: the GPU if there is one (auto), refusing cuda where none is visible."""
    import torch

    has_cuda = torch.cuda.is_available()
    if requested == "cuda" and not has_cuda:
        raise UserError(f"{key}=cuda but no CUDA GPU is visible (torch.cuda.is_available() is False); "
                        f"use {key}=auto or cpu")
    if requested == "cpu":
        return "cpu"
    return "cuda" if has_cuda else "cpu"


def free_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_supported(device: str) -> bool:
    """Native bf16: CUDA compute capability >= 8.0 (Ampere+); on CPU, avx512_bf16/amx_bf16 (x86) or bf16 (Arm)."""
    import torch

    if device == "cuda":
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # older torch
            return torch.cuda.get_device_capability()[0] >= 8
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16", "bf16"})


def device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name()
    return "CPU"


def precision_rule(requested: str, device: str, has_bf16: bool) -> str:
    """The rule itself, for a device described rather than present (the memory plan of a GPU run made on a
    laptop): auto is bf16 where there is native bf16, fp16 on other GPUs, fp32 on CPU."""
    if requested != "auto":
        return requested
    if device == "cuda":
        return "bf16" if has_bf16 else "fp16"
    return "fp32"


def choose_precision(requested: str, device: str, *, key: str = "train.precision") -> str:
    """fp32, bf16 or fp16 for `requested` (auto/fp32/bf16/fp16) on `device`; a one-line refusal otherwise.

    Also the rule for the storage dtype of weights that are not trained (`model.dtype` of the LoRA track)."""
    if requested == "auto":
        return precision_rule(requested, device, device == "cuda" and bf16_supported(device))
    if requested == "bf16" and not bf16_supported(device):
        hint = "fp16 (with loss scaling)" if device == "cuda" else "fp32"
        raise UserError(
            f"{key}=bf16 but this device ({device_name(device)}) has no native bf16 (needs an Ampere or newer "
            f"GPU, or a CPU with avx512_bf16/amx); use {key}={hint.split()[0]} or auto ({hint})")
    if requested == "fp16" and device == "cpu":
        raise UserError(f"{key}=fp16 is not supported on CPU (no fp16 kernels or loss scaling there); "
                        "use fp32, or auto")
    return requested


TORCH_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
"""Our precision names -> torch dtype names (`getattr(torch, TORCH_DTYPES[p])`)."""


def torch_dtype(precision: str):
    import torch

    name = TORCH_DTYPES.get(precision, precision)
    if name not in TORCH_DTYPES.values():
        raise UserError(f"unknown precision {precision!r}: use one of fp32, bf16, fp16")
    return getattr(torch, name)


def autocast(device: str, precision: str):
    """The forward pass's autocast context for `precision` (disabled for fp32)."""
    import torch

    if precision == "fp32":
        return torch.autocast(device, enabled=False)
    return torch.autocast(device, dtype=torch_dtype(precision))
