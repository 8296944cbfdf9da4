"""scripts/pretrain.py end to end in one in-process rank: train, stop on SIGTERM, resume, export.

fp32 on CPU, ZeRO-2 (the default ds_config), a 2-layer LLaMA of width 64 on the tiny Persian corpus.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest

from persianllama.run.metrics import read_metrics

STEPS = 12


@contextmanager
def restored_env():
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def full_run(pretrain, run_args, one_rank_world, tmp_path_factory) -> Path:
    """An uninterrupted run of STEPS steps (the reference for resume), validated at the end."""
    out = tmp_path_factory.mktemp("full") / "run"
    with restored_env():
        rc = pretrain.main(run_args(out, f"train.max_steps={STEPS}", "checkpoint.save_interval=100",
                                    "log.eval_interval=0", "export=false"))
    assert rc == 0
    return out


def test_training_reduces_loss_and_writes_run_folder(full_run):
    train, evals = read_metrics(full_run / "metrics.jsonl")
    assert sorted(train) == list(range(1, STEPS + 1))
    assert train[STEPS]["loss"] < train[1]["loss"] - 0.5
    assert all(r["grad_norm"] is not None and r["grad_norm"] > 0 for r in train.values())
    assert all(r["tokens_per_s"] > 0 and r["mfu"] is not None for r in train.values())
    assert train[STEPS]["tokens_seen"] == STEPS * 4 * 64
    # warmup then cosine: peak at step 3, floor (min_lr) at the last step
    assert train[3]["lr"] == pytest.approx(3e-3) and train[STEPS]["lr"] == pytest.approx(3e-4)
    assert list(evals) == [STEPS] and 0 < evals[STEPS]["bits_per_byte"] < 8
    for name in ("loss_curve.png", "config.yaml", "ds_config.json", "tokenizer/tokenizer.json"):
        assert (full_run / name).is_file(), name
    ds = json.loads((full_run / "ds_config.json").read_text())
    assert ds["train_micro_batch_size_per_gpu"] == 4 and ds["optimizer"]["params"]["lr"] == 3e-3
    state = json.loads((full_run / "checkpoints" / f"step_{STEPS:08d}" / "trainer_state.json").read_text())
    assert state["step"] == STEPS and state["samples_seen"] == STEPS * 4 and state["last_eval_step"] == STEPS


def test_sigterm_saves_and_resume_repeats_the_same_losses(pretrain, run_args, one_rank_world, full_run,
                                                          tmp_path, clean_env):
    out = tmp_path / "run"
    args = run_args(out, f"train.max_steps={STEPS}", "checkpoint.save_interval=4", "log.eval_interval=0",
                    "export=false")
    # A real SIGTERM, raised after step 6: the step in flight (7) finishes, is saved, and the run stops.
    rc = pretrain.main(args, on_step=lambda s: signal.raise_signal(signal.SIGTERM) if s.step == 6 else None)
    assert rc == 128 + signal.SIGTERM
    ckpts = out / "checkpoints"
    assert [p.name for p in sorted(ckpts.glob("step_*"))] == ["step_00000004", "step_00000007"]
    state = json.loads((ckpts / "step_00000007" / "trainer_state.json").read_text())
    assert (state["step"], state["samples_seen"], state["tokens_seen"]) == (7, 28, 7 * 4 * 64)
    assert (ckpts / "step_00000007" / "rng_state_0.safetensors").is_file()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored

    # A newer save cut off by kill -9: no trainer_state.json, a truncated shard. Never picked.
    cut = ckpts / "step_00000010"
    shutil.copytree(ckpts / "step_00000007", cut)
    (cut / "trainer_state.json").unlink()
    shard = next(cut.glob("*optim_states.pt"))
    shard.write_bytes(shard.read_bytes()[:100])

    assert pretrain.main(args) == 0  # checkpoint.resume=auto
    full, _ = read_metrics(full_run / "metrics.jsonl")
    resumed, _ = read_metrics(out / "metrics.jsonl")
    for step in range(1, STEPS + 1):
        assert resumed[step]["loss"] == pytest.approx(full[step]["loss"], abs=1e-5), step
        assert resumed[step]["lr"] == pytest.approx(full[step]["lr"], rel=1e-9), step
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    resume = [e for e in events if e.get("event") == "resume"]
    assert len(resume) == 1 and resume[0]["step"] == 7 and resume[0]["checkpoint"].endswith("step_00000007")
    assert not cut.exists()  # the cut-off folder is cleaned up once a newer complete checkpoint exists
    assert (ckpts / f"step_{STEPS:08d}" / "trainer_state.json").is_file()


def test_export_loads_and_generates(full_run, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from persianllama.cli import main as cli
    from persianllama.train.export import fp32_state_dict

    hf = tmp_path / "hf"
    assert cli(["export", str(full_run), "--out", str(hf)]) == 0
    assert (hf / "model.safetensors").is_file() and (hf / "tokenizer.json").is_file()
    model = AutoModelForCausalLM.from_pretrained(str(hf))
    tok = AutoTokenizer.from_pretrained(str(hf))
    ids = tok("تهران پایتخت", return_tensors="pt")
    generated = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert generated.shape[1] == ids["input_ids"].shape[1] + 8
    assert isinstance(tok.decode(generated[0]), str)
    # exactly the checkpoint's weights
    ckpt = full_run / "checkpoints" / f"step_{STEPS:08d}"
    saved = fp32_state_dict(ckpt, zero_stage=2)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    card = (hf / "README.md").read_text(encoding="utf-8")
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert f"| optimizer steps | {STEPS} |" in card
    assert f"| tokens seen | {STEPS * 4 * 64:,} |" in card
    assert f"| bits per byte | {state['last_eval']['bits_per_byte']:.4f} |" in card
    assert f"| loss (nats/token) | {state['last_eval']['loss']:.4f} |" in card
    assert "language:\n- fa" in card


@pytest.mark.parametrize("ds_config,precision,extra", [
    ("zero0", "fp32", "train.grad_accum_steps=2"),
    ("zero0", "bf16", "log.log_interval=1"),
    ("zero1", "bf16", "train.activation_checkpointing=true"),
])
def test_other_zero_stages_train_and_export(ds_config, precision, extra, pretrain, run_args, one_rank_world, tmp_path,
                                            clean_env):
    from persianllama.run.device import bf16_supported

    if precision == "bf16" and not bf16_supported("cpu"):
        pytest.skip("this CPU has no native bf16")
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    assert pretrain.main(run_args(out, f"ds_config=ds_configs/{ds_config}.json", f"train.precision={precision}",
                                  "train.max_steps=4", "log.eval_interval=0", extra)) == 0
    train, evals = read_metrics(out / "metrics.jsonl")
    assert train[4]["loss"] < train[1]["loss"] and train[4]["grad_norm"] > 0 and list(evals) == [4]
    accum = 2 if "grad_accum_steps=2" in extra else 1
    assert train[4]["tokens_seen"] == 4 * accum * 4 * 64
    ds = json.loads((out / "ds_config.json").read_text())
    assert ds["gradient_accumulation_steps"] == accum and ds["bf16"]["enabled"] is (precision == "bf16")
    model = AutoModelForCausalLM.from_pretrained(str(out / "hf"))
    assert model.dtype == (torch.bfloat16 if precision == "bf16" else torch.float32)
    assert json.loads((out / "hf" / "persianllama_training.json").read_text())["zero_stage"] == int(ds_config[-1])
    if precision == "bf16":  # exported from DeepSpeed's fp32 master weights, not the bf16 working copy
        from persianllama.train.export import fp32_state_dict

        ckpt = out / "checkpoints" / "step_00000004"
        masters = fp32_state_dict(ckpt, zero_stage=int(ds_config[-1]))
        assert all(t.dtype == torch.float32 for t in masters.values())
        assert any(not torch.equal(t, t.bfloat16().float()) for t in masters.values())
