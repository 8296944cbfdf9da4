"""Runs you can trust (Zero track): no checkpoint file runs code, a damaged newest checkpoint is passed over,
an incompatible resume is refused before loading, and export never deletes what it did not create."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

from persianllama.run.checkpoint import manifest

MARKER_ENV = "PERSIANLLAMA_TEST_PAYLOAD_MARKER"


class Payload:
    """Unpickling this creates the marker file: proof that a loader ran code from a checkpoint."""

    def __reduce__(self):
        return (os.system, (f'touch "{os.environ[MARKER_ENV]}"',))


@pytest.fixture(scope="module")
def two_checkpoints(pretrain, run_args, one_rank_world, tmp_path_factory) -> Path:
    """A run with complete checkpoints at steps 3 and 6."""
    out = tmp_path_factory.mktemp("trust") / "run"
    saved = dict(os.environ)
    rc = pretrain.main(run_args(out, "train.max_steps=6", "checkpoint.save_interval=3", "log.eval_interval=0",
                                "log.eval_docs=0", "export=false"))
    os.environ.clear()
    os.environ.update(saved)
    assert rc == 0
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def _reseal(ckpt: Path) -> None:
    """Rewrite the manifest so that it matches the (tampered) files: only the unpickling guard is left."""
    state_file = ckpt / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["manifest"] = manifest(ckpt)
    state_file.write_text(json.dumps(state))


def _resume(pretrain, run_args, run: Path, *extra: str) -> int:
    return pretrain.main(run_args(run, "train.max_steps=7", "checkpoint.save_interval=100", "log.eval_interval=0",
                                  "log.eval_docs=0", "export=false", *extra))


@pytest.mark.parametrize("victim", ["mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt",
                                    "rng_state_0.safetensors"])
def test_a_pickle_payload_in_a_checkpoint_file_never_runs(victim, two_checkpoints, pretrain, run_args, tmp_path,
                                                         capsys, monkeypatch, clean_env):
    run = _copy(two_checkpoints, tmp_path)
    marker = tmp_path / "payload-ran"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    newest = run / "checkpoints" / "step_00000006"
    assert (newest / victim).is_file()
    (newest / victim).write_bytes(pickle.dumps({"module": Payload()}))
    _reseal(newest)  # the manifest would catch the change: take that guard away
    rc = _resume(pretrain, run_args, run)
    err = capsys.readouterr().err
    assert not marker.exists(), "a checkpoint file ran code"
    assert rc == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("pretrain: error: ") and victim in line, err[-2000:]


@pytest.mark.parametrize("victim", ["mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt",
                                    "rng_state_0.safetensors", "trainer_state.json"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_intact_one(victim, two_checkpoints, pretrain, run_args,
                                                                  tmp_path, caplog, clean_env):
    run = _copy(two_checkpoints, tmp_path)
    newest = run / "checkpoints" / "step_00000006"
    data = (newest / victim).read_bytes()
    (newest / victim).write_bytes(data[: len(data) // 2])  # truncated, as by a full disk or a bad copy
    with caplog.at_level("WARNING"):
        assert _resume(pretrain, run_args, run) == 0
    warnings = [r.getMessage() for r in caplog.records if " is damaged: " in r.getMessage()]
    assert len(warnings) == 1 and victim in warnings[0], warnings
    events = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"event"' in x]
    assert events[-1]["event"] == "resume" and events[-1]["checkpoint"].endswith("step_00000003")
    assert (run / "checkpoints" / "step_00000006.damaged" / victim).is_file()  # set aside, not deleted
    assert (run / "checkpoints" / "step_00000007" / "trainer_state.json").is_file()
    steps = sorted(json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines() if '"train"' in x)
    assert steps == list(range(1, 8))  # steps 4-6 trained again, none logged twice


@pytest.mark.parametrize("override,words", [
    ("model.hidden_size=128", "model.hidden_size=64, this run has model.hidden_size=128"),
    ("model.num_layers=3", "model.num_layers=2, this run has model.num_layers=3"),
])
def test_resume_with_another_model_shape_is_refused_before_loading(override, words, two_checkpoints, pretrain,
                                                                   run_args, tmp_path, capsys, clean_env):
    run = _copy(two_checkpoints, tmp_path)
    assert _resume(pretrain, run_args, run, override) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "cannot resume from" in line and words in line, line
    assert not (run / "checkpoints" / "step_00000007").exists()


def test_resume_with_another_tokenizer_is_refused(two_checkpoints, pretrain, tiny_tokenizer, run_args, tmp_path,
                                                 capsys, clean_env):
    run = _copy(two_checkpoints, tmp_path)
    other = tmp_path / "tok2"
    shutil.copytree(tiny_tokenizer, other)
    tj = json.loads((other / "tokenizer.json").read_text())
    vocab = tj["model"]["vocab"]
    a, b = sorted(vocab, key=vocab.get)[-2:]  # two ids swapped: same size, another tokenizer
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (other / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False))
    assert _resume(pretrain, run_args, run, f"tokenizer={other}") == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "cannot resume from" in line and "tokenizer=" in line


def test_changed_compatible_settings_are_listed_in_one_warning(two_checkpoints, pretrain, run_args, tmp_path,
                                                               caplog, clean_env):
    run = _copy(two_checkpoints, tmp_path)
    with caplog.at_level("WARNING"):
        assert _resume(pretrain, run_args, run, "train.lr=1e-3", "train.seed=7", "data.val_fraction=0.1") == 0
    lines = [r.getMessage() for r in caplog.records if "changed settings" in r.getMessage()]
    assert len(lines) == 1
    for words in ("train.lr 0.003 -> 0.001", "train.seed 1234 -> 7", "data.val_fraction 0.05 -> 0.1",
                  "train.max_steps 6 -> 7"):
        assert words in lines[0], lines[0]


def test_export_never_deletes_what_it_did_not_create(two_checkpoints, tmp_path, capsys):
    from persianllama.cli import main

    run = _copy(two_checkpoints, tmp_path)
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    # onto the run itself, and onto the checkpoints folder: refused, with or without --overwrite
    for target in (run, run / "checkpoints"):
        for flags in ([], ["--overwrite"]):
            assert main(["export", str(run), "--out", str(target), *flags]) == 2
            assert "error:" in capsys.readouterr().err
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == before
    # onto a folder with other files: refused without --overwrite, the files untouched
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    assert main(["export", str(run), "--out", str(other)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (other / "notes.txt").read_text() == "keep me"
    # a fresh folder, then replaced with --overwrite
    assert main(["export", str(run), "--out", str(tmp_path / "hf")]) == 0
    assert main(["export", str(run), "--out", str(tmp_path / "hf")]) == 2
    assert main(["export", str(run), "--out", str(tmp_path / "hf"), "--overwrite"]) == 0
    assert (tmp_path / "hf" / "model.safetensors").is_file()
    assert not list(tmp_path.glob(".hf.*"))  # no temporary folders left behind


def test_a_full_disk_during_a_checkpoint_is_one_line_and_the_rerun_resumes(two_checkpoints, pretrain, run_args,
                                                                            tmp_path, capsys, monkeypatch, clean_env):
    import errno

    from persianllama.run import checkpoint as core

    run = _copy(two_checkpoints, tmp_path)
    shutil.rmtree(run / "checkpoints" / "step_00000006")
    real = core.save_rng

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(core, "save_rng", full)
    assert _resume(pretrain, run_args, run) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("pretrain: error: no space left on the device while writing") and "rng_state_0" in line
    monkeypatch.setattr(core, "save_rng", real)
    assert _resume(pretrain, run_args, run) == 0  # the cut-off step_7 is passed over: resumes from step 3
    assert (run / "checkpoints" / "step_00000007" / "trainer_state.json").is_file()
