"""Which track wrote a training run, as the playground's run list shows it."""

from __future__ import annotations

import json

import yaml

from persianllama.serve.runs import scan, track


def _train_run(path, config: dict, *extra: str):
    path.mkdir(parents=True)
    (path / "metrics.jsonl").write_text(json.dumps({"kind": "train", "step": 1, "loss": 1.0}) + "\n")
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    for name in extra:
        (path / name).write_text("{}")
    return path


def test_a_distillation_run_is_not_called_a_zero_run(tmp_path):
    _train_run(tmp_path / "runs" / "zero", {"tokenizer": "t", "model": {"hidden_size": 64}}, "ds_config.json")
    _train_run(tmp_path / "runs" / "student", {"tokenizer": "t", "kd": {"alpha": 0.5}, "teacher": {"model": "m"}},
               "ds_config.json")
    runs = {k.split(":")[-1]: v for k, v in scan([tmp_path / "runs"]).items()}
    assert track(runs["zero"]) == "Zero"
    assert track(runs["student"]) == "Distillation"
