"""Metrics lm-eval does not have for Persian: F1/exact match after Persian normalization, SQuAD-2
answerability, Persian-script share and distinct-n of generations; macro-F1, per-class F1 and the
majority-class and chance baselines of classification tasks; the answer letter of a chat-mode
answer; corpus chrF/BLEU of translations.

lm-eval's SQuAD metrics (``squadv2``) download the ``squad_v2`` metric from the hub at run time and
normalize English (they drop "a/an/the" and ASCII punctuation only), so Persian answers that differ
only in ZWNJ, Arabic vs Persian letters (ي/ی, ك/ک) or digits (۱۳ vs 13) would not match. These are
plain functions over strings; the task helpers in ``tasks/utils.py`` wire them into lm-eval.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from persianllama.text.normalize import PersianNormalizer

# Latin digits so "۱۳" and "13" compare equal; the rest of the project's normalizer as is.
_NORMALIZER = PersianNormalizer(digits="latin")
_PUNCT_OR_SPACE = re.compile(r"[\s\u200c]+")
NO_ANSWER = "بی‌پاسخ"
"""What a model is asked to write when the passage does not answer the question."""
_NO_ANSWER_FORMS = {"بی پاسخ", "بدون پاسخ", "پاسخ ندارد", "ندارد", ""}


def normalize_answer(text: str) -> str:
    """Persian-normalize, lowercase, drop punctuation; ZWNJ counts as a word break (می‌روند == می روند)."""
    text = _NORMALIZER(text or "").lower()
    text = "".join(" " if unicodedata.category(ch).startswith(("P", "S")) else ch for ch in text)
    return " ".join(t for t in _PUNCT_OR_SPACE.split(text) if t)


def exact_match(prediction: str, golds: list[str]) -> float:
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(g) for g in golds))


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, golds: list[str]) -> float:
    """Token F1 against the best-matching gold answer (SQuAD's definition)."""
    p = normalize_answer(prediction).split()
    return max((_f1(p, normalize_answer(g).split()) for g in golds), default=0.0)


def clean_generation(text: str) -> str:
    """The answer part of a generation: first line, without a leading 'پاسخ:' and quotes."""
    text = (text or "").strip().split("\n", 1)[0].strip()
    for prefix in ("پاسخ:", "پاسخ :", "جواب:"):
        if text.startswith(prefix):
            text = text[len(prefix) :].strip()
    return text.strip("«»\"' ")


def is_no_answer(prediction: str) -> bool:
    p = normalize_answer(prediction)
    return p == normalize_answer(NO_ANSWER) or p in {normalize_answer(f) for f in _NO_ANSWER_FORMS}


def squad2_scores(prediction: str, golds: list[str], impossible: bool) -> dict[str, float]:
    """Per-question SQuAD-2 scores: an unanswerable question is right only when the model abstains."""
    abstained = is_no_answer(prediction)
    if impossible:
        em = f1 = float(abstained)
    else:
        em = 0.0 if abstained else exact_match(prediction, golds)
        f1 = 0.0 if abstained else f1_score(prediction, golds)
    return {"exact_match": em, "f1": f1, "answerability_acc": float(abstained == impossible)}


# --------------------------------------------------------------------------- generation quality


def _is_persian_letter(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x0600 <= cp <= 0x06FF or 0x0750 <= cp <= 0x077F or 0xFB50 <= cp <= 0xFDFF or 0xFE70 <= cp <= 0xFEFF
    )


def persian_script_share(text: str) -> float:
    """Share of the letters in `text` that are Arabic-script (Persian) letters; 0 when there are none.

    Only letters count (Unicode category L*), so digits, punctuation and spaces neither help nor hurt.
    """
    letters = [ch for ch in text if unicodedata.category(ch).startswith("L")]
    if not letters:
        return 0.0
    return sum(_is_persian_letter(ch) for ch in letters) / len(letters)


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct-n (Li et al., 2016): unique word n-grams / all word n-grams over all texts."""
    total, unique = 0, set()
    for text in texts:
        words = text.split()
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        total += len(grams)
        unique.update(grams)
    return len(unique) / total if total else 0.0


# --------------------------------------------------------------------------- classification

NO_PREDICTION = -1
"""The predicted class of a chat-mode answer that names no option letter: wrong for every gold class."""


def class_labels(golds: list[int], preds: list[int]) -> list[int]:
    """The classes macro-F1 averages over: every class that occurs as a gold label or a prediction
    (scikit-learn's default), never `NO_PREDICTION`. On a full test set that is every class of the
    task; on a `--limit` slice a class absent from both sides does not drag the mean down."""
    return sorted((set(golds) | set(preds)) - {NO_PREDICTION})


def confusion(golds: list[int], preds: list[int], labels: list[int]) -> dict[int, dict[str, int]]:
    """Per class: tp, fp, fn and gold support."""
    out = {c: {"tp": 0, "fp": 0, "fn": 0, "support": 0} for c in labels}
    for g, p in zip(golds, preds, strict=True):
        if g in out:
            out[g]["support"] += 1
        if g == p:
            if g in out:
                out[g]["tp"] += 1
            continue
        if p in out:
            out[p]["fp"] += 1
        if g in out:
            out[g]["fn"] += 1
    return out


def f1_from_counts(tp: float, fp: float, fn: float) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def per_class_f1(golds: list[int], preds: list[int], labels: list[int] | None = None) -> dict[int, float]:
    labels = class_labels(golds, preds) if labels is None else labels
    return {c: f1_from_counts(v["tp"], v["fp"], v["fn"]) for c, v in confusion(golds, preds, labels).items()}


def macro_f1(golds: list[int], preds: list[int], labels: list[int] | None = None) -> float:
    """Unweighted mean of the per-class F1 (sklearn's ``f1_score(average="macro", zero_division=0)``
    with the labels of `class_labels`). A model that always gives one answer gets that class's F1
    over the number of classes: on ParsiNLU food sentiment (70% "no sentiment") about 0.12, not 0.70."""
    f1s = per_class_f1(golds, preds, labels)
    return sum(f1s.values()) / len(f1s) if f1s else float("nan")


def majority_baseline(golds: list[int]) -> dict[str, float | int]:
    """Scores of always answering the commonest gold class (ties: the lowest class index)."""
    counts = Counter(golds)
    top = min(counts, key=lambda c: (-counts[c], c))
    preds = [top] * len(golds)
    acc = counts[top] / len(golds)
    return {"class": top, "acc": acc, "macro_f1": macro_f1(golds, preds)}


def chance_baseline(golds: list[int], n_choices: list[int]) -> dict[str, float]:
    """Expected scores of a uniform guess among each question's choices: accuracy is the mean of
    1/choices; macro-F1 is computed on the expected confusion counts (class c is predicted for a
    question with k choices with probability 1/k when c < k)."""
    n = len(golds)
    labels = sorted(set(golds) | {c for k in n_choices for c in range(k)})
    tp = {c: 0.0 for c in labels}
    predicted = {c: 0.0 for c in labels}
    support = Counter(golds)
    for g, k in zip(golds, n_choices, strict=True):
        tp[g] += 1 / k
        for c in range(k):
            predicted[c] += 1 / k
    f1s = [2 * tp[c] / (predicted[c] + support[c]) if predicted[c] + support[c] else 0.0 for c in labels]
    return {"acc": sum(1 / k for k in n_choices) / n, "macro_f1": sum(f1s) / len(f1s)}


def bootstrap_macro_f1_stderr(golds: list[int], preds: list[int], iters: int, seed: int = 1234) -> float | None:
    """Standard error of macro-F1 over `iters` bootstrap resamples of the questions (None if iters < 2)."""
    if iters < 2 or len(golds) < 2:
        return None
    import numpy as np

    rng = np.random.default_rng(seed)
    g = np.asarray(golds)
    p = np.asarray(preds)
    labels = class_labels(golds, preds)
    values = []
    for _ in range(iters):
        idx = rng.integers(0, len(g), len(g))
        gi, pi = g[idx], p[idx]
        f1s = []
        for c in labels:
            tp = float(np.sum((gi == c) & (pi == c)))
            fp = float(np.sum((gi != c) & (pi == c)))
            fn = float(np.sum((gi == c) & (pi != c)))
            f1s.append(f1_from_counts(tp, fp, fn))
        values.append(sum(f1s) / len(f1s))
    return float(np.std(values, ddof=1))


# --------------------------------------------------------------------------- chat-mode answers

LETTERS = "ABCDEFG"
# A lone Latin letter: not part of a longer Latin word ("Answer", "Bale"); Persian text around it is fine.
_LETTER = re.compile(r"(?<![A-Za-z])([A-G])(?![A-Za-z])")
_PERSIAN_LETTERS = {"الف": "A", "ب": "B", "ج": "C", "د": "D"}


def answer_letter(text: str, n_options: int) -> int:
    """Index of the option a chat-mode answer names, or `NO_PREDICTION`.

    The first lone letter among the first `n_options` (``B``, ``B.``, ``(B)``, ``گزینه B``,
    ``پاسخ: B``); an answer that is only a Persian option letter (الف/ب/ج/د, as Iranian exams
    write them) counts too. Anything else names no option (the model did not follow the format)."""
    allowed = LETTERS[:n_options]
    for match in _LETTER.finditer(text or ""):
        if match.group(1) in allowed:
            return allowed.index(match.group(1))
        break  # the first lone capital letter is the answer; a wrong one is not skipped over
    bare = (text or "").strip().strip(".:)(«»\"' ")
    bare = bare.replace("گزینه", "").strip()
    if bare in _PERSIAN_LETTERS and _PERSIAN_LETTERS[bare] in allowed:
        return allowed.index(_PERSIAN_LETTERS[bare])
    return NO_PREDICTION


# --------------------------------------------------------------------------- translation

_FA_TRANSLATION_NORMALIZER = PersianNormalizer()


def normalize_translation(text: str, lang: str) -> str:
    """Persian output and references go through the project's normalizer (letter variants ي/ی,
    ك/ک, ZWNJ, digits), so a translation is not penalised for spelling the same word with another
    code point; English is compared as is (sacrebleu's own tokenization)."""
    text = (text or "").strip()
    return _FA_TRANSLATION_NORMALIZER(text) if lang == "fa" else text


def _sacre(items: list[tuple[list[str], str]]) -> tuple[list[str], list[list[str | None]]]:
    hyps = [str(pred) for _, pred in items]
    width = max(len(refs) for refs, _ in items)
    # sacrebleu wants one stream per reference slot; a pair with fewer references leaves None there.
    streams = [[refs[i] if i < len(refs) else None for refs, _ in items] for i in range(width)]
    return hyps, streams


def corpus_chrf(items: list[tuple[list[str], str]]) -> float:
    """sacrebleu corpus chrF (char 6-grams, beta 2) over (references, hypothesis) pairs, 0..100."""
    import sacrebleu

    hyps, refs = _sacre(items)
    return sacrebleu.corpus_chrf(hyps, refs).score


def corpus_bleu(items: list[tuple[list[str], str]]) -> float:
    """sacrebleu corpus BLEU (13a tokenization, exponential smoothing) over (references, hypothesis)
    pairs, 0..100; every reference of a pair counts (multi-reference BLEU)."""
    import sacrebleu

    hyps, refs = _sacre(items)
    return sacrebleu.corpus_bleu(hyps, refs).score
