"""What a score alone does not say: prompts cut to fit the context, rows left out of a data set,
how a classifier's answers spread over the classes, and what trivial answerers score.

- `CountingHFLM`: lm-eval's HFLM that also records, per task and document, how many prompt tokens
  it cut from the left to fit the context window (lm-eval does this silently, with one log line
  per batch at most).
- `caveats`: per task, prompts truncated (and the most tokens cut), rows dropped and why.
- `classification`: per-class F1, the confusion counts, macro-F1 with a bootstrap standard error,
  from the per-document (gold, prediction, choices) triples the task helpers log in samples/.
- `baselines`: the majority-class and chance (uniform guess) scores of every classification
  task, and of PersianQA's "always abstain" answer, computed on the same documents.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from persianllama.eval import metrics as M


def counting_hflm_class():
    """HFLM subclass that records truncation (built lazily: importing lm-eval's HF model is slow)."""
    from lm_eval.models.huggingface import HFLM
    from lm_eval.models.utils import normalize_gen_kwargs

    class CountingHFLM(HFLM):
        """Counts, per (task, document), the tokens lm-eval cuts from the start of a prompt:
        loglikelihood requests keep the last max_length + 1 tokens of context + continuation;
        generation requests keep the last max_length - max_gen_toks tokens of the context."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.truncated: dict[str, dict[int, int]] = {}
            self._pending = None

        def _note(self, request, lost: int) -> None:
            docs = self.truncated.setdefault(str(request.task_name), {})
            docs[request.doc_id] = max(docs.get(request.doc_id, 0), lost)

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            self._pending = requests
            try:
                return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
            finally:
                self._pending = None

        def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
            pending = self._pending
            if pending is not None and len(pending) == len(requests):  # not the rolling (bpb) path
                for instance, (_, context_enc, continuation_enc) in zip(pending, requests, strict=True):
                    self._note(
                        instance, max(0, len(context_enc) + len(continuation_enc) - (self.max_length + 1))
                    )
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)

        def generate_until(self, requests, disable_tqdm: bool = False):
            for instance in requests:
                context, gen_kwargs = instance.args
                max_gen = normalize_gen_kwargs(dict(gen_kwargs), self.max_gen_toks)["max_gen_toks"]
                n = int(self.tok_batch_encode([context])[0].shape[1])
                self._note(instance, max(0, n - (self.max_length - max_gen)))
            return super().generate_until(requests, disable_tqdm=disable_tqdm)

    return CountingHFLM


def caveats(
    tasks: list[str],
    n_prompts: dict[str, int],
    truncated: dict[str, dict[int, int]],
    dropped: dict[str, dict[str, int]],
    max_length: int,
) -> dict[str, dict[str, Any]]:
    """Per task: prompts, truncated_prompts, max_truncated_tokens, dropped_rows, dropped_reasons."""
    out = {}
    for task in tasks:
        cut = [n for n in truncated.get(task, {}).values() if n > 0]
        reasons = {str(k): int(v) for k, v in (dropped.get(task) or {}).items()}
        out[task] = {
            "prompts": int(n_prompts.get(task, 0)),
            "truncated_prompts": len(cut),
            "max_truncated_tokens": max(cut, default=0),
            "context_tokens": max_length,
            "dropped_rows": sum(reasons.values()),
            "dropped_reasons": reasons,
        }
    return out


def warning_lines(caveats_by_task: dict[str, dict[str, Any]]) -> list[str]:
    """One line per non-zero caveat (report.md and the command's summary print them)."""
    lines = []
    for task, c in caveats_by_task.items():
        if c.get("truncated_prompts"):
            lines.append(
                f"{task}: {c['truncated_prompts']}/{c['prompts']} prompts truncated to the "
                f"{c['context_tokens']}-token context (up to {c['max_truncated_tokens']} tokens cut from the "
                "start: the passage or few-shot examples the model did not see)"
            )
        if c.get("dropped_rows"):
            why = "; ".join(f"{k}: {v}" for k, v in c["dropped_reasons"].items())
            lines.append(f"{task}: {c['dropped_rows']} row(s) of the data set left out ({why})")
    return lines


# --------------------------------------------------------------------------- classification


def _triples(rows: list[dict]) -> list[tuple[int, int, int]]:
    """(gold, prediction, choices) per document: logged by our task helpers as "macro_f1", or, for
    lm-eval's own multiple-choice tasks (acc), read from the choices' log-likelihoods the same way
    lm-eval picks its answer (argmax, first on ties)."""
    out = []
    for row in rows:
        value = row.get("macro_f1")
        if isinstance(value, (list, tuple)) and len(value) == 3:
            out.append((int(value[0]), int(value[1]), int(value[2])))
            continue
        lls = _choice_lls(row)
        if lls is None:
            return []
        out.append((int(row["target"]), max(range(len(lls)), key=lambda i: (lls[i], -i)), len(lls)))
    return out


def _choice_lls(row: dict) -> list[float] | None:
    if "acc" not in row or isinstance(row.get("target"), bool) or not isinstance(row.get("target"), int):
        return None
    lls = []
    for resp in row.get("resps") or []:
        first = resp[0] if isinstance(resp, (list, tuple)) and resp else None
        if not (isinstance(first, (list, tuple)) and len(first) == 2 and isinstance(first[0], (int, float))):
            return None
        lls.append(float(first[0]))
    return lls if lls and 0 <= row["target"] < len(lls) else None


def classification(
    rows: list[dict], class_names: list[str] | None = None, bootstrap_iters: int = 0, seed: int = 1234
) -> dict[str, Any] | None:
    """Per-class F1 and counts of one task from its sample rows (None if it is not a classification
    task)."""
    triples = _triples(rows)
    if not triples:
        return None
    golds = [g for g, _, _ in triples]
    preds = [p for _, p, _ in triples]
    labels = M.class_labels(golds, preds)
    counts = M.confusion(golds, preds, labels)
    predicted = Counter(preds)
    n = len(golds)

    def name(c: int) -> str:
        return class_names[c] if class_names and 0 <= c < len(class_names) else str(c)

    per_class = {
        name(c): {
            "f1": M.f1_from_counts(v["tp"], v["fp"], v["fn"]),
            "support": v["support"],
            "gold_share": v["support"] / n,
            "predicted": predicted.get(c, 0),
            "predicted_share": predicted.get(c, 0) / n,
        }
        for c, v in counts.items()
    }
    return {
        "n": n,
        "classes": [name(c) for c in labels],
        "macro_f1": M.macro_f1(golds, preds),
        "macro_f1_stderr": M.bootstrap_macro_f1_stderr(golds, preds, bootstrap_iters, seed),
        "per_class": per_class,
        "no_prediction": predicted.get(M.NO_PREDICTION, 0),
    }


def baselines(rows: list[dict], class_names: list[str] | None = None) -> dict[str, dict[str, Any]] | None:
    """Majority-class and chance scores of a task from its sample rows, under the metric names the task
    reports (acc/acc_norm for cloze tasks, exact_match for chat tasks, both with macro_f1).
    PersianQA-style rows (doc.is_impossible) get the "always abstain" answer as their majority row."""
    triples = _triples(rows)
    if triples:
        golds = [g for g, _, _ in triples]
        ks = [k for _, _, k in triples]
        majority = M.majority_baseline(golds)
        chance = M.chance_baseline(golds, ks)
        chat = "exact_match" in rows[0] and "acc" not in rows[0]
        score_names = (
            ["exact_match"] if chat else [m for m in ("acc", "acc_norm", "acc_bytes") if m in rows[0]]
        )
        top = majority["class"]
        label = class_names[top] if class_names and 0 <= top < len(class_names) else str(top)
        if chat:
            label = f"{label} ({_letter_of(rows[0], top)})"
        return {
            "majority": {
                "label": f"majority class (always {label})",
                **{s: majority["acc"] for s in score_names},
                "macro_f1": majority["macro_f1"],
            },
            "chance": {
                "label": "chance (uniform guess)",
                **{s: chance["acc"] for s in score_names},
                "macro_f1": chance["macro_f1"],
            },
        }
    docs = [row.get("doc") or {} for row in rows]
    if docs and all("is_impossible" in d for d in docs):
        share = sum(bool(d["is_impossible"]) for d in docs) / len(docs)
        return {
            "majority": {
                "label": f"always «{M.NO_ANSWER}»",
                "exact_match": share,
                "f1": share,
                "answerability_acc": share,
                "no_ans_acc": 1.0,
                "has_ans_f1": 0.0,
            }
        }
    return None


def _letter_of(row: dict, label: int) -> str:
    labels = (row.get("doc") or {}).get("option_labels") or []
    return M.LETTERS[labels.index(label)] if label in labels else "?"


def group_baselines(children: list[tuple[int, dict[str, dict[str, Any]]]]) -> dict[str, dict[str, Any]]:
    """A group's baselines: each metric's size-weighted mean over its subtasks (as lm-eval aggregates
    the group's own score)."""
    out: dict[str, dict[str, Any]] = {}
    for kind in ("majority", "chance"):
        parts = [(n, b[kind]) for n, b in children if b and kind in b]
        if not parts or len(parts) != len(children):
            continue
        names = set.intersection(*(set(k for k, v in p.items() if isinstance(v, float)) for _, p in parts))
        total = sum(n for n, _ in parts)
        row: dict[str, Any] = {
            "label": "majority class (per subtask)" if kind == "majority" else parts[0][1]["label"]
        }
        for metric in sorted(names):
            row[metric] = sum(n * p[metric] for n, p in parts) / total
        out[kind] = row
    return out
