"""The pretraining configuration: one typed dataclass tree, the single source of truth.

A recipe (``configs/*.yaml``) sets some fields; ``key=value`` overrides (dotted: ``train.lr=3e-4``)
go on top; everything else is the default below. The DeepSpeed JSON (``ds_configs/``) holds only
what the training config does not know (ZeRO stage, offload, bucket sizes); its ``"auto"`` values
are filled from here by `persianllama.train.ds_config`, and an explicit value there that disagrees
with this config is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from persianllama.config import Count, Positive, RuleError
from persianllama.data.config import DataConfig
from persianllama.run.settings import CheckpointConfig, LogSettings, Precision, TrainSettings


def raise_rule(message: str) -> None:
    raise RuleError(message)


__all__ = ["CheckpointConfig", "DataConfig", "LogConfig", "ModelConfig", "Precision", "PretrainConfig", "TrainConfig"]


@dataclass
class ModelConfig:
    """LLaMA architecture (`transformers.LlamaConfig`)."""

    hidden_size: Count = 64
    """Width of the residual stream (d_model)."""
    intermediate_size: Count | None = None
    """Width of the SwiGLU MLP; None: LLaMA's rule, 8/3 x hidden rounded up to a multiple of 256."""
    num_layers: Count = 2
    """Transformer blocks."""
    num_heads: Count = 4
    """Attention heads; hidden_size must be divisible by it."""
    num_kv_heads: Count | None = None
    """Key/value heads (grouped-query attention); None: as many as num_heads."""
    max_position_embeddings: Count | None = None
    """Longest context the model is built for; None: train.seq_len. Must be >= train.seq_len."""
    vocab_size: Count | None = None
    """Embedding rows; None: the tokenizer's size rounded up to pad_vocab_to_multiple_of. Never below the tokenizer's size."""
    pad_vocab_to_multiple_of: Count = 64
    """Round the vocabulary taken from the tokenizer up to this multiple (faster matmuls on GPUs); 1: no rounding."""
    rope_theta: Positive = 10000.0
    """RoPE base frequency."""
    rms_norm_eps: Positive = 1e-5
    """RMSNorm epsilon."""
    tie_word_embeddings: bool = False
    """Share the input embedding and the output projection (saves vocab x hidden parameters)."""
    initializer_range: Positive = 0.02
    """Standard deviation of the normal initialisation."""
    attn_implementation: Literal["auto", "sdpa", "flash_attention_2", "eager"] = "auto"
    """Attention kernel; auto: flash_attention_2 when installed on a CUDA GPU in bf16/fp16, else PyTorch SDPA."""
    init_from: str | None = None
    """An HF model directory to continue pretraining from (weights and architecture; the fields above are ignored)."""

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise_rule(f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}")
        kv = self.num_kv_heads or self.num_heads
        if self.num_heads % kv:
            raise_rule(f"num_heads={self.num_heads} is not divisible by num_kv_heads={kv}")


@dataclass
class TrainConfig(TrainSettings):
    """Batch, optimizer, schedule and precision (the shared `TrainSettings`, plus what only this track has)."""

    activation_checkpointing: bool = False
    """Recompute activations in the backward pass: much less memory for ~1/3 more compute."""


@dataclass
class LogConfig(LogSettings):
    """What the run reports (the shared `LogSettings`, plus the MFU peak)."""

    peak_tflops: Positive | None = None
    """Device peak for the MFU estimate, TFLOP/s per device; None: from a table of GPUs, or estimated for CPUs."""


@dataclass
class PretrainConfig:
    """`deepspeed scripts/pretrain.py --config RECIPE.yaml [key=value ...]`"""

    tokenizer: str = ""
    """Tokenizer directory (an HF tokenizer; the tokenizer stage's output). Required."""
    out_dir: str = "runs/pretrain"
    """Run folder: checkpoints/, tensorboard/, metrics.jsonl, loss_curve.png, hf/ (the exported model)."""
    ds_config: str = "ds_configs/zero2.json"
    """DeepSpeed JSON (ZeRO stage etc.); "auto" values are filled from this config."""
    hostfile: str | None = None
    """The hostfile given to the deepspeed launcher (multi-node); every host in it is checked reachable first."""
    export: bool = True
    """Write an HF model directory (safetensors, tokenizer, model card) to out_dir/hf at the end."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)
