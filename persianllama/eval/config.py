"""Settings of `persianllama evaluate` (one help line per field; shown by --help)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from persianllama.config import Count, NonNegInt, Range, RuleError, check_order


@dataclass
class EvalConfig:
    model: str = ""
    """Base model: a local checkpoint folder or a hub id"""
    label: str | None = None
    """Name of this run in reports, comparisons and charts (default: the model folder name, + adapter, + 8-bit)"""
    adapter: str | None = None
    """PEFT adapter folder to attach to the base (its tokenizer is used when it saved one)"""
    tokenizer: str | None = None
    """Tokenizer folder or hub id (default: the adapter's, else the model's)"""
    load_in_8bit: bool = False
    """Load the base in 8-bit with bitsandbytes (works on CPU with bitsandbytes>=0.50)"""
    tasks: list[str] = field(default_factory=list)
    """Tasks or groups: persian_bpb, persian_nlu, parsinlu_mc, parsinlu_entailment, parsinlu_sentiment,
    parsinlu_qqp, parsinlu_rc, farstail, persianqa, persian_generation, all; chat mode: persian_chat,
    parsinlu_mc_chat, parsinlu_entailment_chat, parsinlu_qqp_chat, farstail_chat; persian_translation;
    lm-eval's Persian tasks (belebele_pes_Arab, global_mmlu_full_fa, ...: --list-tasks shows them)"""
    num_fewshot: NonNegInt | None = None
    """Few-shot examples per prompt (default: 0); taken from each data set's train split"""
    limit: Count | None = None
    """Evaluate only the first N examples (documents for persian_bpb) of each task"""
    output: str = ""
    """Output folder: results.json, report.md, chart.png, samples/"""
    data_dir: str | None = None
    """Root holding the data sets in their upstream layout (e.g. ../shared/data); default
    $PERSIANLLAMA_EVAL_DATA, else each data set's hub id"""
    data: dict = field(default_factory=dict)
    """Per data set source, KEY=PATH_OR_HUB_ID: parsinlu_multiple_choice, parsinlu_entailment,
    parsinlu_sentiment_food, parsinlu_sentiment_movie, parsinlu_qqp, parsinlu_reading_comprehension,
    farstail, persianqa, text (held-out text for persian_bpb, comma-separated), generation (prompts file),
    translation (parallel text: a folder of line-aligned fa.*.txt/en.*.txt, or a .tsv/.jsonl with fa and
    en), or a built-in lm-eval task's name (a local copy of its hub data: a snapshot folder or a Parquet
    file)"""
    batch_size: Count = 8
    """Sequences per forward pass"""
    max_length: Count | None = None
    """Context length in tokens (default: the model's max_position_embeddings)"""
    bpb_stride: Count | None = None
    """Rolling-window stride for bits-per-byte, at most max_length (default: max_length, i.e. lm-eval's
    windows)"""
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Weights dtype when not loading in 8-bit (the precision names every command uses)"""
    device: str | None = None
    """cpu, cuda, cuda:1, ... (default: cuda when available)"""
    max_gen_tokens: Count | None = None
    """Override the generation length of generative tasks"""
    seed: Annotated[int, Range(0, 2**32 - 1)] = 1234
    """Seed for few-shot sampling and any sampling in generation"""
    bootstrap_iters: NonNegInt = 1000
    """Bootstrap resamples for standard errors that have no closed form (0: no standard errors)"""
    report_samples: NonNegInt = 8
    """Generation samples shown in report.md (all are kept in samples/)"""
    apply_chat_template: bool = False
    """Wrap every prompt in the tokenizer's chat template (few-shot examples as earlier turns): for chat
    models, and for the *_chat tasks as the chat leaderboards run them"""
    system_prompt: str | None = None
    """System message (with --apply-chat-template) or text put before every prompt (without)"""
    generation_template: Literal["auto", "chat", "plain"] = "auto"
    """How persian_generation's prompts reach the model: auto: each prompt as a user message through the
    tokenizer's chat template when it has one (a chat model), as plain text to continue when it has none;
    chat: always the template (refused without one); plain: always plain text. The other tasks follow
    apply_chat_template"""
    fewshot_as_multiturn: bool | None = None
    """Few-shot examples as separate user/assistant turns (default: yes with the chat template, as lm_eval)"""

    def __post_init__(self) -> None:
        check_order(self, "bpb_stride", "max_length")
        if self.fewshot_as_multiturn and not self.apply_chat_template:
            raise RuleError("fewshot_as_multiturn=true needs apply_chat_template=true (turns exist only in a chat)")
