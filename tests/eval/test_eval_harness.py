"""The Persian tasks through lm-eval end to end, with models whose answers are known in advance."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from persianllama.eval.bpb import evaluate_bpb
from persianllama.eval.config import EvalConfig
from persianllama.eval.runner import evaluate, task_manager


def _tokens(tokenizer, text: str) -> set[int]:
    return set(tokenizer(text, add_special_tokens=False)["input_ids"])


def _save(model, tokenizer, path):
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _run(model_dir, tasks, out, data_dir, **kw):
    config = EvalConfig(
        model=str(model_dir),
        tasks=tasks,
        output=str(out),
        data_dir=str(data_dir),
        batch_size=4,
        bootstrap_iters=100,
        dtype="fp32",
        device="cpu",
        **kw,
    )
    return evaluate(config)


def _metric(results, task, name):
    return results["results"][task][f"{name},none"]


def _assert_only_choice_fully_preferred(tokenizer, preferred_ids, choices, right):
    """Precondition of the fixed-preference models: every other choice has a token outside the set."""
    for choice in choices:
        if choice != right:
            assert not _tokens(tokenizer, " " + choice) <= preferred_ids, choice


def test_model_preferring_every_right_answer_scores_one(tokenizer, unigram, task_data_dir, tmp_path, items):
    right = [c[a - 1] for _, _, c, a in items.mc]
    model, ids = unigram(tokenizer, [" " + r for r in right])
    for _, _, choices, answer in items.mc:
        _assert_only_choice_fully_preferred(tokenizer, ids, [c for c in choices if c], choices[answer - 1])
    res = _run(_save(model, tokenizer, tmp_path / "oracle"), ["parsinlu_mc"], tmp_path / "out", task_data_dir)
    for task in (
        "parsinlu_mc_literature",
        "parsinlu_mc_common_knowledge",
        "parsinlu_mc_math_logic",
        "parsinlu_mc",
    ):
        assert _metric(res, task, "acc") == 1.0, task
        assert _metric(res, task, "acc_norm") == 1.0, task
    assert res["n-samples"]["parsinlu_mc_literature"]["effective"] == 2
    assert _metric(res, "parsinlu_mc_literature", "acc_stderr") == 0.0


def test_model_preferring_a_fixed_wrong_choice_scores_its_base_rate(
    tokenizer, unigram, task_data_dir, tmp_path, items
):
    nli = ["درست", "نادرست", "نامشخص"]
    qqp = ["خیر", "بله"]
    sentiment = ["بدون نظر", "خیلی منفی", "منفی", "خنثی", "مثبت", "خیلی مثبت", "هم مثبت هم منفی"]
    model, ids = unigram(tokenizer, [" نامشخص", " بله", " بدون نظر"])
    for choices, fixed in ((nli, "نامشخص"), (qqp, "بله"), (sentiment, "بدون نظر")):
        others = [c for c in choices if c != fixed]
        for other in others:  # no other choice of the same task is made only of preferred tokens
            assert not _tokens(tokenizer, " " + other) <= ids, other
    res = _run(
        _save(model, tokenizer, tmp_path / "fixed"),
        ["farstail", "parsinlu_entailment", "parsinlu_qqp", "parsinlu_sentiment_food"],
        tmp_path / "out",
        task_data_dir,
    )
    neutral = sum(lab == "n" for _, _, lab in items.nli) / len(items.nli)
    assert _metric(res, "farstail", "acc") == pytest.approx(neutral) == pytest.approx(2 / 6)
    assert _metric(res, "parsinlu_entailment", "acc") == pytest.approx(neutral)
    assert _metric(res, "parsinlu_qqp", "acc") == pytest.approx(2 / 3)
    assert _metric(res, "parsinlu_sentiment_food", "acc") == pytest.approx(1 / 3)
    p = neutral
    assert _metric(res, "farstail", "acc_stderr") == pytest.approx(
        math.sqrt(p * (1 - p) / 5)
    )  # sample std / sqrt(n)


def test_abstaining_model_on_persianqa(tokenizer, unigram, task_data_dir, tmp_path, items):
    model, _ = unigram(tokenizer, ["\n"])  # greedy output is an empty line: "no answer"
    res = _run(
        _save(model, tokenizer, tmp_path / "abstain"),
        ["persianqa", "parsinlu_rc"],
        tmp_path / "out",
        task_data_dir,
    )
    flags = [imp for _, _, qas in items.qa for _, _, imp in qas]
    share = sum(flags) / len(flags)
    assert _metric(res, "persianqa", "exact_match") == pytest.approx(share)
    assert _metric(res, "persianqa", "f1") == pytest.approx(share)
    assert _metric(res, "persianqa", "answerability_acc") == pytest.approx(share)
    assert _metric(res, "persianqa", "no_ans_acc") == 1.0
    assert _metric(res, "persianqa", "has_ans_f1") == 0.0
    assert _metric(res, "parsinlu_rc", "f1") == 0.0 and _metric(res, "parsinlu_rc", "exact_match") == 0.0


def test_reported_loglikelihoods_equal_a_direct_forward_pass(
    tiny_model, model_dir, tokenizer, task_data_dir, tmp_path
):
    out = tmp_path / "out"
    _run(model_dir, ["parsinlu_mc_literature", "farstail"], out, task_data_dir, limit=2)
    checked = 0
    for task in ("parsinlu_mc_literature", "farstail"):
        for line in (out / "samples" / f"{task}.jsonl").read_text(encoding="utf-8").splitlines():
            sample = json.loads(line)
            for (context, continuation), resp in zip(sample["arguments"], sample["resps"], strict=True):
                ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
                whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
                assert whole[: len(ctx)] == ctx
                with torch.no_grad():
                    logp = torch.log_softmax(
                        tiny_model(input_ids=torch.tensor([whole])).logits[0].double(), -1
                    )
                direct = sum(logp[i - 1, whole[i]].item() for i in range(len(ctx), len(whole)))
                assert resp[0][0] == pytest.approx(direct, abs=1e-4)
                checked += 1
    assert checked == (4 + 3) + 2 * 3  # the second literature question has a blank 4th candidate


@pytest.mark.parametrize("adds_bos", [False, True])
def test_bpb_equals_lm_eval_rolling_loglikelihood(tiny_model, tokenizer, tmp_path, items, adds_bos):
    """Our bits-per-byte (the runner's and training's) == lm-eval's on the persian_bpb YAML.

    A tokenizer that adds BOS itself (LLaMA, Mistral) needs lm-eval's `add_bos_token=False` for the
    two to agree: lm-eval puts its own prefix token before the tokens and would otherwise score a
    second BOS."""
    import copy

    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from tokenizers.processors import TemplateProcessing

    if adds_bos:
        tokenizer = copy.deepcopy(tokenizer)
        tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", tokenizer.bos_token_id)]
        )
        assert tokenizer("سلام")["input_ids"][0] == tokenizer.bos_token_id
    text = tmp_path / "held_out.txt"
    docs = ["\n".join(items.ud), "سند کوتاه دوم.", " ".join(items.ud * 8)]  # the last needs several windows
    text.write_text("\n\n".join(docs), encoding="utf-8")
    lm = HFLM(
        pretrained=tiny_model,
        tokenizer=tokenizer,
        batch_size=4,
        max_length=32,
        add_bos_token=False if adds_bos else None,
    )
    out = simple_evaluate(
        model=lm,
        tasks=["persian_bpb"],
        task_manager=task_manager({"text": str(text)}),
        bootstrap_iters=0,
        log_samples=False,
    )
    ours = evaluate_bpb(tiny_model, tokenizer, docs, max_length=32)
    assert ours["windows"] > len(docs)
    theirs = out["results"]["persian_bpb"]
    assert ours["bits_per_byte"] == pytest.approx(theirs["bits_per_byte,none"], rel=1e-5)
    assert ours["word_perplexity"] == pytest.approx(theirs["word_perplexity,none"], rel=1e-4)


def test_generation_samples_are_kept_and_measured(model_dir, task_data_dir, tmp_path):
    out = tmp_path / "out"
    res = _run(model_dir, ["persian_generation"], out, task_data_dir, limit=3, max_gen_tokens=12)
    from persianllama.eval.metrics import distinct_n, persian_script_share

    rows = [
        json.loads(line)
        for line in (out / "samples/persian_generation.jsonl").read_text("utf-8").splitlines()
    ]
    texts = [r["filtered_resps"][0] for r in rows]
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    assert _metric(res, "persian_generation", "persian_share") == pytest.approx(
        sum(map(persian_script_share, texts)) / 3
    )
    assert _metric(res, "persian_generation", "distinct_1") == pytest.approx(distinct_n(texts, 1))
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Generation samples" in report and rows[0]["doc"]["prompt"] in report


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("PERSIANLLAMA_TEST_LM_EVAL_CLI"),
    reason="~30 s (lm_eval indexes its ~200 built-in task folders); set PERSIANLLAMA_TEST_LM_EVAL_CLI=1",
)
def test_tasks_run_under_plain_lm_eval_cli(model_dir, task_data_dir, tmp_path):
    """`lm_eval --include_path persianllama/eval/tasks` with the data location in --metadata."""
    import subprocess
    import sys
    from pathlib import Path

    import persianllama.eval

    tasks_dir = Path(persianllama.eval.__file__).parent / "tasks"
    cmd = [
        sys.executable,
        "-m",
        "lm_eval",
        "--model",
        "hf",
        "--model_args",
        f"pretrained={model_dir},dtype=float32",
        "--device",
        "cpu",
        "--include_path",
        str(tasks_dir),
        "--tasks",
        "parsinlu_mc,persianqa",
        "--limit",
        "2",
        "--metadata",
        json.dumps({"data_dir": str(task_data_dir)}),
        "--output_path",
        str(tmp_path / "out"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (result,) = (tmp_path / "out").rglob("results_*.json")
    results = json.loads(result.read_text(encoding="utf-8"))["results"]
    assert {"parsinlu_mc", "parsinlu_mc_literature", "persianqa"} <= set(results)
    assert "answerability_acc,none" in results["persianqa"]
