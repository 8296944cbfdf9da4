"""Errors that the CLI reports as one clear line instead of a traceback."""


class UserError(Exception):
    """A problem with the user's input (a path, a setting, a file's content): the message says what and where."""


class NonFiniteLoss(UserError):
    """The training loss became inf/nan; every track stops the same way (checkpoints before it are intact)."""

    def __init__(self, step: int, loss: float, lr: float):
        super().__init__(f"the loss became {loss} at step {step} (lr {lr:.3g}); lower train.lr or use "
                         "train.precision=fp32/bf16, then run the same command to resume from the last checkpoint")


def disk_full(e: BaseException) -> str | None:
    """One line for a full disk or quota (ENOSPC, EDQUOT) met while writing; None for any other error."""
    import errno

    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" while writing {e.filename}" if e.filename else ""
        return (f"no space left on the device{where}; free some space (or choose another output folder) and run "
                "the same command again: finished work is kept and the run resumes")
    return None
