"""A rank stops (as on SIGTERM) when the launcher that started it exits.

The slow test runs the real ``deepspeed --num_gpus 2`` launcher on CPU and sends SIGTERM to the
runner process only, which the runner neither handles nor forwards on one node. The quick tests
check which command lines count as launchers, that nothing is followed without one, and the watch
itself on a chain of plain processes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from persianllama.run.launcher import (
    DEEPSPEED_LAUNCH,
    DEEPSPEED_RUNNER,
    TORCHRUN,
    launcher_chain,
    launcher_kind,
)

REPO = Path(__file__).resolve().parents[2]
RANK = Path(__file__).with_name("launcher_rank.py")
PY = sys.executable
DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DIST_VARS}
    env.update(OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu", PYTHONUNBUFFERED="1")
    env["PATH"] = str(Path(PY).parent) + os.pathsep + env.get("PATH", "")
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _records(out: Path, rank: int) -> list[dict]:
    path = out / f"rank{rank}.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _event(out: Path, rank: int, event: str) -> dict | None:
    return next((r for r in _records(out, rank) if r["event"] == event), None)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait(condition, timeout: float, what: str, log: Path | None = None) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            tail = log.read_text()[-3000:] if log and log.is_file() else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")
        time.sleep(0.1)


def _kill_all(pids) -> None:
    for pid in pids:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)


# --- which processes are launchers ----------------------------------------------------------------------


@pytest.mark.parametrize("cmdline, kind", [
    # as the deepspeed runner starts launch.py, and as launch.py is started by hand or by pdsh
    (f"{PY} -u -m deepspeed.launcher.launch --world_info=eyJsb2NhbGhvc3QiOiBbMCwgMV19 --master_addr=127.0.0.1 "
     "--master_port=29500 scripts/pretrain.py --config configs/tiny.yaml", DEEPSPEED_LAUNCH),
    ("python3 /opt/venv/lib/python3.11/site-packages/deepspeed/launcher/launch.py --world_info=e30=",
     DEEPSPEED_LAUNCH),
    # the `deepspeed` console script under its interpreter
    ("/work/venv/bin/python /work/venv/bin/deepspeed --num_gpus 2 scripts/pretrain.py", DEEPSPEED_RUNNER),
    ("python -m deepspeed.launcher.runner --num_gpus 2 x.py", DEEPSPEED_RUNNER),
    ("/venv/bin/python3.11 /venv/bin/torchrun --nproc_per_node 2 scripts/pretrain.py", TORCHRUN),
    ("python -X dev -m torch.distributed.run --nproc_per_node 2 x.py", TORCHRUN),
    # not launchers: shells, schedulers, and launcher names that are only arguments
    ("-bash", None),
    ("slurmstepd: [1234.0]", None),
    ("/usr/bin/python3 scripts/pretrain.py --config deepspeed", None),
    ("python train.py -m deepspeed.launcher.launch", None),
    ("python -c import deepspeed.launcher.launch", None),
    ("python -m pytest tests/run", None),
])
def test_launcher_kind_reads_command_lines(cmdline, kind):
    assert launcher_kind(cmdline.split()) == kind


def test_nothing_followed_without_a_launcher():
    assert launcher_chain() == []  # pytest's parent is a shell or a runner of tests
    code = ("import threading; from persianllama.run.launcher import follow_launcher; "
            "print(follow_launcher(), threading.active_count())")
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60, check=True)
    assert r.stdout.split() == ["None", "1"], r.stderr


# --- the watch on a chain of plain processes ------------------------------------------------------------

# grandparent -> parent -> rank; the parent records the rank's exit status, which only a parent can see.
GRANDPARENT = "import subprocess, sys; sys.exit(subprocess.Popen(sys.argv[1:]).wait())"
PARENT = "import subprocess, sys; rc = subprocess.Popen(sys.argv[2:]).wait(); open(sys.argv[1], 'w').write(str(rc))"


@pytest.mark.parametrize("victim", ["grandparent", "parent"])
def test_rank_is_signalled_when_an_ancestor_dies(tmp_path, victim):
    rc_file = tmp_path / "rank_rc"
    cmd = [PY, "-c", GRANDPARENT, PY, "-c", PARENT, str(rc_file),
           PY, str(RANK), "--out", str(tmp_path), "--follow-parents", "--step-seconds", "0.05"]
    grandparent = subprocess.Popen(cmd, cwd=REPO, env=_env())
    pids = [grandparent.pid]
    try:
        _wait(lambda: _event(tmp_path, 0, "step"), 60, "the rank's first step")
        start = _event(tmp_path, 0, "start")
        pids += [start["ppid"], start["pid"]]
        (parent, _), (grand, _) = start["chain"]
        assert (parent, grand) == (start["ppid"], grandparent.pid)
        killed = time.time()
        os.kill(grandparent.pid if victim == "grandparent" else parent, signal.SIGKILL)
        _wait(lambda: _gone(start["pid"]), 30, "the rank to exit")
        stop = _event(tmp_path, 0, "stop")
        assert stop["signalled"] and stop["gone"] == victim
        assert stop["time"] - killed < 5
        assert _event(tmp_path, 0, "saved") and _event(tmp_path, 0, "exit")["code"] == 143
        if victim == "grandparent":  # the parent lived on and saw the rank's real exit status
            _wait(lambda: rc_file.is_file() and rc_file.read_text(), 30, "the parent to record the exit status")
            assert rc_file.read_text() == "143"
    finally:
        _kill_all(reversed(pids))
        grandparent.wait(timeout=30)


def test_torchrun_worker_stops_when_torchrun_is_killed(tmp_path):
    """torchrun passes its own SIGTERM on; a SIGKILL leaves the workers (in their own session) behind."""
    cmd = ["torchrun", "--nproc_per_node", "1", "--master_port", str(_free_port()), str(RANK),
           "--out", str(tmp_path), "--step-seconds", "0.05"]
    agent = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pids = [agent.pid]
    try:
        _wait(lambda: _event(tmp_path, 0, "step"), 60, "the worker's first step")
        start = _event(tmp_path, 0, "start")
        pids.append(start["pid"])
        assert start["chain"] == [[agent.pid, TORCHRUN]]
        agent.kill()
        _wait(lambda: _gone(start["pid"]), 30, "the worker to exit")
        stop = _event(tmp_path, 0, "stop")
        assert stop["signalled"] and stop["gone"] == TORCHRUN
        assert _event(tmp_path, 0, "exit")["code"] == 143
    finally:
        _kill_all(reversed(pids))
        agent.wait(timeout=30)


# --- the real deepspeed launcher ------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_to_the_deepspeed_runner_stops_every_rank(tmp_path):
    """SIGTERM to the `deepspeed` process alone: both ranks save after the same step and exit 143."""
    log = tmp_path / "launcher.log"
    cmd = ["deepspeed", "--num_gpus", "2", "--master_port", str(_free_port()), str(RANK), "--out", str(tmp_path),
           "--dist", "--step-seconds", "0.1"]
    with log.open("w") as sink:
        runner = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=sink, stderr=subprocess.STDOUT)
    pids: list[int] = []
    try:
        # the first distributed init of a machine JIT-builds DeepSpeed's CPU comm op (tens of seconds)
        _wait(lambda: all(_event(tmp_path, r, "step") for r in (0, 1)), 300, "both ranks' first step", log)
        starts = [_event(tmp_path, r, "start") for r in (0, 1)]
        pids = [starts[0]["ppid"], *(s["pid"] for s in starts)]  # launch.py, rank 0, rank 1
        for s in starts:
            assert [kind for _, kind in s["chain"]] == [DEEPSPEED_LAUNCH, DEEPSPEED_RUNNER]
            assert s["chain"][1][0] == runner.pid and s["chain"][0][0] == s["ppid"]

        killed = time.time()
        os.kill(runner.pid, signal.SIGTERM)
        # The runner dies of the signal at once: it neither handles SIGTERM nor passes it on.
        assert runner.wait(timeout=30) == -signal.SIGTERM
        _wait(lambda: all(_gone(pid) for pid in pids), 60, "launch.py and both ranks to exit", log)

        stops = [_event(tmp_path, r, "stop") for r in (0, 1)]
        assert all(stops), stops
        # Each rank's watch polls on its own clock; the first to see the runner gone stops both ranks
        # after the same step, since the flag is all-reduced after every step.
        assert any(s["signalled"] and s["gone"] == DEEPSPEED_RUNNER for s in stops), stops
        assert stops[0]["step"] == stops[1]["step"], stops
        assert max(s["time"] for s in stops) - killed < 10
        for r in (0, 1):
            assert _event(tmp_path, r, "saved")["step"] == stops[0]["step"]
            assert _event(tmp_path, r, "exit")["code"] == 143
            assert [e["step"] for e in _records(tmp_path, r) if e["event"] == "step"][-1] == stops[0]["step"]
        # launch.py outlived the runner, saw the first rank's real exit status, and ended the tree.
        assert "exits with return code = 143" in log.read_text()
    finally:
        _kill_all([*reversed(pids), runner.pid])
        runner.wait(timeout=30)
