"""One run per run folder: an exclusive lock file in out_dir.

`RunLock(out_dir)` holds ``out_dir/.lock`` with ``fcntl.flock`` on an open file for as long as the run
lasts. The kernel drops the lock when the holder exits, however it exits (SIGKILL, out of memory), so
a lock is never "stuck": a file whose lock nobody holds is what a dead run left behind, and the next
run takes it over with a log line. The file's JSON ({pid, host, started, argv}) only serves the
message a second run gets: which process, on which host, holds the folder.

Under several ranks only global rank 0 locks: ``RunLock(out_dir, active=rank == 0)``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shlex
import socket
import sys
import time
import weakref
from pathlib import Path

from persianllama.errors import UserError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
_ARGV_CHARS = 200

# Locks held by this process. A child made by fork() (DataLoader workers, multiprocessing) shares the
# open file and with it the lock: it would keep the folder locked after this process died. The child
# closes its copy (never unlocks: that would release the parent's lock too).
_held: weakref.WeakSet[RunLock] = weakref.WeakSet()


def _close_inherited() -> None:
    for lock in list(_held):
        if lock._fd is not None:
            try:
                os.close(lock._fd)
            except OSError:
                pass
            lock._fd = None
    _held.clear()


os.register_at_fork(after_in_child=_close_inherited)


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class RunLock:
    """Context manager: hold `out_dir`'s lock, or raise `UserError` naming the process that holds it.

    With ``active=False`` (ranks other than 0) it does nothing. It creates `out_dir` (and parents)
    when missing; on release it removes the lock file it wrote and the folders it created if they are
    still empty, nothing else.
    """

    def __init__(self, out_dir: str | os.PathLike, *, active: bool = True, argv: list[str] | None = None):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOCK_NAME
        self.active = active
        self.argv = list(sys.argv if argv is None else argv)
        self._fd: int | None = None
        self._written: dict | None = None
        self._created: list[Path] = []

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # --- taking the lock ------------------------------------------------------------------------------

    def acquire(self) -> RunLock:
        if not self.active or self.held:
            return self
        missing = [d for d in (self.out_dir, *self.out_dir.parents) if not d.exists()]
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._created = [d for d in missing if d.is_dir()]  # deepest first
        for _ in range(5):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    message = self._refusal()
                    self._remove_created_dirs()
                    raise UserError(message) from None
                log.warning("cannot lock %s (%s): this file system does not support flock, so nothing stops "
                            "a second run from using %s at the same time", self.path, e.strerror, self.out_dir)
                return self
            # The holder we waited on may have removed the file before we locked our open copy of it:
            # then our lock is on a file nobody else will open; start again on the path's current file.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            self._fd = fd
            break
        else:
            raise UserError(f"could not lock {self.path}: it keeps being replaced; is another run starting "
                            f"in {self.out_dir}?")
        previous = self._read(self._fd)
        if previous is None:
            os.close(self._fd)
            self._fd = None
            self._remove_created_dirs()
            raise UserError(f"{self.path} exists and is not a run lock written by persianllama; move it away "
                            "or choose another out_dir")
        if previous:
            log.warning("taking over %s: %s ended without releasing it", self.path,
                        self._describe(previous, check_alive=True))
        self._write()
        _held.add(self)
        return self

    def _refusal(self) -> str:
        info: dict = {}
        for _ in range(10):  # the holder writes its details just after locking
            info = self._read_path()
            if info:
                break
            time.sleep(0.05)
        if not info:
            who = "another process (its details are not written yet)"
        else:
            who = self._describe(info, check_alive=True)
            if "(no longer running)" in who:  # a process it forked without exec still has the file open
                who += f", whose child processes still hold the lock (`fuser -v {self.path}` lists them)"
        return (f"run folder {self.out_dir} is in use by {who}; wait for that run to end or stop it, "
                "or choose another out_dir")

    # --- the file's content -----------------------------------------------------------------------

    @staticmethod
    def _read(fd: int) -> dict | None:
        """The lock file's JSON: {} when empty, None when it holds something that is not ours."""
        os.lseek(fd, 0, os.SEEK_SET)
        raw = b""
        while chunk := os.read(fd, 65536):
            raw += chunk
        if not raw.strip():
            return {}
        try:
            info = json.loads(raw)
        except ValueError:
            return None
        return info if isinstance(info, dict) and "pid" in info else None

    def _read_path(self) -> dict:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return {}
        try:
            return self._read(fd) or {}
        finally:
            os.close(fd)

    def _write(self) -> None:
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": self.argv}
        data = (json.dumps(info, ensure_ascii=False) + "\n").encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        self._written = info

    @staticmethod
    def _describe(info: dict, *, check_alive: bool = False) -> str:
        host = info.get("host", "?")
        text = f"pid {info.get('pid')} on host {host}"
        if check_alive and host == socket.gethostname() and isinstance(info.get("pid"), int):
            text += "" if _pid_running(info["pid"]) else " (no longer running)"
        if info.get("started"):
            text += f", started {info['started']}"
        argv = info.get("argv")
        if argv:
            command = shlex.join(str(a) for a in argv)
            if len(command) > _ARGV_CHARS:
                command = command[:_ARGV_CHARS - 3] + "..."
            text += f" ({command})"
        return text

    # --- letting go ---------------------------------------------------------------------------------

    def release(self) -> None:
        """Remove the lock file (only if it is still the one this lock wrote), then unlock."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        _held.discard(self)
        try:
            ours = os.path.samestat(os.fstat(fd), os.stat(self.path)) and self._read(fd) == self._written
        except OSError:
            ours = False
        if ours:  # unlink while still locked: a waiter that opened this file sees it is gone and retries
            self.path.unlink(missing_ok=True)
        os.close(fd)  # closing the last descriptor drops the flock
        self._remove_created_dirs()

    def _remove_created_dirs(self) -> None:
        """Remove the folders `acquire` created, deepest first, while they are empty (a run that wrote
        nothing, such as one stopped by a bad setting, leaves no empty run folder behind)."""
        for d in self._created:
            try:
                d.rmdir()
            except OSError:
                break
        self._created = []
