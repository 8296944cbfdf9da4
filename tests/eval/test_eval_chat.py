"""Chat-mode (lettered-option) tasks end to end under a chat template, and the same numbers from lm-eval's
own model loading path (what its CLI runs) and, opt-in, from the printed lm_eval command line."""

from __future__ import annotations

import json
import os
import shlex

import pytest

import persianllama.cli
from persianllama.eval import metrics as M
from persianllama.eval.config import EvalConfig
from persianllama.eval.runner import TASK_DIR, evaluate

CHAT_TASKS = ["parsinlu_mc_chat", "parsinlu_entailment_chat", "parsinlu_qqp_chat", "farstail_chat"]
SYSTEM = "شما یک دستیار فارسی‌زبان هستید."


@pytest.fixture(scope="module")
def letter_b_model_dir(tmp_path_factory, chat_tokenizer, unigram):
    """A tiny LLaMA whose every next token is "B", saved with a tokenizer that has a chat template: it
    answers every lettered question with option B."""
    model, ids = unigram(chat_tokenizer, ["B"])
    assert len(ids) == 1
    path = tmp_path_factory.mktemp("letter-b")
    model.save_pretrained(path)
    chat_tokenizer.save_pretrained(path)
    return path


def _config(model_dir, data_dir, out, **kw):
    return EvalConfig(
        model=str(model_dir),
        tasks=CHAT_TASKS,
        output=str(out),
        data_dir=str(data_dir),
        batch_size=4,
        bootstrap_iters=0,
        dtype="fp32",
        device="cpu",
        max_gen_tokens=1,  # the model writes "B" forever; one token is the answer
        apply_chat_template=True,
        system_prompt=SYSTEM,
        num_fewshot=1,
        **kw,
    )


@pytest.fixture(scope="module")
def chat_run(letter_b_model_dir, task_data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("chat") / "out"
    return evaluate(_config(letter_b_model_dir, task_data_dir, out)), out


def _metric(results, task, name):
    return results["results"][task][f"{name},none"]


def test_chat_tasks_score_the_generated_letter(chat_run, items):
    res, out = chat_run
    nli_b = sum(lab == "c" for _, _, lab in items.nli) / len(items.nli)  # B = نادرست (contradiction)
    for task in ("parsinlu_entailment_chat", "farstail_chat"):
        assert _metric(res, task, "exact_match") == pytest.approx(nli_b)
        assert _metric(res, task, "no_answer") == 0.0
        golds = [{"e": 0, "c": 1, "n": 2}[lab] for _, _, lab in items.nli]
        assert _metric(res, task, "macro_f1") == pytest.approx(M.macro_f1(golds, [1] * len(golds)))
    qqp_b = sum(lab == "0" for _, _, lab in items.qqp) / len(items.qqp)  # B = خیر (not a paraphrase)
    assert _metric(res, "parsinlu_qqp_chat", "exact_match") == pytest.approx(qqp_b)
    mc_b = sum(answer == 2 for _, _, _, answer in items.mc) / len(items.mc)  # B = the second candidate
    assert _metric(res, "parsinlu_mc_chat", "exact_match") == pytest.approx(mc_b)
    assert res["persianllama"]["baselines"]["parsinlu_entailment_chat"]["chance"][
        "exact_match"
    ] == pytest.approx(1 / 3)

    sample = json.loads(
        (out / "samples" / "parsinlu_entailment_chat.jsonl").read_text("utf-8").splitlines()[0]
    )
    prompt = sample["arguments"][0][0]
    # the chat template, the system message, the one-shot example as an earlier turn, the lettered options
    assert prompt.startswith(f"<s>system\n{SYSTEM}</s>\n<s>user\n")
    assert prompt.count("<s>user\n") == 2 and prompt.count("<s>assistant\n") == 2
    assert "A. درست\nB. نادرست\nC. نامشخص\n" in prompt and prompt.endswith("<s>assistant\n")
    assert sample["filtered_resps"][0].strip() == "B"
    report = (out / "report.md").read_text(encoding="utf-8")
    assert f"| chat template | yes, system prompt «{SYSTEM}» |" in report
    assert "| majority class (always " in report


def test_same_numbers_as_lm_eval_loading_the_model_itself(chat_run, letter_b_model_dir, task_data_dir):
    """What `lm_eval --model hf --model_args pretrained=DIR --apply_chat_template ...` runs, in process:
    lm-eval builds the model from the folder; the task YAMLs come from our folder."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    res, _ = chat_run
    theirs = simple_evaluate(
        model="hf",
        model_args={"pretrained": str(letter_b_model_dir), "dtype": "float32", "device": "cpu"},
        tasks=CHAT_TASKS,
        num_fewshot=1,
        batch_size=4,
        task_manager=TaskManager(
            include_path=str(TASK_DIR), include_defaults=False, metadata={"data_dir": str(task_data_dir)}
        ),
        apply_chat_template=True,
        system_instruction=SYSTEM,
        fewshot_as_multiturn=True,
        gen_kwargs={"max_gen_toks": 1},
        bootstrap_iters=0,
        log_samples=False,
        random_seed=1234,
        numpy_random_seed=1234,
        torch_random_seed=1234,
        fewshot_random_seed=1234,
    )["results"]
    compared = 0
    for task, metrics in res["results"].items():
        for key, value in metrics.items():
            if "," in key and "_stderr" not in key:
                assert theirs[task][key] == pytest.approx(value), (task, key)
                compared += 1
    assert compared >= 4 * 3


def test_chat_template_required(model_dir, task_data_dir, tmp_path):
    from persianllama.errors import UserError

    with pytest.raises(UserError, match="has no chat template"):
        evaluate(_config(model_dir, task_data_dir, tmp_path / "o"))


def _main(argv):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(persianllama.cli, "STAGES", ["persianllama.eval.cli"])
        return persianllama.cli.main(argv)


def test_lm_eval_command_prints_two_runs(letter_b_model_dir, task_data_dir, tmp_path, capsys):
    argv = [
        "evaluate",
        "--model",
        str(letter_b_model_dir),
        "--tasks",
        "persian_bpb,parsinlu_entailment_chat",
        "--data-dir",
        str(task_data_dir),
        "--apply-chat-template",
        "--system-prompt",
        SYSTEM,
        "--num-fewshot",
        "1",
        "--output",
        str(tmp_path / "o"),
        "--lm-eval-command",
        "max_gen_tokens=1",
    ]
    assert _main(argv) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("lm_eval ")]
    assert len(lines) == 2 and not (tmp_path / "o").exists()  # printed, nothing run
    bpb, rest = (shlex.split(line) for line in lines)
    assert bpb[bpb.index("--tasks") + 1] == "persian_bpb"
    assert "add_bos_token=False" in bpb[bpb.index("--model_args") + 1]
    assert "add_bos_token" not in rest[rest.index("--model_args") + 1]
    assert rest[rest.index("--tasks") + 1] == "parsinlu_entailment_chat"
    assert rest[rest.index("--system_instruction") + 1] == SYSTEM and "--apply_chat_template" in rest
    assert json.loads(rest[rest.index("--metadata") + 1]) == {"data_dir": str(task_data_dir.resolve())}
    assert rest[rest.index("--include_path") + 1] == str(TASK_DIR)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("PERSIANLLAMA_TEST_LM_EVAL_CLI"),
    reason="~40 s (lm_eval indexes its ~230 built-in task folders); set PERSIANLLAMA_TEST_LM_EVAL_CLI=1",
)
def test_printed_lm_eval_command_gives_the_same_numbers(
    chat_run, letter_b_model_dir, task_data_dir, tmp_path, capsys
):
    import subprocess
    import sys

    res, _ = chat_run
    argv = [
        "evaluate",
        "--model",
        str(letter_b_model_dir),
        "--tasks",
        ",".join(CHAT_TASKS),
        "--data-dir",
        str(task_data_dir),
        "--apply-chat-template",
        "--system-prompt",
        SYSTEM,
        "--num-fewshot",
        "1",
        "--batch-size",
        "4",
        "--dtype",
        "fp32",
        "--device",
        "cpu",
        "--output",
        str(tmp_path / "o"),
        "--lm-eval-command",
        "max_gen_tokens=1",
    ]
    assert _main(argv) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("lm_eval ")]
    cmd = [sys.executable, "-m", "lm_eval", *shlex.split(line)[1:]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = (tmp_path / "o" / "lm_eval").rglob("results_*.json")
    theirs = json.loads(path.read_text(encoding="utf-8"))["results"]
    for task, metrics in res["results"].items():
        for key, value in metrics.items():
            if "," in key and "_stderr" not in key:
                assert theirs[task][key] == pytest.approx(value), (task, key)


# --------------------------------------------------------------------------- persian_generation for chat models


@pytest.fixture(scope="module")
def chat_model_dir(tmp_path_factory, tiny_model, chat_tokenizer):
    """The tiny model saved with a tokenizer that has a chat template: a "chat model" as the harness sees it."""
    path = tmp_path_factory.mktemp("tiny-chat")
    tiny_model.save_pretrained(path)
    chat_tokenizer.save_pretrained(path)
    return path


def _generation_run(model_dir, data_dir, out, **kw):
    config = EvalConfig(model=str(model_dir), tasks=["persian_generation", "parsinlu_entailment"], output=str(out),
                        data_dir=str(data_dir), limit=2, max_gen_tokens=3, batch_size=4, bootstrap_iters=0,
                        dtype="fp32", device="cpu", **kw)
    res = evaluate(config)
    rows = {task: [json.loads(x) for x in (out / "samples" / f"{task}.jsonl").read_text("utf-8").splitlines()]
            for task in ("persian_generation", "parsinlu_entailment")}
    return res, rows, (out / "report.md").read_text(encoding="utf-8")


def test_generation_prompts_go_through_a_chat_models_template(chat_model_dir, chat_tokenizer, task_data_dir,
                                                              tmp_path):
    res, rows, report = _generation_run(chat_model_dir, task_data_dir, tmp_path / "chat")
    assert len(rows["persian_generation"]) == 2
    for row in rows["persian_generation"]:
        expected = chat_tokenizer.apply_chat_template([{"role": "user", "content": row["doc"]["prompt"]}],
                                                      tokenize=False, add_generation_prompt=True)
        assert row["arguments"][0][0] == expected  # what generate() was given: the template's rendering
        assert expected.startswith("<s>user\n") and expected.endswith("<s>assistant\n")
    for row in rows["parsinlu_entailment"]:  # the other tasks keep apply_chat_template (off here)
        assert "<s>user" not in row["arguments"][0][0] and "<s>assistant" not in row["arguments"][0][0]
    meta = res["persianllama"]
    assert meta["generation_chat_template"] is True and meta["apply_chat_template"] is False
    assert "Prompt format: **chat template**" in report
    assert "| chat template | no; persian_generation: yes |" in report
    assert "```\n<s>user\n" + rows["persian_generation"][0]["doc"]["prompt"] in report

    # generation_template=plain: the same chat model continues the raw prompts
    res, rows, report = _generation_run(chat_model_dir, task_data_dir, tmp_path / "plain",
                                        generation_template="plain")
    assert all(r["arguments"][0][0] == r["doc"]["prompt"] for r in rows["persian_generation"])
    assert res["persianllama"]["generation_chat_template"] is False
    assert "Prompt format: **plain text**" in report and "<s>user" not in report


def test_generation_prompts_stay_plain_without_a_template(model_dir, task_data_dir, tmp_path):
    res, rows, report = _generation_run(model_dir, task_data_dir, tmp_path / "base")
    assert all(r["arguments"][0][0] == r["doc"]["prompt"] for r in rows["persian_generation"])
    assert res["persianllama"]["generation_chat_template"] is False
    assert "Prompt format: **plain text**" in report and "| chat template | no |" in report

    from persianllama.errors import UserError

    with pytest.raises(UserError, match="generation_template=chat: tokenizer .* has no chat template"):
        _generation_run(model_dir, task_data_dir, tmp_path / "forced", generation_template="chat")


def test_lm_eval_command_gives_the_generation_format(model_dir, task_data_dir):
    from persianllama.eval.commands import lm_eval_commands

    def commands(**kw):
        config = EvalConfig(model=str(model_dir), tasks=["parsinlu_entailment", "persian_generation"],
                            data_dir=str(task_data_dir), output="o", **kw)
        return [shlex.split(x) for x in lm_eval_commands(config) if x.startswith("lm_eval ")], lm_eval_commands(config)

    (one,), text = commands()  # auto: lm_eval cannot know the tokenizer; a comment says what to do
    assert "--apply_chat_template" not in one and any("generation_template=auto" in x for x in text)
    (rest, gen), _ = commands(generation_template="chat")
    assert rest[rest.index("--tasks") + 1] == "parsinlu_entailment" and "--apply_chat_template" not in rest
    assert gen[gen.index("--tasks") + 1] == "persian_generation" and "--apply_chat_template" in gen
    (rest, gen), _ = commands(generation_template="plain", apply_chat_template=True)
    assert "--apply_chat_template" in rest and "--apply_chat_template" not in gen
