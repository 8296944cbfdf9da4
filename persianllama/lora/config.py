"""The LoRA track's configuration: one typed dataclass tree, the single source of truth.

Defaults are the LLaMA-13B / one A100-80G recipe (``configs/lora_13b_8bit.yaml`` spells them out);
a recipe sets some fields, flags and ``key=value`` overrides (dotted: ``lora.r=16``) go on top.
The data, checkpoint, training and logging sections are the run core's (`persianllama.run.settings`),
so every track packs the corpus and names its settings the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from persianllama.config import Count, NonEmpty, NonNeg, Positive, Range
from persianllama.data.config import DataConfig
from persianllama.run.settings import CheckpointConfig, LogSettings, Precision, TrainSettings

Quantization = Literal["8bit", "4bit", "none"]
ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class LoraModelConfig:
    """The base model and how it is loaded."""

    base: str = "meta-llama/Llama-2-13b-hf"
    """Base model: an HF model directory or hub id (LLaMA-13B by default). Its weights stay frozen."""
    tokenizer: str | None = None
    """Tokenizer directory; None: the base model's. An extended tokenizer (`persianllama tokenizer extend`)
    grows the vocabulary: its first ids must be the base tokenizer's, the new ids come after them."""
    base_tokenizer: str | None = None
    """The base model's own tokenizer, whose subtokens initialise the new embedding rows; None: the base model's."""
    quantization: Quantization = "8bit"
    """How the frozen linear layers are stored: 8bit (LLM.int8, bitsandbytes), 4bit (NF4/FP4, QLoRA) or none."""
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """Storage dtype of the weights that are not quantized; auto: bf16 on GPUs that have it, fp16 on older GPUs,
    fp32 on CPU. With 8bit/4bit, peft's k-bit preparation keeps the non-quantized ones in fp32 anyway."""
    llm_int8_threshold: Positive = 6.0
    """8bit: activations above this magnitude go through the fp16 outlier path (LLM.int8's default)."""
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"
    """4bit: the 4-bit data type (NF4 is QLoRA's)."""
    bnb_4bit_double_quant: bool = True
    """4bit: quantize the quantization constants too (QLoRA's double quantization; ~0.4 bit/param less)."""
    gradient_checkpointing: bool = True
    """Recompute each layer's activations in the backward pass: far less memory for ~1/3 more compute."""
    checkpointing_reentrant: bool = False
    """Use torch's reentrant checkpointing (the old default). Input gradients are enabled either way, so the
    peft "element 0 of tensors does not require grad" trap cannot happen."""
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = "auto"
    """Attention kernel; auto: PyTorch SDPA."""


@dataclass
class AdapterConfig:
    """The adapter: LoRA matrices on the projections, and what happens to the embeddings."""

    r: Count = 64
    """LoRA rank (Chinese-LLaMA-Alpaca used 8 for LLaMA-1 pretraining, 64 for LLaMA-2)."""
    alpha: Count = 128
    """LoRA scaling numerator: the update is (alpha / r) * B @ A; 2-4x r is usual."""
    dropout: Annotated[float, Range(0, 1, hi_open=True)] = 0.05
    """Dropout on the LoRA branch's input."""
    target_modules: Annotated[list[str], NonEmpty()] = field(default_factory=lambda: list(ALL_PROJECTIONS))
    """Module names that get LoRA matrices; default: every attention and MLP projection."""
    embeddings: Literal["auto", "full", "new_rows", "none"] = "auto"
    """Training of the input embedding and output layer. full: both whole matrices (peft modules_to_save,
    Chinese-LLaMA-Alpaca's choice); new_rows: only the rows of the new tokens (peft trainable_token_indices);
    none: frozen; auto: full when the tokenizer extends the vocabulary, none otherwise."""
    init_adapter: str | None = None
    """Start from an existing PEFT adapter directory instead of fresh LoRA matrices (its rank, targets and
    vocabulary must match this run's)."""


@dataclass
class LoraTrainConfig(TrainSettings):
    """Batch, optimizer, schedule and precision: the shared `TrainSettings` with the LoRA recipe's defaults,
    plus the optimizer choice and the device."""

    seq_len: Annotated[int, Range(2)] = 512
    """Tokens per sequence (the packed block size)."""
    micro_batch_size: Count = 4
    """Sequences per forward/backward pass (`persianllama plan` suggests the largest that fits)."""
    global_batch_size: Count | None = 64
    """Sequences per optimizer step; None: micro_batch_size x grad_accum_steps."""
    max_steps: Count = 10000
    """Optimizer steps to train for."""
    lr: Positive = 2e-4
    """Peak learning rate."""
    min_lr: NonNeg = 2e-5
    """Learning rate at the end of the cosine decay (<= lr)."""
    weight_decay: NonNeg = 0.0
    """AdamW weight decay, on matrices only (LoRA matrices and trained embeddings; never norms)."""
    beta2: Annotated[float, Range(0, 1, hi_open=True)] = 0.999
    """AdamW beta2."""
    precision: Precision = "auto"
    """Autocast dtype of the forward pass; auto: bf16 on GPUs that have it, fp16 (with loss scaling) on older
    GPUs, fp32 on CPU. Trained parameters are always fp32."""
    optimizer: Literal["adamw", "adamw8bit"] = "adamw"
    """adamw: torch AdamW (fp32 state, 8 bytes per trained parameter); adamw8bit: bitsandbytes AdamW8bit
    (2 bytes per parameter, but only for tensors of at least min_8bit_size elements)."""
    min_8bit_size: Count = 4096
    """adamw8bit: tensors with fewer elements keep 32-bit state (bitsandbytes' rule; small LoRA matrices do)."""
    device: Literal["auto", "cuda", "cpu"] = "auto"
    """auto: the GPU if there is one, else the CPU (bitsandbytes 0.50 runs LLM.int8 on CPU too)."""


@dataclass
class LoraLogConfig(LogSettings):
    """What the run reports: the shared `LogSettings`, plus a validation of the untouched base."""

    eval_interval: Annotated[int, Range(0)] = 500
    """Optimizer steps between validation runs (bits-per-byte on held-out documents); 0: only at the end."""
    eval_at_start: bool = True
    """Also validate before the first step (the base model's bits-per-byte, for comparison)."""
    progress_bar: bool = False
    """Show a progress bar of the steps (when stderr is a terminal)."""


@dataclass
class PlanConfig:
    """The memory plan (`persianllama plan`), printed at the start of training."""

    device_memory_gb: Positive | None = None
    """Memory of the device to plan for, in GiB; None: the GPU in use, else an A100-80G (80 GiB)."""
    device_name: str | None = None
    """Name shown in the plan; None: the GPU in use, else "A100-80G"."""
    cuda_context_gb: NonNeg = 0.8
    """CUDA context and cuBLAS workspace (not in torch's allocator statistics), GiB."""
    fragmentation: Annotated[float, Range(0, 1, hi_open=True)] = 0.08
    """Share of the allocator's peak lost to fragmentation, added as a margin."""
    enforce: bool = False
    """Refuse to start when the plan says the run does not fit the device."""


@dataclass
class LoraConfig:
    """`scripts/lora_adapt.sh` / `python -m persianllama.lora train --config RECIPE.yaml [key=value ...]`"""

    out_dir: str = "runs/lora"
    """Run folder: adapter/ (the PEFT adapter + tokenizer), checkpoints/, metrics.jsonl, memory_plan.json."""
    deepspeed: str | None = None
    """A DeepSpeed JSON for a multi-GPU run. This trainer runs on one device, so any config is refused before
    loading, with the reason (ZeRO-3 additionally cannot partition 8-bit/4-bit bitsandbytes weights)."""
    model: LoraModelConfig = field(default_factory=LoraModelConfig)
    lora: AdapterConfig = field(default_factory=AdapterConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: LoraTrainConfig = field(default_factory=LoraTrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LoraLogConfig = field(default_factory=LoraLogConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
