"""Scores that cannot be gamed and caveats that are not silent: macro-F1 with per-class F1, majority and
chance rows, natural vs translated subsets, truncated prompts and dropped rows in results.json and
report.md."""

from __future__ import annotations

import csv
import json

import pytest
from sklearn.metrics import f1_score

from persianllama.eval import metrics as M
from persianllama.eval.config import EvalConfig
from persianllama.eval.runner import evaluate

NLI = ["درست", "نادرست", "نامشخص"]


def _save(model, tokenizer, path):
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _run(model_dir, tasks, out, data_dir=None, **kw):
    config = EvalConfig(
        model=str(model_dir),
        tasks=tasks,
        output=str(out),
        data_dir=str(data_dir) if data_dir else None,
        batch_size=4,
        bootstrap_iters=50,
        dtype="fp32",
        device="cpu",
        **kw,
    )
    return evaluate(config)


def _metric(results, task, name):
    return results["results"][task][f"{name},none"]


@pytest.fixture(scope="module")
def skewed_farstail(tmp_path_factory, items):
    """A FarsTail test file (the upstream tab-separated format) where neutral is the majority class:
    4 neutral, 2 entailment, 1 contradiction."""
    rows = [(p, h, "n") for p, h, _ in items.nli[:4]] + [(p, h, "e") for p, h, _ in items.nli[4:6]]
    rows.append((items.nli[0][0], items.nli[1][1], "c"))
    path = tmp_path_factory.mktemp("skewed") / "Test-word.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, delimiter="\t").writerows([("premise", "hypothesis", "label"), *rows])
    return path, [{"n": 2, "e": 0, "c": 1}[lab] for _, _, lab in rows]


def test_constant_answer_scores_macro_f1_at_the_majority_baseline(
    tokenizer, unigram, skewed_farstail, tmp_path
):
    """Accuracy rewards always answering the commonest class (4/7 here); macro-F1 does not, and the
    report puts the majority-class and chance rows next to the model's."""
    path, golds = skewed_farstail
    model, ids = unigram(tokenizer, [" نامشخص"])  # prefers exactly the tokens of the neutral answer
    for other in NLI[:2]:
        assert not set(tokenizer(" " + other, add_special_tokens=False)["input_ids"]) <= ids
    out = tmp_path / "out"
    res = _run(_save(model, tokenizer, tmp_path / "m"), ["farstail"], out, data={"farstail": str(path)})

    constant = [2] * len(golds)
    expected = f1_score(golds, constant, average="macro", zero_division=0)  # sklearn, as ParsBench scores
    assert _metric(res, "farstail", "acc") == pytest.approx(4 / 7)
    assert _metric(res, "farstail", "macro_f1") == pytest.approx(expected) == pytest.approx((8 / 11) / 3)
    meta = res["persianllama"]
    majority = meta["baselines"]["farstail"]["majority"]
    assert majority["acc"] == pytest.approx(4 / 7)  # the constant model is exactly at the majority baseline
    assert majority["macro_f1"] == pytest.approx(_metric(res, "farstail", "macro_f1"))
    chance = meta["baselines"]["farstail"]["chance"]
    assert chance["acc"] == pytest.approx(1 / 3)
    per_class = meta["classification"]["farstail"]["per_class"]
    assert per_class["neutral"]["f1"] == pytest.approx(8 / 11) and per_class["entailment"]["f1"] == 0.0
    assert per_class["neutral"]["predicted_share"] == 1.0 and per_class["entailment"]["support"] == 2

    report = (out / "report.md").read_text(encoding="utf-8")
    model_row = next(line for line in report.splitlines() if line.startswith("| this model |"))
    majority_row = next(
        line for line in report.splitlines() if line.startswith("| majority class (always neutral) |")
    )
    assert next(line for line in report.splitlines() if line.startswith("| chance (uniform guess) |"))
    f1_text = f"{expected:.4f}"
    assert f1_text in model_row and f1_text in majority_row
    summary = next(line for line in report.splitlines() if line.startswith("| farstail | macro_f1 ↑ |"))
    assert summary.count(f1_text) == 2  # the model's value and the majority column
    assert "| *majority class* |" in report and "## Leaderboard summary" in report


def test_macro_f1_and_baselines_match_sklearn_and_their_definitions():
    import random

    rng = random.Random(0)
    for k in (2, 3, 7):
        golds = [rng.randrange(k) for _ in range(300)]
        preds = [rng.choice([*range(k), M.NO_PREDICTION]) for _ in range(300)]
        assert M.macro_f1(golds, preds) == pytest.approx(
            f1_score(golds, preds, labels=list(range(k)), average="macro", zero_division=0)
        )
        # the chance row is the limit of many uniform guessers
        guesses = [[rng.randrange(k) for _ in golds] for _ in range(400)]
        acc = (
            sum(sum(g == p for g, p in zip(golds, guess, strict=True)) / len(golds) for guess in guesses)
            / 400
        )
        chance = M.chance_baseline(golds, [k] * len(golds))
        assert chance["acc"] == pytest.approx(1 / k) and acc == pytest.approx(1 / k, abs=0.01)
        assert chance["macro_f1"] == pytest.approx(sum(M.macro_f1(golds, g) for g in guesses) / 400, abs=0.01)
    # ParsiNLU food sentiment: 943 of 1344 test rows are "no sentiment expressed" (-3)
    golds = [0] * 943 + [1] * 401
    assert M.majority_baseline(golds)["acc"] == pytest.approx(0.7016, abs=1e-4)


def test_natural_and_translated_subsets(model_dir, task_data_dir, tmp_path):
    out = tmp_path / "out"
    res = _run(model_dir, ["parsinlu_entailment", "parsinlu_qqp"], out, task_data_dir)
    for task in ("parsinlu_entailment", "parsinlu_qqp"):
        rows = [
            json.loads(line) for line in (out / "samples" / f"{task}.jsonl").read_text("utf-8").splitlines()
        ]
        for subset in ("natural", "translated"):
            part = [r for r in rows if r["doc"]["subset"] == subset]
            assert part, (task, subset)
            assert _metric(res, task, f"acc_{subset}") == pytest.approx(
                sum(r["acc"] for r in part) / len(part)
            )
            golds = [r["macro_f1"][0] for r in part]
            preds = [r["macro_f1"][1] for r in part]
            assert _metric(res, task, f"macro_f1_{subset}") == pytest.approx(M.macro_f1(golds, preds))
        assert {r["doc"]["subset"] for r in rows} == {"natural", "translated"}
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "acc_natural" in report and "macro_f1_translated" in report


def test_truncated_prompts_and_dropped_rows_are_recorded(model_dir, task_data_dir, tokenizer, tmp_path):
    """A 40-token context cuts every PersianQA prompt (the passage start is lost) and most FarsTail
    ones; the counts and the largest cut, recomputed here from the logged prompts, are in results.json
    and report.md, with the ParsiNLU entailment row labelled '-' that was left out."""
    out = tmp_path / "out"
    res = _run(
        model_dir,
        ["persianqa", "farstail", "parsinlu_entailment"],
        out,
        task_data_dir,
        max_length=40,
        max_gen_tokens=4,
    )
    caveats = res["persianllama"]["caveats"]

    def logged(task):
        return [
            json.loads(line) for line in (out / "samples" / f"{task}.jsonl").read_text("utf-8").splitlines()
        ]

    def n_tokens(text):
        return len(tokenizer(text)["input_ids"])

    cuts = [max(0, n_tokens(r["arguments"][0][0]) - (40 - 4)) for r in logged("persianqa")]
    assert caveats["persianqa"]["prompts"] == 5 and caveats["persianqa"]["truncated_prompts"] == 5
    assert caveats["persianqa"]["max_truncated_tokens"] == max(cuts) > 0

    # each choice's context + continuation must fit in max_length + 1 tokens (the last one is only a target)
    cuts = [
        max(max(0, n_tokens(ctx + cont) - 41) for ctx, cont in r["arguments"]) for r in logged("farstail")
    ]
    assert caveats["farstail"]["truncated_prompts"] == sum(c > 0 for c in cuts) > 0
    assert caveats["farstail"]["max_truncated_tokens"] == max(cuts)
    assert caveats["parsinlu_entailment"]["dropped_rows"] == 1
    assert caveats["parsinlu_entailment"]["dropped_reasons"] == {"label '-' is not one of e, c, n": 1}
    assert caveats["farstail"]["dropped_rows"] == 0

    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Caveats" in report
    assert "⚠ persianqa: 5/5 prompts truncated to the 40-token context" in report
    assert (
        "⚠ parsinlu_entailment: 1 row(s) of the data set left out (label '-' is not one of e, c, n: 1)"
        in report
    )


def test_nothing_is_flagged_when_everything_fits(model_dir, task_data_dir, tmp_path):
    res = _run(model_dir, ["farstail", "persianqa"], tmp_path / "out", task_data_dir, max_gen_tokens=4)
    caveats = res["persianllama"]["caveats"]
    assert all(c["truncated_prompts"] == 0 and c["dropped_rows"] == 0 for c in caveats.values())
    assert "## Caveats" not in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")


def test_context_too_short_for_generation_is_one_clear_error(model_dir, task_data_dir, tmp_path):
    from persianllama.errors import UserError

    with pytest.raises(UserError, match=r"persianqa generates up to 48 tokens, .* 32-token context"):
        _run(model_dir, ["persianqa"], tmp_path / "out", task_data_dir, max_length=32)
