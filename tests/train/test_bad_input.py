"""Each bad input stops scripts/pretrain.py with one clear line, before any long work starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from persianllama.run import device as plan

REPO = Path(__file__).resolve().parents[2]


def _hostfile(tmp_path):
    path = tmp_path / "hostfile"
    path.write_text("# two nodes\nno-such-node-a.invalid slots=1\nno-such-node-b.invalid slots=1\n")
    return f"hostfile={path}"


def _contradicting_ds_config(tmp_path):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": 3,
        "bf16": {"enabled": True},
        "zero_optimization": {"stage": 2, "reduce_bucket_size": "auto", "mystery": "auto"},
    }))
    return f"ds_config={path}"


CASES = {
    "vocabulary mismatch": (lambda t: "model.vocab_size=100",
                            "vocabulary mismatch: model.vocab_size=100 but the tokenizer"),
    "seq_len above positions": (lambda t: "model.max_position_embeddings=32",
                                "train.seq_len=64 is above the model's max_position_embeddings=32"),
    "not enough data": (lambda t: "train.grad_accum_steps=500",
                        "not enough data for one optimizer step: the packed corpus has"),
    "bf16 unsupported": (lambda t: "train.precision=bf16", "train.precision=bf16 but this device"),
    "fp16 on cpu": (lambda t: "train.precision=fp16", "train.precision=fp16 is not supported on CPU"),
    "unreachable hosts": (_hostfile, "unreachable host(s): no-such-node-a.invalid (line 2) cannot be resolved"),
    "ds config contradicts": (_contradicting_ds_config,
                              "gradient_accumulation_steps is 3 but train.grad_accum_steps=1 gives 1"),
    "batch arithmetic": (lambda t: "train.global_batch_size=6",
                         "train.global_batch_size=6 is not a multiple of micro_batch_size 4 x world size 1"),
    "no tokenizer": (lambda t: f"tokenizer={t / 'missing'}", "tokenizer directory not found"),
    "unknown key": (lambda t: "train.learning_rate=1", "unknown key train.learning_rate"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_message(case, pretrain, run_args, tmp_path, capsys, monkeypatch, clean_env):
    override, message = CASES[case]
    if case == "bf16 unsupported":  # this CPU has avx512_bf16; pretend it does not
        monkeypatch.setattr(plan, "bf16_supported", lambda device: False)
    rc = pretrain.main(run_args(tmp_path / "run", override(tmp_path), "train.max_steps=5"))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err and err[-1].startswith("pretrain: error: ") and message in err[-1], err
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing was trained


def test_ds_config_contradictions_are_listed_together(pretrain, run_args, tmp_path, capsys, clean_env):
    assert pretrain.main(run_args(tmp_path / "run", _contradicting_ds_config(tmp_path))) == 2
    err = capsys.readouterr().err
    assert 'bf16.enabled is true but train.precision=fp32 gives false' in err
    assert 'zero_optimization.mystery is "auto" but the training config has no value for it' in err


def test_resume_none_refuses_a_run_folder_with_checkpoints(pretrain, run_args, tmp_path, capsys, clean_env):
    done = tmp_path / "run" / "checkpoints" / "step_00000003"
    done.mkdir(parents=True)
    (done / "trainer_state.json").write_text("{}")
    assert pretrain.main(run_args(tmp_path / "run", "checkpoint.resume=none")) == 2
    assert "already holds checkpoints (newest step_00000003)" in capsys.readouterr().err


def test_command_line_prints_one_line_and_exits_2(run_args, tmp_path, launcher_env):
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "pretrain.py"),
                        *run_args(tmp_path / "run", "model.vocab_size=100")],
                       capture_output=True, text=True, env=launcher_env, timeout=120, check=False)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("pretrain: error: vocabulary mismatch"), r.stderr[-2000:]
    assert "Traceback" not in r.stderr


def test_describe_lists_every_setting(pretrain, capsys):
    assert pretrain.main(["--describe"]) == 0
    out = capsys.readouterr().out
    for key in ("train.micro_batch_size", "checkpoint.resume", "model.num_kv_heads", "data.val_fraction",
                "log.peak_tflops", "ds_config"):
        assert key in out
    assert "Peak learning rate" in out
