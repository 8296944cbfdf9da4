"""Distillation's settings: a pretraining run of the student (`PretrainConfig`: model, data, train, checkpoint,
log) plus the teacher and the knowledge-distillation objective.

    persianllama distill --teacher MODEL [--teacher-adapter DIR] [--teacher-tokenizer DIR] \\
        (--student MODEL | --student-config configs/tiny.yaml) --tokenizer DIR --corpus DIR --output DIR [key=value ...]

The flags fill the same settings as `teacher.model=...`, `model.init_from=...`, `tokenizer=...`,
`data.corpus=[...]`, `out_dir=...`; a `--student-config` recipe is a Zero-track recipe (`configs/tiny.yaml`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from persianllama.config import Count, Fraction, NonNegInt, Positive, RuleError
from persianllama.train.config import PretrainConfig

Mode = Literal["logits", "sequence"]
Divergence = Literal["forward_kl", "reverse_kl", "jsd", "uld"]


@dataclass
class TeacherConfig:
    """The model that teaches: un-merged (base + PEFT adapter), in eval mode, never trained."""

    model: str = ""
    """HF causal LM directory or hub id (a Zero export, a LoRA base). Required."""
    adapter: str | None = None
    """A PEFT adapter on `model` (the LoRA track's output), applied un-merged."""
    tokenizer: str | None = None
    """The teacher's tokenizer; None: the adapter's (an extended vocabulary is saved with it), else the model's.
    The teacher's own tokenizer always encodes the teacher's input."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Teacher weights: auto = bf16 on a GPU that has it, else fp32 (fp16 is not offered: its logits overflow)."""
    load_in_8bit: bool = False
    """Load the teacher in 8-bit (bitsandbytes): less memory, a noisier teaching signal (a warning says so)."""
    batch_size: Count = 8
    """Blocks per teacher forward pass when the top-k cache is written."""


@dataclass
class KdConfig:
    """The objective: L = (1 - alpha) * CE + alpha * T^2 * D(p_teacher^T, p_student^T) (Hinton et al. 2015)."""

    mode: Mode = "logits"
    """logits: token-level KD on the teacher's distributions; sequence: the teacher writes continuations of the
    corpus's documents and the student is pretrained on them (tokenizer-agnostic)."""
    loss: Divergence = "forward_kl"
    """D: forward_kl KL(t||s) (mean-seeking, Hinton's), reverse_kl KL(s||t) (mode-seeking, MiniLLM), jsd (the
    Jensen-Shannon divergence, bounded), all for the same vocabulary; uld for different vocabularies (sorted-
    probability distance at byte-aligned positions, Boizard et al. 2024, plus a KL on pieces both vocabularies
    share when kd.hybrid)."""
    alpha: Fraction = 0.5
    """Weight of the KD term; 0 = plain pretraining (the teacher is not even loaded), 1 = KD only."""
    temperature: Positive = 2.0
    """T: both distributions are softened by T, and the KL term is multiplied by T^2 (its gradients keep their
    size as T changes)."""
    top_k: NonNegInt = 0
    """Same vocabulary only: keep the teacher's k most likely tokens per position plus the rest's total mass
    (k + 1 buckets); 0 = the full distribution, from the teacher online."""
    cache: bool = True
    """With top_k > 0: write the teacher's top-k log-probabilities for every training block once (shards of
    safetensors) and read them back in every step, epoch and later student run, instead of running the teacher."""
    cache_dir: str | None = None
    """Where the top-k cache lives; None: OUT/teacher_cache. Keyed by teacher, tokenizer, data, k and T, so several
    student runs can share one folder."""
    hybrid: bool = True
    """kd.loss=uld: also a KL on the pieces whose bytes are the same in both vocabularies (GOLD's hybrid term)."""
    sequence_prompts: Count = 64
    """kd.mode=sequence: documents whose beginning the teacher continues (with kd.instructions: the first this many
    conversations, which it answers)."""
    sequence_prompt_tokens: Count = 16
    """kd.mode=sequence: teacher tokens of each document kept as the prompt."""
    sequence_new_tokens: Count = 96
    """kd.mode=sequence: tokens the teacher writes after each prompt (greedy unless sequence_sample)."""
    sequence_sample: bool = False
    """kd.mode=sequence: sample with temperature kd.temperature instead of greedy decoding."""
    sequence_keep_corpus: bool = True
    """kd.mode=sequence: train on the corpus and the teacher's texts together (False: the teacher's texts only)."""
    instructions: list[str] = field(default_factory=list)
    """kd.mode=sequence on instruction data (files or HF ids in any layout `persianllama sft` reads): the teacher
    answers each conversation's last user turn through its chat template (OUT/teacher_answers.jsonl), and the
    student (--student MODEL) is instruction-tuned on those answers by the SFT track in OUT (adapter/, hf/)."""
    sft_recipe: str | None = None
    """kd.instructions: the SFT recipe for the student's run (e.g. configs/sft_tiny.yaml); None: SFT defaults."""
    sft_settings: list[str] = field(default_factory=list)
    """kd.instructions: key=value settings for the student's SFT run on top of the recipe (e.g.
    [train.max_steps=200,method=full])."""

    def __post_init__(self) -> None:
        if self.instructions and self.mode != "sequence":
            raise RuleError("kd.instructions (instruction data) is for kd.mode=sequence: the teacher writes the "
                            "answers the student is tuned on")
        if self.top_k and self.loss == "uld":
            raise RuleError("kd.top_k applies to a shared vocabulary; kd.loss=uld compares whole sorted "
                            "distributions (set kd.top_k=0)")


@dataclass
class DistillConfig(PretrainConfig):
    """`persianllama distill`: the student's pretraining run, with a teacher."""

    out_dir: str = "runs/distill"
    """Run folder: checkpoints/, metrics.jsonl (loss_ce and loss_kd per step), loss_curve.png, hf/ (the student)."""
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    kd: KdConfig = field(default_factory=KdConfig)
