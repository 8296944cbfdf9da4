"""A weak-to-strong task's rows: read with the eval harness's readers and task YAMLs, split in two halves, and
turned into each model's own tokens.

The four tasks are the eval harness's cloze classification tasks (`persianllama/eval/tasks/*.yaml`): the same
files (`persianllama.eval.data.load_split`, so ``--data-dir`` has the layout of ``persianllama evaluate
--data-dir``), the same prompt (the YAML's ``doc_to_text``, rendered as lm-eval renders it) and the same label
words (its ``choices``). ``parsinlu_sentiment`` is the eval group of its two domains, food and movie; their rows
are pooled (same labels and label words).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from persianllama.errors import UserError

TASKS: dict[str, tuple[str, ...]] = {
    "parsinlu_sentiment": ("parsinlu_sentiment_food", "parsinlu_sentiment_movie"),
    "parsinlu_entailment": ("parsinlu_entailment",),
    "parsinlu_qqp": ("parsinlu_qqp",),
    "farstail": ("farstail",),
}
"""Task -> the eval tasks (YAML names) whose rows it pools."""

TASK_DIR = Path(__file__).resolve().parents[1] / "eval" / "tasks"


@dataclass
class Row:
    text: str
    """The prompt (the task YAML's doc_to_text)."""
    label: int


@dataclass
class TaskData:
    task: str
    choices: list[str]
    """Label words, in class order."""
    delimiter: str
    """Between the prompt and a label word (the YAML's target_delimiter)."""
    train: list[Row]
    test: list[Row]
    sources: dict[str, str] = field(default_factory=dict)
    """Split -> the files read."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Rows the readers left out (unlabelled rows of the upstream release), by reason."""


def task_spec(name: str) -> dict:
    """The task YAML's settings (its includes resolved)."""
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(TASK_DIR / f"{name}.yaml", resolve_func=False, recursive=True)


def load_task(task: str, data_dir: str) -> TaskData:
    """Train and test rows of `task` under `data_dir` (the upstream layout, as in ../shared/data)."""
    from lm_eval.utils import apply_template

    from persianllama.eval import data as D

    if task not in TASKS:
        raise UserError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise UserError(f"--data-dir {data_dir}: no such folder (expected the data root, e.g. ../shared/data or "
                        "corpora/sample/tasks)")
    choices = delimiter = None
    splits: dict[str, list[Row]] = {"train": [], "test": []}
    sources: dict[str, str] = {}
    skipped: dict[str, int] = {}
    for leaf in TASKS[task]:
        spec = task_spec(leaf)
        key = spec["dataset_kwargs"]["dataset"]
        words = [str(c) for c in spec["dataset_kwargs"]["choices"]]
        if choices is None:
            choices, delimiter = words, str(spec.get("target_delimiter", " "))
        elif words != choices:  # the pooled YAMLs must agree; a programming error if not
            raise UserError(f"task {task}: {leaf} has other label words than {TASKS[task][0]}")
        folder = root / D.DATASETS[key].subdir
        if not folder.is_dir():
            raise UserError(f"--data-dir {data_dir}: no {D.DATASETS[key].subdir}/ folder for {leaf}")
        for split in ("train", "test"):
            loaded = D.load_split(key, split, data_dir=str(root))
            if not loaded.records:
                wanted = " or ".join(D.DATASETS[key].files[split])
                raise UserError(f"{folder}: no {wanted} with usable rows ({leaf} {split} split); a weak-to-strong "
                                "run needs the training split as well as the test split")
            sources.setdefault(split, "")
            sources[split] = ", ".join(s for s in (sources[split], loaded.source) if s)
            for reason, n in loaded.skipped.items():
                skipped[reason] = skipped.get(reason, 0) + n
            splits[split] += [Row(apply_template(spec["doc_to_text"], r), int(r["label"])) for r in loaded.records]
    return TaskData(task, choices, delimiter, splits["train"], splits["test"], sources, skipped)


def split_halves(rows: list[Row], seed: int, *, cap: int | None = None, min_rows: int = 2) -> tuple[list[Row], list[Row]]:
    """Half A (the weak model's ground truth) and half B (what the weak model labels), shuffled with `seed`;
    `cap` keeps at most that many rows per half."""
    if len(rows) < 2 * min_rows:
        raise UserError(f"only {len(rows)} training row(s): too few for two halves of at least {min_rows} rows "
                        "(min_half_rows); use a larger training split")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    half = len(rows) // 2
    a, b = [rows[i] for i in order[:half]], [rows[i] for i in order[half:2 * half]]
    if cap:
        a, b = a[:cap], b[:cap]
    return a, b


# --- tokens -------------------------------------------------------------------------------------------------


@dataclass
class Encoded:
    """One model's tokens for a list of rows."""

    prompts: list[list[int]]
    choices: list[list[int]]
    """Token ids of each label word (after the delimiter), the same for every row."""
    truncated: int = 0
    """Prompts cut from the left to fit seq_len."""


def encode(tok, rows: list[Row], choices: list[str], delimiter: str, seq_len: int) -> Encoded:
    """Prompts with the tokenizer's special tokens; each label word encoded as the continuation of a prompt
    (``delimiter + word``, no special tokens), as lm-eval scores a choice. A prompt that does not fit beside
    the longest label word in `seq_len` keeps its first special token (BOS) and its end (the question and the
    answer cue are at the end of every task's prompt)."""
    words = [tok(delimiter + w, add_special_tokens=False)["input_ids"] for w in choices]
    if any(not w for w in words):
        raise UserError(f"a label word of {choices} encodes to no tokens with this tokenizer")
    room = seq_len - max(len(w) for w in words)
    if room < 2:
        raise UserError(f"train.seq_len={seq_len} leaves no room for a prompt beside the label words; raise it")
    prompts, cut = [], 0
    specials = set(tok.all_special_ids)
    for r in rows:
        ids = tok(r.text)["input_ids"]
        if len(ids) > room:
            head = ids[:1] if ids and ids[0] in specials else []
            ids = head + ids[len(ids) - (room - len(head)):]
            cut += 1
        prompts.append(ids)
    return Encoded(prompts, words, cut)


def pad_id(tok) -> int:
    """Padding is masked out; a tokenizer without a pad token pads with EOS."""
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


def collate(enc: Encoded, index, pad: int, mode: str) -> tuple[dict, int]:
    """Model inputs for rows `index`, right-padded (a multiple of 8), and the number of real tokens.

    mode ``last_token``: one sequence per row (the prompt); ``last`` is the position of its last token, whose
    next-token logits score the first token of each label word. mode ``label_sequence``: one sequence per (row,
    label word), prompt + word; ``labels`` holds the word's tokens (-100 elsewhere) for the sum of their
    log-probabilities."""
    import torch

    index = [int(i) for i in index]
    if mode == "last_token":
        seqs = [(enc.prompts[i], None) for i in index]
    else:
        seqs = [(enc.prompts[i] + w, len(enc.prompts[i])) for i in index for w in enc.choices]
    n = -(-max(len(s) for s, _ in seqs) // 8) * 8
    ids = torch.full((len(seqs), n), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    labels = torch.full((len(seqs), n), -100, dtype=torch.long)
    for r, (s, start) in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(s)
        mask[r, : len(s)] = 1
        if start is not None:
            labels[r, start: len(s)] = torch.tensor(s[start:])
    batch = {"input_ids": ids, "attention_mask": mask}
    if mode == "last_token":
        batch["last"] = mask.sum(dim=1) - 1
        batch["choice_ids"] = torch.tensor([w[0] for w in enc.choices], dtype=torch.long)
    else:
        batch["labels"] = labels
    return batch, int(mask.sum())
