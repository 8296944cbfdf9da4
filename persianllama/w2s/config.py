"""Weak-to-strong settings: the task and its halves, the two models, the shared LoRA and training settings, the
auxiliary confidence loss.

    persianllama w2s --task farstail --data-dir ../shared/data --weak WEAK --strong STRONG --output runs/w2s \\
        [--recipe configs/w2s_tiny.yaml] [key=value ...]

Every model of the experiment (the weak model on half A, the strong ceiling, the two weak-to-strong students)
trains a LoRA adapter through the shared adapter loop (`persianllama.lora.train.train_adapter`), so the
``lora``, ``train``, ``checkpoint``, ``log`` and ``plan`` sections mean what they mean in `persianllama lora`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from persianllama.config import Count, Fraction, NonNeg, Range
from persianllama.lora.config import (
    AdapterConfig,
    LoraLogConfig,
    LoraModelConfig,
    LoraTrainConfig,
    PlanConfig,
)
from persianllama.run.settings import CheckpointConfig
from persianllama.w2s.loss import Ramp
from persianllama.w2s.score import Scoring

Task = Literal["parsinlu_sentiment", "parsinlu_entailment", "parsinlu_qqp", "farstail"]


@dataclass
class W2sModelConfig(LoraModelConfig):
    """One model of the experiment (weak or strong) and how it is loaded and trained."""

    base: str = ""
    """An HF model folder or hub id (any causal LM), or a PEFT adapter folder (its base, recorded by this toolkit,
    is loaded and the adapter trained further; its tokenizer is used)."""
    quantization: Literal["8bit", "4bit", "none"] = "none"
    """How the frozen base is stored: none (default: small models), 8bit or 4bit."""
    max_steps: Count | None = None
    """Optimizer steps of this model's runs; None: train.max_steps."""
    lr: Annotated[float, Range(0, lo_open=True)] | None = None
    """Peak learning rate of this model's runs (min_lr scales with it); None: train.lr."""


@dataclass
class AuxConfig:
    """The auxiliary confidence loss (Burns et al. 2023; openai/weak-to-strong logconf_loss_fn)."""

    alpha: Fraction = 0.5
    """a: the weight of the hardened strong predictions in the target (1 - a) * weak + a * hardened strong
    (the reference code's aux_coef default)."""
    warmup_frac: Fraction = 0.1
    """Share of the training steps over which a ramps up from 0 (the reference's default)."""
    ramp: Ramp = "linear"
    """linear: a * min(1, step_frac / warmup_frac), reaching a at the end of the warm-up, then held. reference:
    the reference code exactly (a * step_frac during the warm-up, so only warmup_frac * a before the jump to a)."""


@dataclass
class W2sTrainConfig(LoraTrainConfig):
    """Batch, optimizer, schedule and precision of every model's run (examples, not tokens, per batch)."""

    seq_len: Annotated[int, Range(2)] = 256
    """Longest prompt + label word, in tokens; a longer prompt keeps its end (the question and answer cue)."""
    micro_batch_size: Count = 16
    """Examples per forward/backward pass (label_sequence scoring runs one sequence per example and class).
    The confidence loss's class-balance threshold is taken over one micro-batch: keep it equal to
    global_batch_size to match the reference's per-batch threshold."""
    global_batch_size: Count | None = 16
    """Examples per optimizer step; None: micro_batch_size x grad_accum_steps."""
    max_steps: Count = 200
    """Optimizer steps of every run (weak.max_steps / strong.max_steps override it per model)."""
    lr: Annotated[float, Range(0, lo_open=True)] = 2e-4
    """Peak learning rate."""
    min_lr: Annotated[float, Range(0)] = 2e-5
    """Learning rate at the end of the cosine decay (<= lr)."""
    warmup_steps: Annotated[int, Range(0)] = 10
    """Linear warmup steps of the learning rate."""
    seed: int = 0
    """Seed of run 0 (halves, adapter initialisation, data order); run k uses seed + k."""


@dataclass
class W2sLogConfig(LoraLogConfig):
    """What each run reports (metrics.jsonl: loss, lr and the batch's agreement with its targets every step)."""

    eval_at_start: bool = False
    """Not used: each run's accuracies are measured once, at its end (run*/<model>/result.json)."""
    eval_interval: Annotated[int, Range(0)] = 0
    """Not used (the accuracies are measured at the end of each run)."""
    tensorboard: bool = False
    """Write TensorBoard logs to each run's folder."""


@dataclass
class W2sCheckpointConfig(CheckpointConfig):
    """Saving and resuming each model's run (an interrupted experiment continues where it stopped)."""

    save_interval: Count = 100
    """Optimizer steps between checkpoints (one is also written at the end and on SIGTERM/SIGINT)."""
    keep_last: Annotated[int, Range(0)] = 1
    """Complete checkpoints to keep per run (0: all)."""


@dataclass
class W2sConfig:
    """`persianllama w2s --task TASK --data-dir DIR --weak MODEL --strong MODEL --output DIR [key=value ...]`"""

    out_dir: str = ""
    """Experiment folder: report.json, report.md, report.png, and run<k>/<model>/ (adapter, metrics, result.json)."""
    task: Task = "farstail"
    """The classification task (the eval harness's files, prompt and label words)."""
    data_dir: str = ""
    """Data root in the upstream layout (../shared/data, or corpora/sample/tasks for the bundled samples)."""
    runs: Count = 3
    """Repetitions with seeds train.seed + k (other halves, initialisation and order); mean and spread over them."""
    scoring: Scoring = "auto"
    """How a model scores the label words: last_token (the first token's logit after the prompt), label_sequence
    (log-likelihood of the whole word), auto (last_token when the words' first tokens differ in its tokenizer)."""
    max_train_rows: Count | None = None
    """Keep at most this many rows per half (None: all); bounds the cost on large tasks."""
    max_test_rows: Count | None = None
    """Score at most this many test rows (the first ones; None: all)."""
    min_half_rows: Count = 2
    """Refuse a training split with fewer than 2 x this many rows."""
    min_gap: NonNeg = 0.01
    """PGR is reported as null when the strong ceiling beats the weak model by less than this accuracy (mean over
    runs): the ratio would divide by noise."""
    eval_batch_size: Count = 16
    """Examples per forward pass when labelling half B and scoring the test split."""
    weak: W2sModelConfig = field(default_factory=W2sModelConfig)
    strong: W2sModelConfig = field(default_factory=W2sModelConfig)
    lora: AdapterConfig = field(default_factory=lambda: AdapterConfig(r=16, alpha=32, dropout=0.0))
    aux: AuxConfig = field(default_factory=AuxConfig)
    train: W2sTrainConfig = field(default_factory=W2sTrainConfig)
    checkpoint: W2sCheckpointConfig = field(default_factory=W2sCheckpointConfig)
    log: W2sLogConfig = field(default_factory=W2sLogConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
