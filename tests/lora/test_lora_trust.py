"""Runs you can trust (LoRA track): no checkpoint file runs code, a damaged newest checkpoint is passed over,
an incompatible resume is refused before loading, merge never deletes its inputs, metrics and loss curve come
from the run core's writer."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

from persianllama.run.checkpoint import manifest
from persianllama.run.metrics import read_metrics

MARKER_ENV = "PERSIANLLAMA_TEST_PAYLOAD_MARKER"
STEPS = 6


class Payload:
    def __reduce__(self):
        return (os.system, (f'touch "{os.environ[MARKER_ENV]}"',))


def _overrides(assets, tiny, out, **extra):
    return tiny.overrides(assets, out, **{"train.max_steps": STEPS, "checkpoint.save_interval": 3,
                                          "log.eval_interval": 0, "log.eval_docs": 2, **extra})


@pytest.fixture(scope="module")
def lora_run(assets, tiny, make_config, tmp_path_factory) -> Path:
    from persianllama.lora import train

    out = tmp_path_factory.mktemp("lora trust") / "run"
    summary = train.run(make_config(assets, out, _overrides(assets, tiny, out)))
    assert summary["finished"]
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def _resume(assets, tiny, make_config, run: Path, **extra):
    from persianllama.lora import train

    return train.run(make_config(assets, run, _overrides(assets, tiny, run, **{"train.max_steps": STEPS + 1,
                                                                             **extra})))


def test_metrics_schema_and_loss_curve(lora_run):
    train, evals = read_metrics(lora_run / "metrics.jsonl")
    assert sorted(train) == list(range(1, STEPS + 1))
    assert set(evals) == {0, STEPS}  # the untouched base, then the end
    for rec in evals.values():
        assert {"loss", "bits_per_byte", "token_perplexity", "word_perplexity", "documents"} <= set(rec)
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "tokens_seen", "step_seconds"} <= set(train[1])
    assert (lora_run / "loss_curve.png").stat().st_size > 1000
    assert list((lora_run / "tensorboard").iterdir())


@pytest.mark.parametrize("victim", ["training_state.pt"])
def test_a_pickle_payload_never_runs(victim, lora_run, assets, tiny, make_config, tmp_path, monkeypatch):
    from persianllama.errors import UserError

    run = _copy(lora_run, tmp_path)
    marker = tmp_path / "payload-ran"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    newest = run / "checkpoints" / f"step_{STEPS:08d}"
    (newest / victim).write_bytes(pickle.dumps({"optimizer": Payload()}))
    state = json.loads((newest / "trainer_state.json").read_text())
    state["manifest"] = manifest(newest)  # the manifest would catch it: leave only the unpickling guard
    (newest / "trainer_state.json").write_text(json.dumps(state))
    with pytest.raises(UserError, match=f"{victim}: refused to load"):
        _resume(assets, tiny, make_config, run)
    assert not marker.exists()


@pytest.mark.parametrize("victim", ["adapter/adapter_model.safetensors", "training_state.pt",
                                    "rng_state.safetensors", "trainer_state.json"])
def test_a_damaged_newest_checkpoint_falls_back(victim, lora_run, assets, tiny, make_config, tmp_path, caplog):
    run = _copy(lora_run, tmp_path)
    newest = run / "checkpoints" / f"step_{STEPS:08d}"
    data = (newest / victim).read_bytes()
    (newest / victim).write_bytes(data[: len(data) // 2])
    with caplog.at_level("WARNING"):
        summary = _resume(assets, tiny, make_config, run)
    assert summary["finished"] and summary["step"] == STEPS + 1
    damaged = [r.getMessage() for r in caplog.records if " is damaged: " in r.getMessage()]
    assert len(damaged) == 1 and Path(victim).name in damaged[0], damaged
    train, _ = read_metrics(run / "metrics.jsonl")
    assert sorted(train) == list(range(1, STEPS + 2))  # steps 4.. trained again from step 3, none twice


def test_resume_with_another_rank_is_refused_naming_both(lora_run, assets, tiny, make_config, tmp_path):
    from persianllama.errors import UserError

    run = _copy(lora_run, tmp_path)
    with pytest.raises(UserError, match="it was written with lora.r=8, this run has lora.r=4"):
        _resume(assets, tiny, make_config, run, **{"lora.r": 4})


def test_merge_never_deletes_a_folder_holding_its_inputs(lora_run, assets, tmp_path, capsys):
    from persianllama.lora.cli import main

    parent = tmp_path / "parent"
    shutil.copytree(lora_run / "adapter", parent / "adapter")
    shutil.copytree(assets.base, parent / "base")
    before = sorted(str(p.relative_to(parent)) for p in parent.rglob("*"))
    for flags in ([], ["--overwrite"]):
        code = main(["merge", "--base", str(parent / "base"), "--adapter", str(parent / "adapter"),
                     "--output", str(parent), "--dtype", "fp32", *flags])
        assert code == 2 and "holds the input" in capsys.readouterr().err
    assert sorted(str(p.relative_to(parent)) for p in parent.rglob("*")) == before
    # into the adapter folder itself: refused too
    code = main(["merge", "--base", str(parent / "base"), "--adapter", str(parent / "adapter"),
                 "--output", str(parent / "adapter" / "merged"), "--dtype", "fp32", "--overwrite"])
    assert code == 2 and "is inside the input" in capsys.readouterr().err
    assert sorted(str(p.relative_to(parent)) for p in parent.rglob("*")) == before


def test_merge_checks_the_base_the_adapter_was_trained_on(lora_run, assets, tmp_path, capsys):
    import importlib.util

    from persianllama.lora.cli import main

    spec = importlib.util.spec_from_file_location("lora_conftest", Path(__file__).parent / "conftest.py")
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    record = json.loads((lora_run / "adapter" / "persianllama_base.json").read_text())
    assert record["base"] == str(assets.base) and len(record["weights_xxh3_128"]) == 32
    other = helpers.save_tiny_llama(tmp_path / "other base", assets.base_tok, seed=1)  # same shape, other weights
    args = ["merge", "--base", str(other), "--adapter", str(lora_run / "adapter"), "--dtype", "fp32"]
    assert main([*args, "--output", str(tmp_path / "m1")]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "has the same shape but other weights" in line and "--force" in line
    assert not (tmp_path / "m1").exists()
    assert main([*args, "--output", str(tmp_path / "m2"), "--force"]) == 0
    assert (tmp_path / "m2" / "model.safetensors").is_file()


def test_merge_of_a_truncated_adapter_is_one_line(lora_run, assets, tmp_path, capsys):
    from persianllama.lora.cli import main

    adapter = tmp_path / "adapter"
    shutil.copytree(lora_run / "adapter", adapter)
    data = (adapter / "adapter_model.safetensors").read_bytes()
    (adapter / "adapter_model.safetensors").write_bytes(data[: len(data) // 3])
    code = main(["merge", "--base", str(assets.base), "--adapter", str(adapter), "--output", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "adapter_model.safetensors cannot be read" in err.strip().splitlines()[-1]
