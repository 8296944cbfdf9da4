"""One run per run folder: `RunLock` against real second processes."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from persianllama.errors import UserError
from persianllama.run.lock import LOCK_NAME, RunLock

REPO = Path(__file__).resolve().parents[2]

# A run holding the lock until it reads a line: then it leaves the `with` block (mode "release"), or
# exits without releasing (the kernel drops the flock; the file stays). Mode "fork" first forks a child
# that outlives it, as DataLoader workers and multiprocessing pools do.
HOLDER = """
import os, sys, time
from persianllama.run.lock import RunLock
out, mode = sys.argv[1], sys.argv[2]
with RunLock(out, argv=["pretend-train", "--config", "x.yaml"]):
    if mode == "fork":
        child = os.fork()
        if child == 0:
            time.sleep(60)
            os._exit(0)
        print("child", child, flush=True)
    print("locked", flush=True)
    sys.stdin.readline()
    if mode == "exit":
        os._exit(0)
"""


class Holder:
    def __init__(self, out: Path, mode: str = "release"):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out), mode], cwd=REPO, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.child = None
        for line in self.proc.stdout:
            if line.startswith("child"):
                self.child = int(line.split()[1])
            if line.strip() == "locked":
                break
        else:
            raise AssertionError(f"holder exited with {self.proc.wait()} before locking")
        self.pid = self.proc.pid

    def finish(self) -> int:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        if self.child:
            try:
                os.kill(self.child, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def holders():
    started: list[Holder] = []

    def start(out: Path, mode: str = "release") -> Holder:
        started.append(Holder(out, mode))
        return started[-1]

    yield start
    for h in started:
        h.cleanup()


def test_second_process_is_refused_naming_the_holder(tmp_path, holders):
    out = tmp_path / "run"
    holder = holders(out)
    written = (out / LOCK_NAME).read_text()
    with pytest.raises(UserError) as e:
        RunLock(out).acquire()
    msg = str(e.value)
    assert f"is in use by pid {holder.pid} on host {socket.gethostname()}" in msg
    assert "(pretend-train --config x.yaml)" in msg and "choose another out_dir" in msg
    assert "\n" not in msg
    assert (out / LOCK_NAME).read_text() == written  # the refused run changed nothing
    assert holder.finish() == 0


def test_a_second_lock_in_the_same_process_is_refused_too(tmp_path):
    with RunLock(tmp_path), pytest.raises(UserError, match=f"pid {os.getpid()} on host"):
        RunLock(tmp_path).acquire()


def test_release_on_exit_removes_only_the_lock_file(tmp_path, holders, caplog):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    holder = holders(out)
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == holder.pid
    assert holder.finish() == 0
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    with caplog.at_level(logging.WARNING), RunLock(out) as lock:
        assert lock.held
    assert not caplog.records  # nothing to take over
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("how", ["SIGKILL", "exit without release"])
def test_lock_of_a_dead_run_is_taken_over(tmp_path, holders, caplog, how):
    out = tmp_path / "run"
    holder = holders(out, "exit" if how != "SIGKILL" else "release")
    if how == "SIGKILL":
        holder.kill()
    else:
        assert holder.finish() == 0
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == holder.pid  # left behind
    with caplog.at_level(logging.WARNING), RunLock(out, argv=["next-run"]):
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
        with pytest.raises(UserError, match=f"pid {os.getpid()}"):  # and it is really held
            RunLock(out).acquire()
    [record] = caplog.records
    assert f"taking over {out / LOCK_NAME}: pid {holder.pid} on host" in record.message
    assert "(no longer running)" in record.message
    assert not (out / LOCK_NAME).exists()


def test_a_forked_child_does_not_keep_a_dead_run_locked(tmp_path, holders):
    out = tmp_path / "run"
    holder = holders(out, "fork")
    holder.kill()
    os.kill(holder.child, 0)  # the forked child is still running (it would raise otherwise)
    with RunLock(out) as lock:
        assert lock.held


def test_folders_it_created_go_when_empty_and_stay_otherwise(tmp_path):
    with RunLock(tmp_path / "runs" / "a"):
        assert (tmp_path / "runs" / "a" / LOCK_NAME).is_file()
    assert sorted(tmp_path.iterdir()) == []  # a run that wrote nothing leaves no empty folders
    with RunLock(tmp_path / "runs" / "b"):
        (tmp_path / "runs" / "b" / "metrics.jsonl").write_text("{}\n")
    assert [p.name for p in (tmp_path / "runs" / "b").iterdir()] == ["metrics.jsonl"]
    (tmp_path / "kept").mkdir()
    with RunLock(tmp_path / "kept"):
        pass
    assert (tmp_path / "kept").is_dir()  # it did not create this one


def test_inactive_lock_touches_nothing(tmp_path):
    with RunLock(tmp_path / "run", active=False) as lock:
        assert not lock.held
    assert not (tmp_path / "run").exists()


def test_a_lock_file_that_is_not_ours_is_left_alone(tmp_path):
    (tmp_path / LOCK_NAME).write_text("my own notes\n")
    with pytest.raises(UserError, match="is not a run lock written by persianllama"):
        RunLock(tmp_path).acquire()
    assert (tmp_path / LOCK_NAME).read_text() == "my own notes\n"
    assert [p.name for p in tmp_path.iterdir()] == [LOCK_NAME]


def test_a_run_starting_while_the_holder_releases(tmp_path, holders):
    """Tries racing a release are refused naming the holder, until one gets a lock file of its own."""
    out = tmp_path / "run"
    holder = holders(out)
    holder.proc.stdin.write("\n")
    holder.proc.stdin.flush()
    deadline = time.monotonic() + 30
    while True:
        try:
            with RunLock(out):
                assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
            break
        except UserError as e:
            assert f"pid {holder.pid}" in str(e) or "details are not written yet" in str(e)
            assert time.monotonic() < deadline
    assert holder.proc.wait(timeout=30) == 0
