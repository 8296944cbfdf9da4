"""`persianllama sft` end to end on a tiny model: it learns eight conversations well enough to give each answer
back exactly through apply_chat_template + generate; the adapter carries the chat template; resume is exact;
merge=true writes a model that answers the same without PEFT."""

from __future__ import annotations

import json
import os
import signal

import pytest

from persianllama.cli import main
from persianllama.run.metrics import read_metrics
from tests.sft.conftest import tiny_overrides


def _args(sft_assets, out, **extra):
    return ["sft", "--base", str(sft_assets.base), "--data", str(sft_assets.eight), "--output", str(out),
            *tiny_overrides(**extra)]


def answers(model, tok, conversations):
    got, want = [], []
    for conv in conversations:
        for k, m in enumerate(conv):
            if m["role"] != "assistant":
                continue
            enc = tok.apply_chat_template(conv[:k], add_generation_prompt=True, return_tensors="pt", return_dict=True)
            out = model.generate(**enc, max_new_tokens=24, do_sample=False)
            got.append(tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True))
            want.append(m["content"])
    return got, want


@pytest.fixture(scope="module")
def overfit(sft_assets, tmp_path_factory):
    out = tmp_path_factory.mktemp("sft overfit") / "run"
    assert main(_args(sft_assets, out, **{"train.max_steps": 150, "data.normalize": "false", "merge": "true",
                                          "log.eval_interval": 75, "data.val_fraction": 0.0})) == 0
    return out


def test_overfits_eight_conversations_and_gives_each_answer_back(overfit, sft_assets):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(overfit / "adapter"))
    assert tok.chat_template and "{% generation %}" in tok.chat_template  # saved with the adapter
    model = AutoPeftModelForCausalLM.from_pretrained(str(overfit / "adapter")).eval()
    got, want = answers(model, tok, sft_assets.conversations)
    assert got == want and len(want) == 9
    train, _ = read_metrics(overfit / "metrics.jsonl")
    assert train[150]["loss"] < train[1]["loss"] - 1.0  # the frozen random output layer keeps it from 0
    assert (overfit / "loss_curve.png").stat().st_size > 1000
    card = (overfit / "adapter" / "README.md").read_text()
    assert "instruction-tuned" in card and "chat template" in card


def test_merged_model_answers_the_same_without_peft(overfit, sft_assets):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(overfit / "hf"))
    model = AutoModelForCausalLM.from_pretrained(str(overfit / "hf")).eval()
    got, want = answers(model, tok, sft_assets.conversations)
    assert got == want


def test_sigterm_then_resume_gives_identical_losses(sft_assets, tmp_path, monkeypatch):
    from persianllama.run.metrics import RunLog

    ref = tmp_path / "ref"
    assert main(_args(sft_assets, ref, **{"train.max_steps": 8, "checkpoint.save_interval": 3})) == 0
    cut = tmp_path / "cut"
    write = RunLog.write

    def write_then_signal(self, record):
        write(self, record)
        if record.get("kind") == "train" and record["step"] == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(RunLog, "write", write_then_signal)
    assert main(_args(sft_assets, cut, **{"train.max_steps": 8, "checkpoint.save_interval": 3})) == 143
    monkeypatch.setattr(RunLog, "write", write)
    assert main(_args(sft_assets, cut, **{"train.max_steps": 8, "checkpoint.save_interval": 3})) == 0
    a, _ = read_metrics(ref / "metrics.jsonl")
    b, _ = read_metrics(cut / "metrics.jsonl")
    assert [a[s]["loss"] for s in sorted(a)] == [b[s]["loss"] for s in sorted(b)]
    report = json.loads((cut / "data_report.json").read_text())
    assert report["kept"] == 8 and report["formats"] == {"messages": 8}


def test_bad_input_is_one_line(sft_assets, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no layout"}\n')
    assert main(["sft", "--base", str(sft_assets.base), "--data", str(bad), "--output", str(tmp_path / "o"),
                 *tiny_overrides()]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no usable conversation" in err and "bad.jsonl:1: no_layout" in err
    assert not (tmp_path / "o").exists()


def test_script_runs_with_spaces_in_paths(sft_assets, tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    data = tmp_path / "my data" / "chats $1.jsonl"
    data.parent.mkdir()
    shutil.copy(sft_assets.eight, data)
    env = {**os.environ, "BASE_MODEL": str(sft_assets.base), "DATA": str(data), "OUTPUT_DIR": str(tmp_path / "out run"),
           "MAX_STEPS": "3", "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(root / "scripts" / "sft.sh"), *tiny_overrides(**{"train.max_steps": 3})],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "sft: 3 steps" in proc.stdout and (tmp_path / "out run" / "adapter" / "adapter_model.safetensors").is_file()
