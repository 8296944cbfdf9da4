"""Checks of command-line values that are not fields of a settings dataclass.

Settings that are dataclass fields carry their rule next to the field (``limit: Count | None``,
see :mod:`persianllama.config`) and are checked by ``config.from_dict``. This module is for the
rest:

- argparse ``type=`` helpers for plain flags, built from the same rule objects so the message has
  the same shape (``p.add_argument("--vocab", type=cliargs.count)`` ->
  ``error: argument --vocab: 0 is out of range: it must be >= 1``);
- :func:`integer` for flags that feed a dataclass field: the text becomes an int (or one line, without
  argparse's usage block) and the field's own rule then checks the range;
- output folders checked before the work starts (:func:`output_dir`), and a full disk while
  writing them turned into one line (:func:`writing`).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import math
import os
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from persianllama.config import Count, Fraction, NonNeg, NonNegInt, Positive, RuleError
from persianllama.errors import UserError


def ruled(tp: Any, name: str | None = None) -> Callable[[str], Any]:
    """An argparse ``type=`` for an ``Annotated[int | float, rule...]`` type (``Count``, ``Fraction``,
    ``Annotated[int, Range(2, 64)]``...): parses the number, refuses NaN/inf, applies the rules."""
    base, *meta = typing.get_args(tp) if typing.get_origin(tp) is typing.Annotated else (tp,)
    rules = [m for m in meta if hasattr(m, "check")]
    if base not in (int, float):
        raise TypeError(f"ruled() takes an int or float type, not {base!r}")

    def parse(text: str) -> Any:
        try:
            value = base(text)
        except ValueError:
            kind = "an integer" if base is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if base is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        for rule in rules:
            try:
                rule.check(value, "value")
            except RuleError:
                # argparse puts "argument --flag:" in front, so the flag is named once.
                raise argparse.ArgumentTypeError(f"{value!r} is out of range: it must be {rule.text()}") from None
        return value

    parse.__name__ = name or (getattr(base, "__name__", "value"))
    return parse


count = ruled(Count, "count")
"""An integer >= 1."""
non_negative_int = ruled(NonNegInt, "non-negative integer")
"""An integer >= 0."""
fraction = ruled(Fraction, "fraction")
"""A finite float in [0, 1]."""
positive = ruled(Positive, "positive number")
"""A finite float > 0."""
non_negative = ruled(NonNeg, "non-negative number")
"""A finite float >= 0."""


def integer(text: str | None, setting: str) -> int | None:
    """A flag's text as an integer, or a one-line UserError (no argparse usage block) naming the flag.

    For flags that feed a settings dataclass: parse here with ``type=str``, let the field's rule check the
    range (``p.add_argument("--limit")`` then ``limit=integer(args.limit, "--limit")``)."""
    if text is None:
        return None
    try:
        return int(str(text).strip())
    except ValueError:
        raise UserError(f"{setting}={text!r} is not an integer") from None


# --------------------------------------------------------------------------- output folders

_DISK_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
}


def output_dir(path: str | Path, setting: str = "--output", create: bool = False) -> Path:
    """Check an output folder before any work: not a file, and a file can be written where it will be.

    Nothing is left behind unless `create` (then the folder is made). A refusal names the setting and
    the path, in one line."""
    if not str(path):
        raise UserError(f"{setting} is required")
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"{setting} {out} is a file, not a folder; pass a folder (it is created if missing)")
    existing = out
    while not existing.exists():  # the nearest existing ancestor is where the first write happens
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise UserError(f"{setting} {out}: {existing} is a file, so no folder can be made under it")
    probe = existing / f".persianllama-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
        if create:
            out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        reason = _DISK_ERRORS.get(e.errno, e.strerror or type(e).__name__)
        raise UserError(f"{setting} {out} is not writable ({existing}: {reason}); pass a folder you can "
                        "write to") from None
    return out


@contextlib.contextmanager
def writing(path: str | Path, what: str = "the outputs", setting: str = "--output") -> Iterator[None]:
    """Turn a full disk (or quota, or read-only file system) while writing into one line naming `path`."""
    try:
        yield
    except OSError as e:
        reason = _DISK_ERRORS.get(e.errno)
        if reason is None:
            raise
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        raise UserError(f"{setting} {path}: {reason} while writing {what}{where}; free some space or pass "
                        f"another {setting}") from None
