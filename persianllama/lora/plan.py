"""Memory plan for LoRA training: predicted peak device memory, part by part, before anything loads.

Every part is counted tensor by tensor from the architecture (``config.json``), the way the
libraries actually store it, so the static parts are exact rather than rules of thumb:

- **weights**: each frozen projection at its storage precision. LLM.int8 keeps ``out x in`` int8
  bytes plus one fp32 scale per output row (``SCB``); NF4/FP4 keeps half a byte per weight plus
  one absmax per 64 weights (uint8 with double quantization, plus an fp32 per 256 of those; fp32
  without). Everything else (embeddings, output layer, norms, RoPE buffers) is fp32 after peft's
  k-bit preparation (it upcasts fp16/bf16 to fp32), or the load dtype without quantization.
- **adapter**: LoRA's ``A (r x in)`` and ``B (out x r)`` per targeted projection, fp32; plus the
  trained embeddings: ``full`` keeps peft's fp32 trainable *copy* of the embedding and output
  matrices beside the frozen originals; ``new_rows`` keeps the new rows' values and a copy of their
  originals.
- **gradients**: fp32, one per trained parameter.
- **optimizer**: torch AdamW keeps two fp32 moments (8 bytes per trained parameter). bitsandbytes'
  AdamW8bit keeps two uint8 moments plus one fp32 absmax per 256 values and two 256-entry maps,
  but only for tensors of at least ``min_8bit_size`` elements; smaller tensors (most LoRA matrices of
  small models) keep fp32 moments.
- **activations** saved for the backward pass. With the weights frozen, a projection's input is
  saved only where LoRA needs it (its dropout copy and mask). Per layer: the fp32 RMSNorm inputs,
  the normed outputs, q/k/v and the attention output (SDPA keeps no ``s x s`` matrix), the SwiGLU
  gate, its SiLU and the up projection, and the down projection's input when it is targeted. With
  gradient checkpointing only each layer's input is kept and one layer is rebuilt at a time.
  The logits (and their fp32 log-softmax) are usually the single largest activation.
- **backward transient**: the largest short-lived buffers of the backward pass: the gradient of
  the logits, or one rebuilt layer with its gradients.
- **margin**: the CUDA context and cuBLAS workspace (outside torch's allocator statistics) plus a
  fragmentation share of the allocator peak.

Anchors it is checked against (tests/lora/test_lora_plan.py): LLaMA-13B loaded in 8-bit takes at least
~15 GB; LLaMA-Factory's table gives ~16 GB for 13B 8-bit LoRA; litgpt measured 38.12 GB peak for
Llama-2-13B LoRA in bf16 (r=8 on q and v, micro-batch 1, Alpaca's longest sample 1304 tokens, no
activation checkpointing). On CPU the static parts are checked against a real tiny model's tensors.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from persianllama.errors import UserError

GIB = 1024**3
GB = 1e9
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass(frozen=True)
class Arch:
    """The LLaMA shape: everything the plan needs from ``config.json``."""

    name: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    max_positions: int = 4096
    head_dim: int | None = None
    tied: bool = False

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads

    def projections(self) -> dict[str, tuple[int, int]]:
        """(out, in) of every projection in one decoder layer."""
        h, i, hd = self.hidden, self.intermediate, self.hd
        return {
            "q_proj": (self.heads * hd, h), "k_proj": (self.kv_heads * hd, h), "v_proj": (self.kv_heads * hd, h),
            "o_proj": (h, self.heads * hd), "gate_proj": (i, h), "up_proj": (i, h), "down_proj": (h, i),
        }

    def n_params(self, vocab: int | None = None) -> int:
        v = vocab or self.vocab
        per_layer = sum(o * i for o, i in self.projections().values()) + 2 * self.hidden
        return self.layers * per_layer + self.hidden + v * self.hidden * (1 if self.tied else 2)


# The LLaMA family's published shapes, for planning without the weights or network access.
PRESETS: dict[str, Arch] = {
    "llama-7b": Arch("llama-7b", 4096, 11008, 32, 32, 32, 32000, 2048),
    "llama-13b": Arch("llama-13b", 5120, 13824, 40, 40, 40, 32000, 2048),
    "llama-30b": Arch("llama-30b", 6656, 17920, 60, 52, 52, 32000, 2048),
    "llama-65b": Arch("llama-65b", 8192, 22016, 80, 64, 64, 32000, 2048),
    "llama-2-7b": Arch("llama-2-7b", 4096, 11008, 32, 32, 32, 32000, 4096),
    "llama-2-13b": Arch("llama-2-13b", 5120, 13824, 40, 40, 40, 32000, 4096),
    "llama-2-70b": Arch("llama-2-70b", 8192, 28672, 80, 64, 8, 32000, 4096),
}


def arch_from_config(cfg: dict[str, Any], name: str = "") -> Arch:
    """An `Arch` from a ``config.json`` mapping (LLaMA-style keys)."""
    try:
        heads = int(cfg["num_attention_heads"])
        return Arch(
            name=name or cfg.get("_name_or_path") or cfg.get("model_type", "model"),
            hidden=int(cfg["hidden_size"]), intermediate=int(cfg["intermediate_size"]),
            layers=int(cfg["num_hidden_layers"]), heads=heads,
            kv_heads=int(cfg.get("num_key_value_heads") or heads), vocab=int(cfg["vocab_size"]),
            max_positions=int(cfg.get("max_position_embeddings") or 4096),
            head_dim=cfg.get("head_dim"), tied=bool(cfg.get("tie_word_embeddings", False)),
        )
    except KeyError as e:
        raise UserError(f"{name or 'config'}: not a LLaMA-style config.json (no {e.args[0]})") from None
    except (TypeError, ValueError) as e:
        raise UserError(f"{name or 'config'}: a size in the config.json is not a number ({e})") from None


def preset_for(name: str) -> Arch | None:
    """The preset whose size a model name mentions (``meta-llama/Llama-2-13b-hf`` -> llama-2-13b)."""
    low = name.lower()
    if low in PRESETS:
        return PRESETS[low]
    m = re.search(r"(\d+)\s*b\b", low.replace("-hf", "").replace("_", "-"))
    if not m:
        return None
    size = m.group(1)
    family = "llama-2-" if re.search(r"llama-?2", low) else "llama-"
    return PRESETS.get(family + size + "b") or PRESETS.get("llama-" + size + "b")


def resolve_arch(base: str, arch: str | None = None) -> Arch:
    """The base model's shape: a preset named by `arch`, the model's config.json, or a preset its name implies."""
    if arch:
        if arch in PRESETS:
            return PRESETS[arch]
        path = Path(arch)
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise UserError(f"--arch {path} is not a valid JSON config ({e})") from None
            if not isinstance(data, dict):
                raise UserError(f"--arch {path} must hold a JSON object (a model's config.json)")
            return arch_from_config(data, str(path))
        raise UserError(f"unknown architecture {arch!r}; presets: {', '.join(PRESETS)} (or a config.json path)")
    path = Path(base)
    if (path / "config.json").is_file():
        return arch_from_config(json.loads((path / "config.json").read_text(encoding="utf-8")), str(path))
    from transformers import AutoConfig

    try:  # a hub id already in the local cache (no network: planning must be instant and offline)
        return arch_from_config(AutoConfig.from_pretrained(base, local_files_only=True).to_dict(), base)
    except Exception:  # noqa: BLE001 - not cached
        pass
    found = preset_for(base)
    if found is not None:
        return found
    try:
        return arch_from_config(AutoConfig.from_pretrained(base).to_dict(), base)
    except Exception:  # noqa: BLE001 - offline, gated, misspelled
        raise UserError(
            f"cannot read the architecture of {base!r} (not a local model directory, not in the HF cache, and "
            f"its name names no preset); pass --arch with one of {', '.join(PRESETS)} or a config.json"
        ) from None


@dataclass(frozen=True)
class PlanInputs:
    """What decides the memory of a LoRA run."""

    arch: Arch
    quantization: str = "8bit"
    dtype: str = "bf16"
    """Storage dtype of the non-quantized weights (before peft's fp32 upcast under quantization)."""
    precision: str = "bf16"
    """Autocast dtype of activations."""
    r: int = 64
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    dropout: float = 0.05
    embeddings: str = "none"
    """full, new_rows or none (already resolved)."""
    vocab: int | None = None
    """Rows after the vocabulary extension; None: the architecture's."""
    seq_len: int = 512
    micro_batch: int = 1
    gradient_checkpointing: bool = True
    optimizer: str = "adamw"
    min_8bit_size: int = 4096
    double_quant: bool = True
    device_memory: float = 80 * GIB
    device_name: str = "A100-80G"
    cuda_context: float = 0.8 * GIB
    fragmentation: float = 0.08
    device: str = "cuda"
    """The device whose kernels decide some activation dtypes (cuda, or cpu for checks on this machine)."""


def inputs_for(cfg, *, arch: Arch, vocab: int, embeddings: str, precision: str, dtype: str, micro_batch: int,
               device: str, device_memory: float, device_name: str) -> PlanInputs:
    """The one place a LoRA config becomes memory-plan inputs (training's preflight and `persianllama plan`)."""
    return PlanInputs(
        arch=arch, quantization=cfg.model.quantization, dtype=dtype, precision=precision, r=cfg.lora.r,
        target_modules=tuple(cfg.lora.target_modules), dropout=cfg.lora.dropout, embeddings=embeddings, vocab=vocab,
        seq_len=cfg.train.seq_len, micro_batch=micro_batch, gradient_checkpointing=cfg.model.gradient_checkpointing,
        optimizer=cfg.train.optimizer, min_8bit_size=cfg.train.min_8bit_size,
        double_quant=cfg.model.bnb_4bit_double_quant, device_memory=device_memory, device_name=device_name,
        cuda_context=cfg.plan.cuda_context_gb * GIB, fragmentation=cfg.plan.fragmentation, device=device)


@dataclass
class Plan:
    inputs: PlanInputs
    parts: dict[str, float] = field(default_factory=dict)
    """Bytes by part (see the module docstring)."""
    counts: dict[str, int] = field(default_factory=dict)
    """Parameter counts: total, trainable, lora, embeddings."""

    @property
    def static(self) -> float:
        return sum(self.parts[k] for k in ("weights", "adapter", "gradients", "optimizer"))

    @property
    def allocator_peak(self) -> float:
        """What ``torch.cuda.max_memory_allocated`` should report."""
        p = self.parts
        return self.static + p["activations"] + p["backward_transient"]

    @property
    def total(self) -> float:
        return self.allocator_peak + self.parts["margin"]

    @property
    def fits(self) -> bool:
        return self.total <= self.inputs.device_memory

    def to_dict(self) -> dict:
        return {"inputs": {**asdict(self.inputs), "arch": asdict(self.inputs.arch)},
                "parts_bytes": {k: int(v) for k, v in self.parts.items()},
                "allocator_peak_bytes": int(self.allocator_peak), "total_bytes": int(self.total),
                "device_memory_bytes": int(self.inputs.device_memory), "fits": self.fits,
                "counts": self.counts, "largest_micro_batch": largest_micro_batch(self.inputs)}


def _quantized_linear_bytes(out: int, inp: int, quantization: str, double_quant: bool) -> float:
    n = out * inp
    if quantization == "8bit":
        return n + 4 * out  # int8 weights + fp32 row scales (SCB)
    if quantization == "4bit":
        blocks = math.ceil(n / 64)
        if double_quant:  # uint8 absmax per block, fp32 absmax per 256 blocks, the 16- and 256-entry code books
            return n / 2 + blocks + 4 * math.ceil(blocks / 256) + 4 * (16 + 256) + 4
        return n / 2 + 4 * blocks + 4 * 16
    raise ValueError(quantization)


def _adam8bit_bytes(n: int, min_8bit_size: int) -> float:
    if n < min_8bit_size:
        return 8 * n  # bitsandbytes keeps fp32 moments for small tensors
    return 2 * n + 2 * 4 * math.ceil(n / 256) + 2 * 4 * 256


def estimate(inp: PlanInputs) -> Plan:
    """The plan for `inp` (bytes; see the module docstring for what each part holds)."""
    a = inp.arch
    quantized = inp.quantization in ("8bit", "4bit")
    other_bytes = 4 if quantized else DTYPE_BYTES[inp.dtype]
    vocab = inp.vocab or a.vocab
    h, L = a.hidden, a.layers
    projections = a.projections()
    unknown = [t for t in inp.target_modules if t not in projections]
    if unknown:
        raise UserError(f"lora.target_modules: {', '.join(unknown)} not in the LLaMA projections "
                        f"({', '.join(projections)})")

    # weights
    linear = 0.0
    for out, inn in projections.values():
        linear += _quantized_linear_bytes(out, inn, inp.quantization, inp.double_quant) if quantized else \
            out * inn * DTYPE_BYTES[inp.dtype]
    linear *= L
    emb_matrices = 1 if a.tied else 2
    other = (vocab * h * emb_matrices + (2 * L + 1) * h) * other_bytes + 2 * (a.hd // 2) * 4  # + RoPE buffers
    weights = linear + other

    # adapter and what is trained: (numel of each trained tensor) for the optimizer's per-tensor rule
    trained: list[int] = []
    for name in inp.target_modules:
        out, inn = projections[name]
        trained += [inp.r * inn, out * inp.r] * L
    lora_params = sum(trained)
    adapter = 4.0 * lora_params
    emb_params = 0
    if inp.embeddings == "full":
        trained += [vocab * h] * emb_matrices
        emb_params = vocab * h * emb_matrices
        adapter += 4.0 * emb_params  # peft's trainable copies (fp32) beside the frozen originals
    elif inp.embeddings == "new_rows":
        new = max(0, vocab - a.vocab)
        trained += [new * h] * emb_matrices
        emb_params = new * h * emb_matrices
        adapter += 4.0 * emb_params + other_bytes * emb_params  # trained rows + a copy of their originals
    n_trained = sum(trained)
    gradients = 4.0 * n_trained
    if inp.optimizer == "adamw8bit":
        optimizer = sum(_adam8bit_bytes(n, inp.min_8bit_size) for n in trained)
    else:
        optimizer = 8.0 * n_trained + 4.0 * len(trained)  # two fp32 moments + the step counter per tensor

    act, transient = activation_bytes(inp)
    static = weights + adapter + gradients + optimizer
    margin = inp.cuda_context + inp.fragmentation * (static + act + transient)
    plan = Plan(inp)
    plan.parts = {"weights": weights, "weights_quantized": linear, "weights_other": other, "adapter": adapter,
                  "gradients": gradients, "optimizer": optimizer, "activations": act,
                  "backward_transient": transient, "margin": margin}
    plan.counts = {"parameters": a.n_params(vocab) + lora_params + (emb_params if inp.embeddings != "none" else 0),
                   "trainable": n_trained, "lora": lora_params, "embeddings_trained": emb_params,
                   "trained_tensors": len(trained)}
    return plan


def residual_bytes(inp: PlanInputs) -> int:
    """Bytes per element of the residual stream: fp32 when peft's k-bit preparation upcast the embeddings and
    norms, or when a trained fp32 embedding copy feeds it; else the base dtype."""
    if inp.quantization in ("8bit", "4bit") or inp.embeddings != "none":
        return 4
    return DTYPE_BYTES[inp.dtype]


def activation_bytes(inp: PlanInputs) -> tuple[float, float]:
    """(saved activations, largest backward transient) for one micro-batch, bytes.

    What autograd keeps (checked with saved-tensor hooks on CPU, benchmarks/lora.py): frozen projections
    keep nothing of their input; each RMSNorm keeps its fp32 input; each targeted projection's LoRA branch
    keeps its dropout mask (bool on CUDA; the fp32 input's dtype on CPU) and the (autocast) input of A,
    plus A's r-wide output; SDPA keeps q, k, v and its output; SwiGLU keeps gate, silu(gate) and up; the
    loss keeps the fp32 log-softmax. A bitsandbytes projection returns its *input's* dtype on CUDA (fp32
    after k-bit preparation), so the SwiGLU activations of a quantized model are fp32 even under autocast.
    """
    a = inp.arch
    b, s, h, i, L = inp.micro_batch, inp.seq_len, a.hidden, a.intermediate, a.layers
    vocab = inp.vocab or a.vocab
    quantized = inp.quantization in ("8bit", "4bit")
    act = DTYPE_BYTES[inp.precision]
    res = residual_bytes(inp)
    mlp = 4 if (quantized and inp.device == "cuda") else (act if inp.precision != "fp32" else res)
    mask = (1 if inp.device == "cuda" else 4) if inp.dropout > 0 else 0
    q_out, kv_out = a.heads * a.hd, a.kv_heads * a.hd
    width = {"q_proj": h, "k_proj": h, "v_proj": h, "o_proj": q_out, "gate_proj": h, "up_proj": h, "down_proj": i}
    bs = b * s
    per_layer = 2 * 4 * bs * h  # the two RMSNorms' fp32 inputs
    for t in inp.target_modules:
        per_layer += (mask + act) * bs * width[t] + act * bs * inp.r  # LoRA: mask + A's input, A's output
    per_layer += act * bs * (2 * q_out + 2 * kv_out) + 4 * b * a.heads * s  # q, k, v, attention out, logsumexp
    per_layer += 3 * mlp * bs * i  # gate, silu(gate), up
    head_input = act * bs * h if inp.embeddings != "none" else 0  # saved only when lm_head trains
    final = 4 * bs * h + head_input + 4 * bs * vocab  # final norm input, lm_head input, fp32 log-softmax
    if inp.gradient_checkpointing:
        saved = L * res * bs * h + final  # each layer's input; one layer is rebuilt at a time in backward
        transient = max(8 * bs * vocab, 2 * per_layer)
    else:
        saved = L * per_layer + final
        transient = max(8 * bs * vocab, 2 * mlp * bs * i * 2)
    return saved, transient


def largest_micro_batch(inp: PlanInputs, limit: int = 4096) -> int:
    """The largest micro-batch whose plan fits the device (0: not even 1)."""
    if not estimate(replace(inp, micro_batch=1)).fits:
        return 0
    lo, hi = 1, 2
    while hi <= limit and estimate(replace(inp, micro_batch=hi)).fits:
        lo, hi = hi, hi * 2
    hi = min(hi, limit + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if estimate(replace(inp, micro_batch=mid)).fits:
            lo = mid
        else:
            hi = mid
    return lo


def _fmt(x: float) -> str:
    return f"{x / GIB:8.2f} GiB" if x >= 0.01 * GIB else f"{x / 1024**2:8.2f} MiB"


def format_plan(plan: Plan) -> str:
    """The plan as the table `persianllama plan` prints."""
    inp, p, c = plan.inputs, plan.parts, plan.counts
    a = inp.arch
    mode = {"8bit": "LLM.int8", "4bit": "4-bit (double quant)" if inp.double_quant else "4-bit", "none": inp.dtype}
    n = a.n_params(inp.vocab)
    size = f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"
    lines = [
        f"memory plan: {a.name} ({size} params, vocab {inp.vocab or a.vocab}) "
        f"in {mode[inp.quantization]}, LoRA r={inp.r} on {', '.join(inp.target_modules)}, "
        f"embeddings {inp.embeddings}",
        f"  seq {inp.seq_len} x micro-batch {inp.micro_batch}, activations {inp.precision}, gradient checkpointing "
        f"{'on' if inp.gradient_checkpointing else 'off'}, optimizer {inp.optimizer}",
        f"  trainable {c['trainable']:,} params ({c['lora']:,} LoRA + {c['embeddings_trained']:,} embedding)",
        f"  weights (frozen)      {_fmt(p['weights'])}   ({_fmt(p['weights_quantized']).strip()} projections + "
        f"{_fmt(p['weights_other']).strip()} embeddings/norms)",
        f"  adapter + embeddings  {_fmt(p['adapter'])}",
        f"  gradients             {_fmt(p['gradients'])}",
        f"  optimizer state       {_fmt(p['optimizer'])}",
        f"  activations (saved)   {_fmt(p['activations'])}",
        f"  backward transient    {_fmt(p['backward_transient'])}",
        f"  CUDA ctx + fragment.  {_fmt(p['margin'])}",
        f"  predicted peak        {_fmt(plan.total)}  (allocator peak {_fmt(plan.allocator_peak).strip()}) "
        f"of {inp.device_memory / GIB:.0f} GiB on {inp.device_name}: {'fits' if plan.fits else 'DOES NOT FIT'}",
    ]
    other = replace(inp, gradient_checkpointing=not inp.gradient_checkpointing)
    other_act = activation_bytes(other)[0]
    lines.append(f"  activations with checkpointing {'off' if inp.gradient_checkpointing else 'on'} would be "
                 f"{_fmt(other_act).strip()}")
    best = largest_micro_batch(inp)
    lines.append(f"  largest micro-batch that fits: {best if best < 4096 else '4096 or more'}" if best else
                 "  not even micro-batch 1 fits: use 4-bit, a shorter seq_len, gradient checkpointing "
                 "or a larger device")
    return "\n".join(lines)
