"""`persianllama sft method=full`: every weight trained on the Zero track's DeepSpeed loop, in one process and
under the real `deepspeed` launcher with two ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from persianllama.cli import main
from persianllama.run.metrics import read_metrics
from tests.sft.conftest import ROOT, tiny_overrides

FULL = {"method": "full", "train.precision": "fp32", "train.max_steps": 40, "train.global_batch_size": 4,
        "train.lr": 3e-3, "train.min_lr": 3e-4, "data.normalize": "false", "log.eval_interval": 20}


def _clean_env():
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        os.environ.pop(k, None)


def test_full_fine_tuning_learns_the_conversations_and_exports_a_chat_model(sft_assets, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.sft.test_sft import answers

    out = tmp_path / "full"
    saved = dict(os.environ)
    try:
        assert main(["sft", "--base", str(sft_assets.base), "--data", str(sft_assets.eight), "--output", str(out),
                     *tiny_overrides(**FULL)]) == 0
    finally:
        os.environ.clear()
        os.environ.update(saved)
    train, _ = read_metrics(out / "metrics.jsonl")
    assert sorted(train) == list(range(1, 41)) and train[40]["loss"] < 0.5 * train[1]["loss"]
    tok = AutoTokenizer.from_pretrained(str(out / "hf"))
    assert tok.chat_template and "instruction-tuned" in (out / "hf" / "README.md").read_text()
    model = AutoModelForCausalLM.from_pretrained(str(out / "hf")).eval()
    got, want = answers(model, tok, sft_assets.conversations)
    assert sum(g == w for g, w in zip(got, want)) >= 7, list(zip(got, want))


def test_full_refuses_quantization_and_adapters(sft_assets, tmp_path, capsys):
    args = ["sft", "--base", str(sft_assets.base), "--data", str(sft_assets.eight), "--output", str(tmp_path / "o")]
    assert main([*args, *tiny_overrides(**{**FULL, "model.quantization": "8bit"})]) == 2
    assert "method=full trains every weight" in capsys.readouterr().err
    _clean_env()


@pytest.mark.slow
def test_two_ranks_under_the_real_launcher(sft_assets, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                            "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu", PYTHONUNBUFFERED="1",
               PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""))
    from persianllama.run.dist import free_port

    out = tmp_path / "two ranks"
    cmd = ["deepspeed", "--num_gpus", "2", "--master_port", str(free_port()), "--module", "persianllama.sft.full",
           "--base", str(sft_assets.base), "--data", str(sft_assets.eight), "--output", str(out),
           *tiny_overrides(**{**FULL, "train.max_steps": 6, "train.micro_batch_size": 2, "log.eval_interval": 3,
                              "data.val_fraction": 0.2})]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = json.loads((out / "checkpoints" / "step_00000006" / "trainer_state.json").read_text())
    assert state["world_size"] == 2 and state["method"] == "full"
    assert (out / "hf" / "model.safetensors").is_file() and (out / "hf" / "chat_template.jinja").is_file()
    train, evals = read_metrics(out / "metrics.jsonl")
    assert sorted(train) == list(range(1, 7)) and set(evals) == {3, 6}
