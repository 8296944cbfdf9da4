"""SIGTERM/SIGINT mean "save a checkpoint after this step, then stop" in every track.

The handler only sets a flag; the loop checks it after each optimizer step (in a multi-rank run the flag
travels with the step's loss all-reduce, so every rank stops after the same step), saves, and exits with
128 + the signal number (143 for SIGTERM, 130 for SIGINT): the run is not finished, and the same command
continues it. A second SIGINT (Ctrl-C twice) stops at once without saving.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

log = logging.getLogger(__name__)


class StopSignal:
    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signum is None:
            log.warning("received %s: saving a checkpoint at the end of this step, then stopping "
                        "(Ctrl-C again or SIGKILL stops without saving)", signal.Signals(signum).name)
        self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """128 + signal number once stopped by a signal, else 0."""
        return 128 + self.signum if self.signum else 0

    def install(self) -> StopSignal:
        if threading.current_thread() is not threading.main_thread():
            return self  # Python delivers signals to the main thread only
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def __enter__(self) -> StopSignal:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.restore()
