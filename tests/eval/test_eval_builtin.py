"""lm-eval's own Persian tasks next to ours: listed with their data source, one line when their hub data
cannot be reached, and run from a local copy (a Parquet file or a snapshot folder of the hub repo)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import persianllama.cli
from persianllama.errors import UserError
from persianllama.eval.builtin import BUILTIN_TASKS, lm_eval_tasks_dir, local_override
from persianllama.eval.config import EvalConfig
from persianllama.eval.runner import evaluate


def main(argv: list[str]) -> int:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(persianllama.cli, "STAGES", ["persianllama.eval.cli"])
        return persianllama.cli.main(argv)


def _leaf_config(task) -> dict:
    """The YAML config (includes resolved) of the task itself, or of the first task of a group."""
    from lm_eval.tasks._yaml_loader import load_yaml

    folder = lm_eval_tasks_dir() / task.folder
    files = [p for p in sorted(folder.glob("*.yaml")) if task.name in p.read_text(encoding="utf-8")]
    configs = [load_yaml(p, resolve_func=False, recursive=True) for p in files]
    own = next(c for c in configs if c.get("task") == task.name or c.get("group") == task.name)
    if "group" not in own:
        return own
    leaves = [c for c in configs if isinstance(c.get("task"), str) and c["task"].startswith(task.name)]
    return leaves[0]


@pytest.mark.parametrize("name", sorted(BUILTIN_TASKS))
def test_registry_matches_lm_eval_yamls(name):
    task = BUILTIN_TASKS[name]
    cfg = _leaf_config(task)
    assert cfg["dataset_path"] == task.hub
    assert cfg.get("dataset_name") == task.config
    assert cfg.get("test_split") == task.test_split
    assert cfg.get("fewshot_split") == task.fewshot_split
    metrics = [m["metric"] for m in cfg.get("metric_list", [])]
    assert task.main_metric in metrics


def test_list_tasks_names_every_data_source(task_data_dir, capsys):
    assert main(["evaluate", "--list-tasks", "--data-dir", str(task_data_dir)]) == 0
    out = capsys.readouterr().out
    assert f"| farstail | cloze (log-likelihood) | macro_f1 | NLI | {task_data_dir}/farstail/data |" in out
    assert "| parsinlu_entailment_chat | chat (generated letter) |" in out
    assert "| persian_translation_en_fa | generation | chrf | translation |" in out
    for name, task in BUILTIN_TASKS.items():
        assert (
            f"| {name} | {task.main_metric} | {task.family} | hub {task.hub}, config {task.config} |" in out
        )


def test_offline_builtin_task_is_one_line(tmp_path, model_dir, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    argv = [
        "evaluate",
        "--model",
        str(model_dir),
        "--tasks",
        "belebele_pes_Arab",
        "--output",
        str(tmp_path / "o"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "belebele_pes_Arab: its data (hub facebook/belebele, config pes_Arab) cannot be loaded" in err
    assert "--data belebele_pes_Arab=DIR" in err and not (tmp_path / "o").exists()


BELEBELE = {  # the upstream columns; the questions are ours
    "flores_passage": ["تهران پایتخت ایران است.", "کارون پرآب‌ترین رود ایران است.", "حافظ در شیراز زیست."],
    "question": ["پایتخت ایران کجاست؟", "پرآب‌ترین رود ایران کدام است؟", "حافظ کجا زندگی می‌کرد؟"],
    "mc_answer1": ["شیراز", "ارس", "شیراز"],
    "mc_answer2": ["تهران", "کارون", "تبریز"],
    "mc_answer3": ["تبریز", "زاینده‌رود", "مشهد"],
    "mc_answer4": ["مشهد", "سفیدرود", "یزد"],
    "correct_answer_num": ["2", "2", "1"],
}


@pytest.fixture(scope="module")
def belebele_copies(tmp_path_factory):
    root = tmp_path_factory.mktemp("belebele")
    parquet = root / "file" / "pes_Arab.parquet"
    parquet.parent.mkdir()
    pq.write_table(pa.table(BELEBELE), parquet)
    snapshot = root / "snapshot"  # what `hf download facebook/belebele --repo-type dataset --local-dir` gives
    (snapshot / "data").mkdir(parents=True)
    pq.write_table(pa.table(BELEBELE), snapshot / "data" / "pes_Arab.parquet")
    (snapshot / "README.md").write_text(
        "---\nconfigs:\n- config_name: pes_Arab\n  data_files:\n  - split: test\n    path: data/pes_Arab.parquet\n---\n",
        encoding="utf-8",
    )
    return {"file": parquet, "snapshot": snapshot}


@pytest.mark.parametrize("kind", ["file", "snapshot"])
def test_builtin_task_from_a_local_copy(kind, belebele_copies, tokenizer, unigram, tmp_path, monkeypatch):
    """A model that always prefers the letter B scores the share of B answers (2 of 3), with lm-eval's
    own prompt and metric, plus our majority/chance rows and macro-F1."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    model, _ = unigram(tokenizer, [" B"])
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    res = evaluate(
        EvalConfig(
            model=str(tmp_path / "m"),
            tasks=["belebele_pes_Arab"],
            output=str(tmp_path / "out"),
            data={"belebele_pes_Arab": str(belebele_copies[kind])},
            batch_size=4,
            bootstrap_iters=0,
            dtype="fp32",
            device="cpu",
        )
    )
    assert res["results"]["belebele_pes_Arab"]["acc,none"] == pytest.approx(2 / 3)
    base = res["persianllama"]["baselines"]["belebele_pes_Arab"]
    assert base["majority"]["label"] == "majority class (always B)" and base["majority"][
        "acc"
    ] == pytest.approx(2 / 3)
    assert (
        res["persianllama"]["classification"]["belebele_pes_Arab"]["per_class"]["B"]["predicted_share"] == 1.0
    )
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "| belebele_pes_Arab | acc ↑ |" in report and "| reading comprehension |" in report


def test_local_override_layouts(tmp_path):
    fa = tmp_path / "Global-MMLU" / "fa"
    fa.mkdir(parents=True)
    for split in ("test", "dev"):
        pq.write_table(pa.table({"question": ["؟"]}), fa / f"{split}-00000-of-00001.parquet")
    got = local_override("global_mmlu_full_fa", str(tmp_path / "Global-MMLU"))
    assert got["dataset_path"] == "parquet" and got["dataset_name"] is None
    assert got["dataset_kwargs"]["data_files"] == {
        "test": [str(fa / "test-00000-of-00001.parquet")],
        "dev": [str(fa / "dev-00000-of-00001.parquet")],
    }
    with pytest.raises(UserError, match="no such file or directory"):
        local_override("belebele_pes_Arab", str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"no test\*.parquet/.jsonl/.csv file"):
        local_override("belebele_pes_Arab", str(tmp_path / "empty"))
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(UserError, match="expected a .parquet, .jsonl, .json or .csv file"):
        local_override("belebele_pes_Arab", str(tmp_path / "x.txt"))
