"""`persianllama evaluate` and `--compare` as a user runs them, and their one-line errors."""

from __future__ import annotations

import json
import shutil

import pytest

import persianllama.cli


def main(argv: list[str]) -> int:
    """The real `persianllama` entry point with only the evaluate stage registered, so these tests do not
    depend on the other stages' modules (edited concurrently)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(persianllama.cli, "STAGES", ["persianllama.eval.cli"])
        return persianllama.cli.main(argv)


def _strict_json(path):
    def no_nan(value):
        raise AssertionError(f"{path} holds {value}, which is not JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=no_nan)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, model_dir, task_data_dir):
    root = tmp_path_factory.mktemp("runs")
    common = [
        "--model",
        str(model_dir),
        "--data-dir",
        str(task_data_dir),
        "--limit",
        "2",
        "--device",
        "cpu",
        "--batch-size",
        "4",
        "max_gen_tokens=8",
        "bootstrap_iters=100",
    ]
    assert (
        main(
            [
                "evaluate",
                *common,
                "--tasks",
                "persian_bpb,parsinlu_mc,persianqa,persian_generation",
                "--output",
                str(root / "zero"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "evaluate",
                *common,
                "--tasks",
                "persian_bpb,parsinlu_mc",
                "--num-fewshot",
                "1",
                "--output",
                str(root / "one"),
            ]
        )
        == 0
    )
    return root


def test_evaluate_writes_results_report_chart_and_samples(two_runs, model_dir, capsys):
    out = two_runs / "zero"
    results = _strict_json(out / "results.json")
    meta = results["persianllama"]
    assert meta["model"] == str(model_dir) and meta["adapter"] is None and meta["num_fewshot"] == 0
    assert {"lm_eval", "torch", "transformers", "peft"} <= set(meta["versions"])
    assert meta["started"] <= meta["finished"] and meta["examples_per_second"] > 0
    # lm-eval's own layout is kept: results with stderr, configs, n-shot, n-samples, group_subtasks
    assert results["results"]["parsinlu_mc_literature"]["acc_stderr,none"] >= 0
    assert results["group_subtasks"]["parsinlu_mc"] == [
        "parsinlu_mc_literature",
        "parsinlu_mc_common_knowledge",
        "parsinlu_mc_math_logic",
    ]
    assert results["n-samples"]["persianqa"] == {"original": 5, "effective": 2}
    assert "persianqa" in results["configs"]
    assert results["results"]["persian_bpb"]["bpb_details"]["documents"] == 2
    report = (out / "report.md").read_text(encoding="utf-8")
    for heading in (
        "## Summary",
        "## Bits per byte",
        "### parsinlu_mc_math_logic",
        "### persianqa",
        "## Generation samples",
        "| answerability_acc |",
        "![main metric per task](chart.png)",
    ):
        assert heading in report, heading
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "parsinlu_mc_common_knowledge.jsonl",
        "parsinlu_mc_literature.jsonl",
        "parsinlu_mc_math_logic.jsonl",
        "persian_generation.jsonl",
        "persianqa.jsonl",
    ]
    assert _strict_json(two_runs / "one" / "results.json")["n-shot"]["parsinlu_mc_literature"] == 1
    # the honest-metrics blocks: caveats per task, per-class F1, majority and chance rows
    assert set(meta["caveats"]) >= {"parsinlu_mc_literature", "persianqa", "persian_generation"}
    assert meta["classification"]["parsinlu_mc_literature"]["n"] == 2
    assert {"majority", "chance"} <= set(meta["baselines"]["parsinlu_mc"])
    assert "## Leaderboard summary" in report and "| chance (uniform guess) |" in report


def test_compare_puts_runs_side_by_side(two_runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert (
        main(["evaluate", "--compare", str(two_runs / "zero"), str(two_runs / "one"), "--output", str(out)])
        == 0
    )
    report = (out / "report.md").read_text(encoding="utf-8")
    header = next(line for line in report.splitlines() if line.startswith("| task | metric |"))
    assert "(zero)" in header and "(one)" in header  # same model: labels told apart by folder
    assert "| persian_bpb | bits_per_byte ↓ |" in report and "| persianqa | f1 ↑ |" in report
    lines = report.splitlines()
    board = lines[lines.index("## Leaderboard summary") :]
    assert board[4].startswith("| model | multiple-choice QA | reading comprehension |")
    assert sum(line.startswith("| tiny-llama") for line in board[:10]) == 2  # one row per run
    assert any(line.startswith("| *majority class* |") for line in board[:10])
    assert _strict_json(out / "results.json")["leaderboard"]["families"][0] == "multiple-choice QA"
    table = _strict_json(out / "results.json")["table"]
    row = next(r for r in table if r["task"] == "persian_bpb" and r["metric"] == "bits_per_byte")
    assert len(row["values"]) == 2
    assert (out / "chart.png").read_bytes()[:4] == b"\x89PNG"


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err  # one clear line, no traceback
    return err


def test_bad_inputs_are_one_line_naming_the_file_or_task(model_dir, task_data_dir, tmp_path, capsys):
    base = ["evaluate", "--model", str(model_dir), "--output", str(tmp_path / "o"), "--device", "cpu"]
    err = _error(capsys, base + ["--tasks", "farstail", "--data-dir", str(tmp_path)])
    assert "farstail/data: no such file or directory (data for farstail)" in err

    broken = tmp_path / "broken"
    shutil.copytree(task_data_dir, broken)
    (broken / "parsinlu/data/qqp/test.jsonl").write_text(
        '{"q1": "الف", "q2": "ب", "label": "1"}\n{oops\n', "utf-8"
    )
    err = _error(capsys, base + ["--tasks", "parsinlu_qqp", "--data-dir", str(broken)])
    assert f"{broken}/parsinlu/data/qqp/test.jsonl:2: not valid JSON" in err

    err = _error(capsys, base + ["--tasks", "parsinlu_sentimentt", "--data-dir", str(task_data_dir)])
    assert "unknown task 'parsinlu_sentimentt'; known: all," in err and "parsinlu_sentiment_food" in err

    err = _error(capsys, base + ["--tasks", "persian_bpb", "--data", "text=" + str(tmp_path / "nope.txt")])
    assert "nope.txt: no such file or directory (held-out text for persian_bpb)" in err

    err = _error(
        capsys,
        base
        + [
            "--tasks",
            "persianqa",
            "--num-fewshot",
            "2",
            "--data",
            "persianqa=" + str(task_data_dir / "persianqa/dataset/pqa_test.json"),
        ],
    )
    assert err.startswith("persianllama evaluate: error: persianqa: 2-shot needs 2 training example(s)")

    err = _error(capsys, base + ["--tasks", "farstail", "--data", "farstail"])
    assert "--data 'farstail': expected KEY=PATH_OR_HUB_ID" in err

    err = _error(capsys, ["evaluate", "--compare", str(tmp_path), "--output", str(tmp_path / "c")])
    assert f"{tmp_path}/results.json: no results.json" in err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--limit", "0"], "limit=0 is out of range: it must be >= 1"),
        (["--limit", "1.5"], "--limit='1.5' is not an integer"),
        (["--batch-size", "-2"], "batch_size=-2 is out of range: it must be >= 1"),
        (["--num-fewshot", "-1"], "num_fewshot=-1 is out of range: it must be >= 0"),
        (["--max-length", "16", "bpb_stride=32"], "bpb_stride=32 must be <= max_length=16"),
    ],
)
def test_settings_out_of_range_are_one_line_before_anything_loads(extra, message, tmp_path, capsys):
    """Checked when the settings load: the model does not even need to exist, and nothing is written."""
    err = _error(capsys, ["evaluate", "--model", str(tmp_path / "no-model"), "--output", str(tmp_path / "o"), *extra])
    assert err == f"persianllama evaluate: error: {message}"
    assert not (tmp_path / "o").exists()


def test_output_that_is_a_file_is_refused_before_loading(model_dir, tmp_path, capsys):
    out = tmp_path / "results.json"
    out.write_text("{}")
    err = _error(capsys, ["evaluate", "--model", str(model_dir), "--tasks", "persian_bpb", "--output", str(out)])
    assert err.endswith(f"--output {out} is a file, not a folder; pass a folder (it is created if missing)")
    assert out.read_text() == "{}"
