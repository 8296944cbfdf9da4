"""Preference tuning's settings: the instruction-tuning settings (model, lora, train, checkpoint, log, plan) with
a preference-data section, the DPO loss's own section and defaults for pairs.

    persianllama dpo --base MODEL [--adapter SFT_ADAPTER] --data pairs.jsonl --output runs/dpo [--recipe YAML]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from persianllama.config import Count, Positive, Range
from persianllama.lora.config import LoraConfig
from persianllama.sft.config import SftLogConfig, SftModelConfig, SftTrainConfig


@dataclass
class DpoDataConfig:
    """The preference pairs and how they become training tokens."""

    files: list[str] = field(default_factory=list)
    """JSONL/JSON/Parquet files (or folders of them) or HF dataset ids of {prompt|messages, chosen, rejected}
    records (message lists as in TRL's conversational layout, or plain strings)."""
    hf_split: str = "train"
    """Split of an HF dataset id."""
    val_fraction: Annotated[float, Range(0, 1, hi_open=True)] = 0.1
    """Fraction of pairs held out for validation (by a hash of each pair; at least one if any)."""
    normalize: bool = True
    """Run the project's Persian normalizer over the prompt and the chosen reply (never the rejected one: what is
    wrong with it may be what the normalizer repairs)."""
    system_prompt: str | None = None
    """A system message put first in every prompt that has none (None: none added)."""
    too_long: Literal["drop", "truncate"] = "drop"
    """A prompt + reply longer than train.seq_len: drop the pair (counted) or keep its first seq_len tokens."""
    max_examples: Count | None = None
    """Use at most this many pairs (after the held-out split); None: all."""
    chat_template: str | None = None
    """A Jinja chat template file to use instead of the tokenizer's (default: the tokenizer's own, which an SFT
    adapter carries, or the toolkit's documented default when it has none)."""


@dataclass
class DpoLossConfig:
    """The DPO objective (Rafailov et al. 2023), sigmoid form."""

    beta: Positive = 0.1
    """KL strength: loss = -log sigmoid(beta * ((log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log
    ref(rejected)))); the implicit reward of a reply is beta * (log pi - log ref). Higher keeps the policy closer to
    the reference."""
    label_smoothing: Annotated[float, Range(0, 0.5, hi_open=True)] = 0.0
    """Conservative DPO (cDPO): the share of pairs assumed mislabelled; the loss becomes (1 - e) * DPO(chosen over
    rejected) + e * DPO(rejected over chosen)."""
    reference_batch_size: Count = 8
    """Pairs per forward pass when the reference log-probabilities are computed (once, before training)."""


@dataclass
class DpoTrainConfig(SftTrainConfig):
    """Batch, optimizer, schedule and precision (counted in pairs: each pair is two sequences, chosen and rejected)."""

    seq_len: Annotated[int, Range(2)] = 1024
    """Longest prompt + reply, in tokens; a micro-batch is padded to its longest sequence, not to this."""
    micro_batch_size: Count = 2
    """Pairs per forward/backward pass (twice as many sequences)."""
    global_batch_size: Count | None = 16
    """Pairs per optimizer step; None: micro_batch_size x grad_accum_steps."""
    max_steps: Count = 200
    """Optimizer steps to train for."""
    lr: Annotated[float, Range(0, lo_open=True)] = 5e-5
    """Peak learning rate (LoRA DPO takes about a tenth of SFT's)."""
    min_lr: Annotated[float, Range(0)] = 5e-6
    """Learning rate at the end of the cosine decay (<= lr)."""
    warmup_steps: Annotated[int, Range(0)] = 10
    """Linear warmup steps."""


@dataclass
class DpoLogConfig(SftLogConfig):
    """What the run reports: every train record carries the step's reward accuracy, margin, rewards and
    log-probabilities next to its loss."""

    eval_interval: Annotated[int, Range(0)] = 50
    """Optimizer steps between validations (DPO loss, reward accuracy and margin on held-out pairs, and the chosen
    replies' loss and bits per byte); 0: only at the end."""
    eval_docs: Annotated[int, Range(0)] = 64
    """Held-out pairs scored per validation."""


@dataclass
class DpoConfig(LoraConfig):
    """`persianllama dpo --base MODEL [--adapter DIR] --data FILE --output DIR [--recipe YAML] [key=value ...]`"""

    out_dir: str = "runs/dpo"
    """Run folder: adapter/ (PEFT adapter + tokenizer with its chat template), hf/ (merge=true), checkpoints/,
    reference_logps.safetensors, metrics.jsonl, loss_curve.png, data_report.json, memory_plan.json."""
    method: Literal["lora"] = "lora"
    """lora: train a LoRA adapter (a fresh one, or the --adapter it continues) on the frozen base, whose reference
    log-probabilities are the same model's with the adapter as it started."""
    merge: bool = False
    """Also write DIR/hf: the adapter merged into the base (fp32 on CPU, bf16 on GPU), loadable without PEFT."""
    model: SftModelConfig = field(default_factory=SftModelConfig)
    data: DpoDataConfig = field(default_factory=DpoDataConfig)
    dpo: DpoLossConfig = field(default_factory=DpoLossConfig)
    train: DpoTrainConfig = field(default_factory=DpoTrainConfig)
    log: DpoLogConfig = field(default_factory=DpoLogConfig)
