"""The run core on its own: settings rules, RNG state, manifests, safe loading, output guards, metrics schema,
the precision rule. (The tracks' end-to-end trust tests are in tests/train/test_trust.py and
tests/lora/test_lora_trust.py.)"""

from __future__ import annotations

import json
import os
import pickle
import random

import numpy as np
import pytest

from persianllama import config as configlib
from persianllama.errors import UserError
from persianllama.run import checkpoint as ckpt
from persianllama.run.metrics import RunLog, read_metrics, summarize
from persianllama.run.outputs import prepare_output
from persianllama.run.resume import check_compatible
from persianllama.run.settings import CheckpointConfig, LogSettings, TrainSettings


@pytest.mark.parametrize("overrides,words", [
    (["micro_batch_size=0"], "micro_batch_size=0 is out of range: it must be >= 1"),
    (["lr=-1"], "lr=-1.0 is out of range: it must be > 0"),
    (["lr=inf"], "lr='inf' is not a finite number"),
    (["min_lr=0.1", "lr=0.01"], "min_lr=0.1 must be <= lr=0.01"),
    (["beta2=1"], "beta2=1.0 is out of range: it must be in [0, 1)"),
    (["grad_accum_steps=0"], "grad_accum_steps=0 is out of range: it must be >= 1"),
    (["seq_len=1"], "seq_len=1 is out of range: it must be >= 2"),
])
def test_shared_training_settings_are_checked_when_loaded(overrides, words):
    with pytest.raises(configlib.ConfigError) as e:
        configlib.load(TrainSettings, None, overrides)
    assert words in str(e.value)


def test_rules_show_in_describe_and_lists_parse_strictly():
    text = configlib.describe(CheckpointConfig) + configlib.describe(LogSettings)
    assert "save_interval: int (>= 1) = 1000" in text and "eval_docs: int (>= 0) = 64" in text
    with pytest.raises(configlib.ConfigError, match="not a valid list or mapping"):
        configlib.parse_overrides(["oscar.blocked_categories=[adult"])
    assert configlib.parse_overrides(["a=[x, y]"]) == {"a": ["x", "y"]}


def test_rng_state_round_trips_without_pickle(tmp_path):
    import torch

    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    ckpt.save_rng(tmp_path / "rng.safetensors")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    ckpt.load_rng(tmp_path / "rng.safetensors")
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    (tmp_path / "bad.safetensors").write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(ckpt.DamagedCheckpoint, match="bad.safetensors is not a readable RNG state"):
        ckpt.load_rng(tmp_path / "bad.safetensors")


class _Payload:
    def __reduce__(self):
        return (os.system, (f'touch "{os.environ["PAYLOAD_MARKER"]}"',))


def test_safe_torch_load_refuses_code_and_names_the_file(tmp_path, monkeypatch):
    import torch

    marker = tmp_path / "ran"
    monkeypatch.setenv("PAYLOAD_MARKER", str(marker))
    torch.save({"w": torch.ones(2), "step": 3, "names": ["a"]}, tmp_path / "ok.pt")
    assert ckpt.safe_torch_load(tmp_path / "ok.pt")["step"] == 3
    for proto in (2, 4):
        (tmp_path / "evil.pt").write_bytes(pickle.dumps({"w": _Payload()}, protocol=proto))
        with pytest.raises(UserError, match=r"evil.pt: refused to load"):
            ckpt.safe_torch_load(tmp_path / "evil.pt")
    torch.save({"w": torch.ones(2)}, tmp_path / "evil2.pt")
    data = (tmp_path / "evil2.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[:40])
    with pytest.raises(ckpt.DamagedCheckpoint, match="cut.pt cannot be read"):
        ckpt.safe_torch_load(tmp_path / "cut.pt")
    assert not marker.exists()


def _complete(root, step, payload=b"weights"):
    path = ckpt.prepare(root, step)
    (path / "w.bin").write_bytes(payload * 100)
    (path / "sub").mkdir()
    (path / "sub" / "a.txt").write_text("x")
    return ckpt.finalize(path, {"step": step})


def test_manifest_verification_and_fallback(tmp_path, caplog):
    root = tmp_path / "checkpoints"
    _complete(root, 3)
    six = _complete(root, 6)
    assert ckpt.find_resumable(root)[0].name == "step_00000006"
    assert (root / "latest").read_text() == "step_00000006"
    # same size, other bytes: only the hash sees it
    data = bytearray((six / "w.bin").read_bytes())
    data[0] ^= 1
    (six / "w.bin").write_bytes(bytes(data))
    assert ckpt.verify(six, "size")["step"] == 6
    with pytest.raises(ckpt.DamagedCheckpoint, match="does not match the hash"):
        ckpt.verify(six, "hash")
    with caplog.at_level("WARNING"):
        path, state = ckpt.find_resumable(root)
    assert path.name == "step_00000003" and state["step"] == 3
    assert (root / "step_00000006.damaged" / "w.bin").is_file()
    # a missing file, a state file that is not JSON
    nine = _complete(root, 9)
    (nine / "sub" / "a.txt").unlink()
    with pytest.raises(ckpt.DamagedCheckpoint, match="a.txt is missing"):
        ckpt.verify(nine)
    (nine / "trainer_state.json").write_text('{"step": 9, "man')
    with pytest.raises(ckpt.DamagedCheckpoint, match="trainer_state.json cannot be read"):
        ckpt.verify(nine)
    # prune keeps the newest complete ones, never the set-aside folders
    for s in (12, 15, 18):
        _complete(root, s)
    ckpt.prune(root, keep_last=2)
    names = sorted(p.name for p in root.iterdir())
    assert "step_00000015" in names and "step_00000018" in names and "step_00000012" not in names
    assert "step_00000006.damaged" in names


def test_compatibility_check_names_both_values(tmp_path, caplog):
    saved = {"identity": {"model.hidden_size": 64, "tokenizer": "a" * 64}, "settings": {"train.lr": 0.1}}
    with pytest.raises(UserError, match="written with model.hidden_size=64, this run has model.hidden_size=128"):
        check_compatible(tmp_path, saved, identity={"model.hidden_size": 128}, settings={})
    with caplog.at_level("WARNING"):
        changed = check_compatible(tmp_path, saved, identity={"model.hidden_size": 64},
                                   settings={"train.lr": 0.2, "train.seed": 1})
    assert changed == ["train.lr 0.1 -> 0.2"] and "changed settings: train.lr 0.1 -> 0.2" in caplog.text


def test_prepare_output_guards(tmp_path):
    src = tmp_path / "in" / "ckpt"
    src.mkdir(parents=True)
    for out, words in ((tmp_path / "in", "holds the input"), (src / "x", "is inside the input")):
        with pytest.raises(UserError, match=words):
            prepare_output(out, inputs=[src], overwrite=True, what="export")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(UserError, match="holds a training run"):
        prepare_output(run, inputs=[], overwrite=True, what="export")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is an existing file"):
        prepare_output(tmp_path / "file", inputs=[], overwrite=True, what="export")
    full = tmp_path / "full"
    full.mkdir()
    (full / "old.txt").write_text("old")
    with pytest.raises(UserError, match="pass --overwrite"):
        prepare_output(full, inputs=[], overwrite=False, what="export")
    target = prepare_output(full, inputs=[], overwrite=True, what="export")
    (target.tmp / "new.txt").write_text("new")
    assert (full / "old.txt").exists()  # nothing replaced until the new content is complete
    target.commit()
    assert [p.name for p in full.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_runlog_schema_and_resume_truncation(tmp_path):
    log = RunLog(tmp_path, active=True, tensorboard=False, progress=False)
    for s in (1, 2, 3):
        log.write({"kind": "train", "step": s, "loss": 3.0 - s / 10, "lr": 1e-3, "grad_norm": 1.0,
                   "tokens_per_s": 10.0, "tokens_seen": s * 8, "step_seconds": 0.1})
    log.write({"kind": "eval", "step": 3, "loss": 2.5, "bits_per_byte": 1.5, "token_perplexity": 12.0,
               "word_perplexity": 30.0, "tokens": 10, "bytes": 20, "documents": 1, "seconds": 0.1})
    with pytest.raises(ValueError, match="lacks"):
        log.write({"kind": "eval", "step": 4, "val_loss": 1.0})
    log.close()
    summary = summarize(tmp_path / "metrics.jsonl")
    assert summary["train_loss_last_step"] == 3 and summary["eval_last"]["bits_per_byte"] == 1.5
    # resumed from step 2: records of step 3 are dropped (they will be trained again)
    RunLog(tmp_path, active=True, tensorboard=False, progress=False, start_step=2).close()
    train, evals = read_metrics(tmp_path / "metrics.jsonl")
    assert sorted(train) == [1, 2] and not evals
    RunLog(tmp_path, active=True, tensorboard=False, progress=False).close()  # a fresh run: an empty file
    assert (tmp_path / "metrics.jsonl").read_text() == ""
    assert json.loads("{}") == {}


def test_one_precision_rule(monkeypatch):
    from persianllama.run import device

    assert device.choose_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(device, "bf16_supported", lambda d: d == "cuda")
    assert device.choose_precision("auto", "cuda") == "bf16"
    monkeypatch.setattr(device, "bf16_supported", lambda d: False)
    assert device.choose_precision("auto", "cuda") == "fp16"
    with pytest.raises(UserError, match="model.dtype=fp16 is not supported on CPU"):
        device.choose_precision("fp16", "cpu", key="model.dtype")
