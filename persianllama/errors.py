"""Errors that the CLI reports as one clear line instead of a traceback."""


class UserError(Exception):
    """A problem with the user's input (a path, a setting, a file's content): the message says what and where."""


class NonFiniteLoss(UserError):
    """The training loss became inf/nan; every track stops the same way (checkpoints before it are intact)."""

    def __init__(self, step: int, loss: float, lr: float):
        super().__init__(f"the loss became {loss} at step {step} (lr {lr:.3g}); lower train.lr or use "
                         "train.precision=fp32/bf16, then run the same command to resume from the last checkpoint")
