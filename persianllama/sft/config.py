"""The instruction-tuning configuration: the LoRA track's settings (model, lora, train, checkpoint, log, plan)
with its own data section and defaults for chat data.

    persianllama sft --base MODEL --data conversations.jsonl --output runs/sft [--recipe configs/sft_tiny.yaml]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from persianllama.config import Count, Range
from persianllama.lora.config import LoraConfig, LoraLogConfig, LoraModelConfig, LoraTrainConfig

DataFormat = Literal["auto", "messages", "alpaca", "sharegpt"]


@dataclass
class SftDataConfig:
    """The instruction data and how it becomes training tokens."""

    files: list[str] = field(default_factory=list)
    """JSONL/JSON/Parquet files (or folders of them) or HF dataset ids, in the messages, Alpaca or ShareGPT layout."""
    format: DataFormat = "auto"
    """Record layout; auto: detected per record (messages -> conversations -> instruction/output)."""
    hf_split: str = "train"
    """Split of an HF dataset id."""
    val_fraction: Annotated[float, Range(0, 1, hi_open=True)] = 0.05
    """Fraction of conversations held out for validation (by a hash of each conversation; at least one if any)."""
    normalize: bool = True
    """Run the project's Persian normalizer over every message (Arabic ي/ك, ZWNJ, digits ... as in the corpus)."""
    system_prompt: str | None = None
    """A system message put first in every conversation that has none (None: none added)."""
    train_on: Literal["assistant", "all"] = "assistant"
    """Loss on the assistant's tokens only (every assistant turn of a multi-turn conversation), or on every token."""
    packing: bool = True
    """Pack several conversations into one sequence of train.seq_len tokens; position ids restart and attention
    never crosses from one conversation into another (a block-diagonal causal mask), so packing changes no loss."""
    too_long: Literal["drop", "truncate"] = "drop"
    """A conversation longer than train.seq_len: drop it (counted) or keep its first seq_len tokens."""
    max_examples: Count | None = None
    """Use at most this many conversations (after the held-out split); None: all."""
    chat_template: str | None = None
    """A Jinja chat template file to use instead of the tokenizer's (default: the tokenizer's own, or the toolkit's
    documented default when it has none)."""


@dataclass
class SftTrainConfig(LoraTrainConfig):
    """Batch, optimizer, schedule and precision (the LoRA track's settings with instruction-tuning defaults)."""

    seq_len: Annotated[int, Range(2)] = 1024
    """Tokens per (packed) sequence."""
    micro_batch_size: Count = 4
    """Sequences per forward/backward pass."""
    global_batch_size: Count | None = 32
    """Sequences per optimizer step; None: micro_batch_size x grad_accum_steps."""
    max_steps: Count = 1000
    """Optimizer steps to train for."""
    lr: Annotated[float, Range(0, lo_open=True)] = 1e-4
    """Peak learning rate."""
    min_lr: Annotated[float, Range(0)] = 1e-5
    """Learning rate at the end of the cosine decay (<= lr)."""
    warmup_steps: Annotated[int, Range(0)] = 20
    """Linear warmup steps."""


@dataclass
class SftLogConfig(LoraLogConfig):
    """What the run reports."""

    eval_interval: Annotated[int, Range(0)] = 100
    """Optimizer steps between validations (assistant-token loss on held-out conversations); 0: only at the end."""
    eval_docs: Annotated[int, Range(0)] = 64
    """Held-out conversations scored per validation."""


@dataclass
class SftModelConfig(LoraModelConfig):
    """The model to tune and how it is loaded."""

    base: str = ""
    """Model to tune: an HF directory or hub id (a Zero export, a merged LoRA model, or any causal LM)."""
    quantization: Literal["8bit", "4bit", "none"] = "none"
    """How the frozen base is stored: none (default for instruction tuning of small models), 8bit or 4bit."""


@dataclass
class SftConfig(LoraConfig):
    """`persianllama sft --base MODEL --data FILE --output DIR [--recipe YAML] [key=value ...]`"""

    out_dir: str = "runs/sft"
    """Run folder: adapter/ (PEFT adapter + tokenizer with its chat template), hf/ (merge=true), checkpoints/,
    metrics.jsonl, loss_curve.png, memory_plan.json."""
    method: Literal["lora", "full"] = "lora"
    """lora: train a LoRA adapter on the frozen (optionally 8-bit/4-bit) model, on one device. full: train every
    weight with DeepSpeed ZeRO on the Zero track's engine loop (`deepspeed --num_gpus N --module
    persianllama.sft.full ...`, or one process without the launcher); writes DIR/hf."""
    ds_config: str = "ds_configs/zero2.json"
    """method=full: the DeepSpeed JSON (ZeRO stage, offload); its "auto" values are filled from these settings."""
    merge: bool = False
    """Also write DIR/hf: the adapter merged into the base (fp32 on CPU, bf16 on GPU), loadable without PEFT."""
    model: SftModelConfig = field(default_factory=SftModelConfig)
    data: SftDataConfig = field(default_factory=SftDataConfig)
    train: SftTrainConfig = field(default_factory=SftTrainConfig)
    log: SftLogConfig = field(default_factory=SftLogConfig)
