"""lm-eval helpers for the Persian task YAMLs in this folder (``!function utils.NAME``).

Works with plain ``lm_eval --include_path persianllama/eval/tasks`` as long as ``persianllama`` is
installed. Where the data lives is read from lm-eval's task metadata, so plain lm_eval users pass::

    --metadata '{"data_dir": "../shared/data"}'                  # the upstream repositories' layout
    --metadata '{"data": {"farstail": "/path/to/FarsTail/data"}}'  # or one data set at a time

(or set $PERSIANLLAMA_EVAL_DATA). Without either, data sets load from their hub ids.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from persianllama.eval import data as D
from persianllama.eval import metrics as M

HERE = Path(__file__).resolve().parent


def _dataset(records: list[dict]):
    import datasets

    return datasets.Dataset.from_list(records)


def load(
    dataset: str,
    category: str | None = None,
    data: dict | None = None,
    data_dir: str | None = None,
    choices: list[str] | None = None,
    options: list | None = None,
    **_metadata,
):
    """`custom_dataset` for every classification/QA task: {"test": ..., "train": ...} records.

    lm-eval calls this with the task's ``dataset_kwargs`` and metadata (model args, version, ...) as
    keyword arguments; `data`/`data_dir` say where the data is. `choices` (cloze tasks) become each
    record's ``choices``, the answers whose log-likelihoods are compared; `options` (chat tasks,
    ``[[text, label], ...]`` in display order) become lettered options A, B, C... A multiple-choice
    record brings its own choices, which are then its options too.
    """
    import datasets

    splits = {}
    for split in ("test", "train"):
        loaded = D.load_split(dataset, split, data=data, data_dir=data_dir)
        records = loaded.records
        if category:
            records = [r for r in records if r.get("category") == category]
            if split == "test" and not records:
                raise D.UserError(f"{loaded.source}: no {dataset} records in category {category!r}")
        splits[split] = _dataset([_with_options(r, choices, options) for r in records])
    return datasets.DatasetDict(splits)


def _with_options(record: dict, choices: list[str] | None, options: list | None) -> dict:
    record = dict(record)
    if choices is not None:
        record["choices"] = list(choices)
    if options is not None:
        record["options"] = [str(text) for text, _ in options]
        record["option_labels"] = [int(label) for _, label in options]
    elif "choices" in record:
        record["options"] = list(record["choices"])
        record["option_labels"] = list(range(len(record["choices"])))
    if "options" in record:
        record["answer_letter"] = M.LETTERS[record["option_labels"].index(record["label"])]
    return record


def dropped_rows(dataset_kwargs: dict | None, data: dict | None = None, data_dir: str | None = None) -> dict:
    """Rows of a task's test split that its loader left out, by reason ({} when none or when the
    task is not ours). Same sources as `load`, so the count is of the rows that task would have had."""
    kwargs = dict(dataset_kwargs or {})
    if kwargs.get("direction"):  # translation
        return dict(D.load_parallel("test", data=data, data_dir=data_dir).skipped)
    key = kwargs.get("dataset")
    if key not in D.DATASETS:
        return {}
    loaded = D.load_split(key, "test", data=data, data_dir=data_dir)
    return dict(loaded.skipped_in(kwargs.get("category")))


def load_text(data: dict | None = None, data_dir: str | None = None, **_metadata):
    """`custom_dataset` for persian_bpb: one row {"text"} per held-out document."""
    import datasets

    docs = []
    for source in D.resolve_text_source(data, data_dir):
        docs.extend(D.read_text_documents(source))
    return datasets.DatasetDict({"test": _dataset([{"text": t} for t in docs])})


def load_generation_prompts(data: dict | None = None, **_metadata):
    """`custom_dataset` for persian_generation: our own Persian prompts, or --data generation=FILE
    (a .txt with one prompt per line, or a .json/.jsonl of {"prompt": ...})."""
    import datasets

    source = (data or {}).get("generation")
    path = Path(source).expanduser() if source else HERE / "generation_prompts.json"
    if not path.is_file():
        raise D.UserError(f"{path}: no such file (generation prompts)")
    if path.suffix == ".txt":
        prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    elif path.suffix == ".jsonl":
        prompts = [obj.get("prompt", "") for _, obj in D.read_jsonl(path)]
    else:
        try:
            prompts = [p["prompt"] if isinstance(p, dict) else p for p in json.loads(path.read_text("utf-8"))]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise D.UserError(
                f'{path}: expected a JSON list of prompts or of {{"prompt": ...}} ({e})'
            ) from None
    prompts = [p for p in prompts if isinstance(p, str) and p.strip()]
    if not prompts:
        raise D.UserError(f"{path}: no prompts")
    return datasets.DatasetDict({"test": _dataset([{"prompt": p} for p in prompts])})


# --------------------------------------------------------------------------- classification (cloze)


def process_choice(doc: dict, results: list[tuple[float, bool]]) -> dict:
    """Multiple-choice scoring: lm-eval's acc and acc_norm (argmax of the log-likelihoods, and of
    the log-likelihoods per character of each choice, as lm-eval computes them), plus the
    (gold, prediction, number of choices) triple behind macro-F1, the per-class F1 and the baselines,
    and ParsiNLU's natural / translated subsets where the record has one."""
    import numpy as np

    lls = np.array([ll for ll, _ in results])
    choices = doc["choices"]
    lengths = np.array([float(len(c)) for c in choices])
    pred = int(np.argmax(lls))
    pred_norm = int(np.argmax(lls / lengths))
    gold = int(doc["label"])
    out = {
        "acc": 1.0 if pred == gold else 0.0,
        "acc_norm": 1.0 if pred_norm == gold else 0.0,
        "macro_f1": (gold, pred, len(choices)),
    }
    return _with_subset(doc, out, "acc", "macro_f1")


SUBSETS = ("natural", "translated")


def _with_subset(doc: dict, out: dict, score: str, f1: str) -> dict:
    """Every document reports every subset metric (NaN / None outside its subset, skipped by the
    aggregations), so lm-eval counts all metrics over the same documents."""
    subset = doc.get("subset")
    if subset in SUBSETS:
        for name in SUBSETS:
            out[f"{score}_{name}"] = out[score] if name == subset else float("nan")
            out[f"{f1}_{name}"] = out[f1] if name == subset else None
    return out


def macro_f1(items: list) -> float:
    """Aggregation: macro-F1 over (gold, prediction, choices) triples (see `metrics.macro_f1`);
    None items (documents outside a subset) are skipped."""
    kept = [t for t in items if t is not None]
    golds = [int(g) for g, _, _ in kept]
    preds = [int(p) for _, p, _ in kept]
    return M.macro_f1(golds, preds) if kept else float("nan")


# --------------------------------------------------------------------------- classification (chat)


def _lettered(doc: dict) -> str:
    letters = M.LETTERS[: len(doc["options"])]
    lines = [f"{letter}. {text}" for letter, text in zip(letters, doc["options"], strict=True)]
    listed = "، ".join(letters[:-1]) + " یا " + letters[-1]
    return "\n".join(lines) + f"\nفقط حرف گزینهٔ درست ({listed}) را بنویسید.\nپاسخ:"


def mc_chat_text(doc: dict) -> str:
    return f"پرسش: {doc['question']}\n" + _lettered(doc)


def nli_chat_text(doc: dict) -> str:
    return (
        f"متن: {doc['premise']}\nفرضیه: {doc['hypothesis']}\n"
        "با توجه به متن، فرضیه درست است، نادرست است یا نامشخص؟\n" + _lettered(doc)
    )


def qqp_chat_text(doc: dict) -> str:
    return f"پرسش ۱: {doc['q1']}\nپرسش ۲: {doc['q2']}\nآیا این دو پرسش یک معنا دارند؟\n" + _lettered(doc)


def process_chat(doc: dict, results: list[str]) -> dict:
    """A chat-mode answer: the option letter it names (`metrics.answer_letter`) against the gold
    letter. exact_match is the leaderboards' accuracy; no_answer is the share of answers that name
    no option (counted wrong)."""
    index = M.answer_letter(results[0], len(doc["options"]))
    pred = doc["option_labels"][index] if index != M.NO_PREDICTION else M.NO_PREDICTION
    gold = int(doc["label"])
    out = {
        "exact_match": 1.0 if pred == gold else 0.0,
        "macro_f1": (gold, pred, len(doc["options"])),
        "no_answer": 1.0 if index == M.NO_PREDICTION else 0.0,
    }
    return _with_subset(doc, out, "exact_match", "macro_f1")


# --------------------------------------------------------------------------- translation

LANGS = {"fa": "فارسی", "en": "انگلیسی"}


def load_translation(direction: str, data: dict | None = None, data_dir: str | None = None, **_metadata):
    """`custom_dataset` of the translation tasks: {"source", "references", "target_lang"} per pair of
    the parallel text (the ParsiNLU Quran translations by default; see `data.load_parallel`)."""
    import datasets

    src, tgt = direction.split("-")
    splits = {}
    for split in ("test", "train"):
        pairs = D.load_parallel(split, data=data, data_dir=data_dir).records
        rows = [
            {"id": p["id"], "source": p[src][0], "references": p[tgt], "target_lang": tgt} for p in pairs
        ]
        splits[split] = _dataset(rows)
    return datasets.DatasetDict(splits)


def translation_target(doc: dict) -> str:
    return doc["references"][0]


def process_translation(doc: dict, results: list[str]) -> dict:
    lang = doc["target_lang"]
    hyp = M.normalize_translation((results[0] or "").strip().split("\n", 1)[0], lang)
    refs = [M.normalize_translation(r, lang) for r in doc["references"]]
    return {"chrf": (refs, hyp), "bleu": (refs, hyp)}


def chrf(items: list) -> float:
    return M.corpus_chrf([(list(refs), hyp) for refs, hyp in items])


def bleu(items: list) -> float:
    return M.corpus_bleu([(list(refs), hyp) for refs, hyp in items])


# --------------------------------------------------------------------------- generative QA


def rc_target(doc: dict) -> str:
    return doc["answers"][0]


def process_rc(doc: dict, results: list[str]) -> dict:
    prediction = M.clean_generation(results[0])
    return {
        "exact_match": M.exact_match(prediction, doc["answers"]),
        "f1": M.f1_score(prediction, doc["answers"]),
    }


def squad2_target(doc: dict) -> str:
    return doc["answers"][0] if doc["answers"] else M.NO_ANSWER


def process_squad2(doc: dict, results: list[str]) -> dict:
    prediction = M.clean_generation(results[0])
    scores = M.squad2_scores(prediction, doc["answers"], doc["is_impossible"])
    nan = float("nan")
    return {
        **scores,
        # Subset scores: NaN outside the subset, averaged by `mean_present`.
        "has_ans_f1": nan if doc["is_impossible"] else scores["f1"],
        "has_ans_exact": nan if doc["is_impossible"] else scores["exact_match"],
        "no_ans_acc": scores["exact_match"] if doc["is_impossible"] else nan,
    }


def mean_present(values: list[float]) -> float:
    """Mean over the values that are not NaN (a subset metric); NaN when the subset is empty."""
    kept = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    return sum(kept) / len(kept) if kept else float("nan")


# --------------------------------------------------------------------------- generation samples


def process_generation(doc: dict, results: list[str]) -> dict:
    text = results[0]
    return {
        "persian_share": M.persian_script_share(text),
        "distinct_1": text,
        "distinct_2": text,
        "words": float(len(text.split())),
    }


def distinct_1(texts: list[str]) -> float:
    return M.distinct_n(texts, 1)


def distinct_2(texts: list[str]) -> float:
    return M.distinct_n(texts, 2)
