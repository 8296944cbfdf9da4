"""Stop a rank when the launcher that started it goes away.

``deepspeed --num_gpus N script.py`` runs three layers of processes on one node: the runner (the
``deepspeed`` command the user started, deepspeed/launcher/runner.py) starts one
``python -u -m deepspeed.launcher.launch`` (launch.py), which starts the N ranks. On one node the
runner installs no signal handler (runner.py only does so for a multi-node pdsh run) and forwards
nothing, so a SIGTERM sent to it alone (``kill PID``, ``timeout``, a scheduler that signals the PID it
started) ends the runner with status 143 and leaves launch.py and every rank training on, orphaned.
launch.py would pass a SIGTERM on to the ranks, but nobody sends it one.

`follow_launcher` closes that gap from the rank's side: it records the launcher processes above this
one (launch.py and, when it is there, the runner; or torchrun) and a daemon thread checks every
second that each is still there. When one is gone, the thread sends SIGTERM to this process, so the
training loop's own SIGTERM path runs: the ranks agree to stop after the same step, save a
checkpoint and exit 143, as if the user had signalled them. Without a recognised launcher (plain
``python``, Slurm's ``srun``) it does nothing: a shell or slurmstepd is not a launcher to follow, and
following a shell would undo ``nohup``.

Why a polling thread and not ``prctl(PR_SET_PDEATHSIG)``: the death signal is tied to the direct
parent only (launch.py), which is not the process that dies here; the runner is the grandparent. The
thread sees both links with one mechanism, on any platform psutil supports, with at most a second's
delay. A link is checked by parentage, not by PID liveness (``parent of X is still Y``), so a PID
reused by an unrelated process after the launcher died cannot hide its death.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import PurePath

import psutil  # installed with deepspeed (its launcher uses it)

log = logging.getLogger(__name__)

DEEPSPEED_LAUNCH = "deepspeed launch.py"
DEEPSPEED_RUNNER = "deepspeed runner"
TORCHRUN = "torchrun"

# Python options that take a value as the next argument (``python -X dev -m mod``).
_PYTHON_VALUE_OPTIONS = {"-X", "-W", "-Q"}


@dataclass(frozen=True)
class Launcher:
    pid: int
    kind: str
    """DEEPSPEED_LAUNCH, DEEPSPEED_RUNNER or TORCHRUN."""


def _program(cmdline: list[str]) -> str:
    """What a command line runs: the module after ``python -m``, else the script or executable path."""
    if not cmdline:
        return ""
    if not PurePath(cmdline[0]).name.startswith("python"):
        return cmdline[0]
    args = iter(cmdline[1:])
    for arg in args:
        if arg == "-m":
            return next(args, "")
        if arg == "-c":
            return ""
        if arg in _PYTHON_VALUE_OPTIONS:
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return ""


def launcher_kind(cmdline: list[str]) -> str | None:
    """The kind of launcher a process's command line shows, or None when it is not one we follow."""
    program = _program(cmdline)
    path = PurePath(program)
    name = path.name
    if program == "deepspeed.launcher.launch" or path.parts[-3:] == ("deepspeed", "launcher", "launch.py"):
        return DEEPSPEED_LAUNCH
    if program == "deepspeed.launcher.runner" or name in ("deepspeed", "ds"):
        return DEEPSPEED_RUNNER
    if program in ("torch.distributed.run", "torch.distributed.launch") or name == "torchrun":
        return TORCHRUN
    return None


def _cmdline(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except (psutil.Error, OSError):
        return []


def _ppid(pid: int) -> int | None:
    try:
        return psutil.Process(pid).ppid()
    except (psutil.Error, OSError):
        return None


def launcher_chain() -> list[Launcher]:
    """The launcher processes above this one, nearest first: [] when the parent is not a launcher.

    Under ``deepspeed`` on one node: [launch.py, runner]; when launch.py was started some other way
    (pdsh on a multi-node run, by hand) only [launch.py]. Under torchrun: [torchrun].
    """
    parent = os.getppid()
    kind = launcher_kind(_cmdline(parent))
    if kind is None or kind == DEEPSPEED_RUNNER:  # the runner never starts a rank itself
        return []
    chain = [Launcher(parent, kind)]
    if kind == DEEPSPEED_LAUNCH:
        grandparent = _ppid(parent)
        if grandparent and launcher_kind(_cmdline(grandparent)) == DEEPSPEED_RUNNER:
            chain.append(Launcher(grandparent, DEEPSPEED_RUNNER))
    return chain


class LauncherWatch:
    """A daemon thread that sends `signum` to this process once, when a process of `chain` is gone.

    `chain` lists ancestors nearest first; ``chain[0]`` must be this process's parent. Use
    `follow_launcher` rather than building one, except to follow a chain of your own making.
    """

    def __init__(self, chain: list[Launcher], *, interval: float = 1.0, signum: int = signal.SIGTERM):
        self.chain = list(chain)
        self.interval = interval
        self.signum = signum
        self.gone: Launcher | None = None
        """The launcher whose departure fired the signal (None while all are there)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="launcher-watch", daemon=True)

    def broken_link(self) -> Launcher | None:
        """The nearest launcher of the chain that is no longer the parent of the process below it."""
        for i, launcher in enumerate(self.chain):
            ppid = os.getppid() if i == 0 else _ppid(self.chain[i - 1].pid)
            if ppid != launcher.pid:
                return launcher
        return None

    def start(self) -> LauncherWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            gone = self.broken_link()
            if gone is None:
                continue
            self.gone = gone
            log.warning("the %s (pid %d) of this run has exited; stopping this process as on %s",
                        gone.kind, gone.pid, signal.Signals(self.signum).name)
            os.kill(os.getpid(), self.signum)
            return


_watch: LauncherWatch | None = None
_watch_lock = threading.Lock()


def follow_launcher(*, interval: float = 1.0) -> LauncherWatch | None:
    """Make this process receive SIGTERM when the launcher that started it exits; call once at start-up.

    Returns the running watch, or None when this process was not started by a launcher we follow
    (plain python, Slurm's srun): then nothing is started. Calling it again returns the same watch.
    The caller's SIGTERM handling decides what happens next (the training loops save and exit 143);
    before a handler is installed, SIGTERM simply ends the process.
    """
    global _watch
    with _watch_lock:
        if _watch is not None:
            return _watch
        chain = launcher_chain()
        if not chain:
            log.debug("no launcher to follow (parent pid %d)", os.getppid())
            return None
        log.info("following %s: this process stops as on SIGTERM if it exits",
                 " and ".join(f"the {c.kind} (pid {c.pid})" for c in chain))
        _watch = LauncherWatch(chain, interval=interval).start()
        return _watch
