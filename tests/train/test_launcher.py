"""The real `deepspeed --num_gpus 2` launcher: two CPU ranks over gloo, ZeRO-3, fp32.

One run is stopped by a SIGTERM that reaches rank 0 only (a preemption notice reaching one node):
both ranks must stop after the same step with a complete checkpoint. The same command then resumes
on two ranks, trains to the end, validates, and exports.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from persianllama.run.dist import free_port
from persianllama.run.metrics import read_metrics

REPO = Path(__file__).resolve().parents[2]


def _tail(r: subprocess.CompletedProcess) -> str:
    return (r.stdout + r.stderr)[-4000:]


@pytest.mark.slow
def test_two_ranks_stop_together_on_sigterm_then_resume(run_args, launcher_env, tmp_path):
    out = tmp_path / "run"
    cmd = ["deepspeed", "--num_gpus", "2", "--master_port", str(free_port()), str(REPO / "scripts" / "pretrain.py"),
           *run_args(out, "ds_config=ds_configs/zero3.json", "train.max_steps=20", "checkpoint.save_interval=10",
                     "log.eval_interval=10", "log.tensorboard=true")]
    first = subprocess.run(cmd, env={**launcher_env, "PERSIANLLAMA_TEST_SIGTERM_AT": "14:0"}, cwd=REPO,
                           capture_output=True, text=True, timeout=400, check=False)
    log = first.stdout + first.stderr
    assert first.returncode == 143, _tail(first)
    assert "[rank 0] WARNING persianllama.run.signals: received SIGTERM" in log
    assert "[rank 1] WARNING persianllama.run.signals: received SIGTERM" not in log  # rank 1 learned it from rank 0
    ckpts = out / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("step_*")) == ["step_00000010", "step_00000015"]
    state = json.loads((ckpts / "step_00000015" / "trainer_state.json").read_text())
    assert (state["step"], state["world_size"], state["zero_stage"]) == (15, 2, 3)
    for rank in (0, 1):  # each rank's ZeRO-3 shards and RNG state
        assert (ckpts / "step_00000015" / f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt").is_file()
        assert (ckpts / "step_00000015" / f"rng_state_{rank}.safetensors").is_file()

    second = subprocess.run(cmd, env=launcher_env, cwd=REPO, capture_output=True, text=True, timeout=400,
                            check=False)
    assert second.returncode == 0, _tail(second)
    assert "resumed from" in second.stdout + second.stderr
    train, evals = read_metrics(out / "metrics.jsonl")
    assert sorted(train) == list(range(1, 21))
    assert train[20]["loss"] < train[1]["loss"] - 0.5
    assert train[20]["tokens_seen"] == 20 * 2 * 4 * 64
    assert sorted(evals) == [10, 20] and evals[20]["loss"] < evals[10]["loss"]
    assert evals[20]["documents"] == 8  # under ZeRO-3 every rank scores all held-out documents
    assert (ckpts / "step_00000020" / "trainer_state.json").is_file()
    assert (out / "loss_curve.png").stat().st_size > 0
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert (out / "hf" / "model.safetensors").is_file() and (out / "hf" / "README.md").is_file()
