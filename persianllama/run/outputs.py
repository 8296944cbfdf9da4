"""Where a command may write, and what it must never delete.

`prepare_output` is the one guard for commands that write a folder from inputs (export, merge ...): a
non-empty output is refused unless `overwrite`, and a folder that holds one of the command's inputs or a
training run is never removed, with or without `overwrite`. The new content is written into a temporary
sibling and moved into place at the end (`Output.commit`), so an interrupted command leaves the old
folder as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from persianllama.errors import UserError
from persianllama.run.lock import LOCK_NAME

RUN_MARKERS = ("checkpoints", "trainer_state.json", "metrics.jsonl", LOCK_NAME, "adapter_config.json")
"""Files or folders that make a folder a run (or an adapter) that no output may replace."""


def resolve_path(path: str, *, must_exist: bool = True, what: str = "file") -> Path:
    """A path as given (relative to the working directory), else relative to the repository root."""
    p = Path(path).expanduser()
    if p.exists() or not must_exist:
        return p
    repo = Path(__file__).resolve().parents[2]
    if (repo / p).exists():
        return repo / p
    raise UserError(f"{what} not found: {path}")


def _inside(a: Path, b: Path) -> bool:
    """a is b or inside b."""
    try:
        a.relative_to(b)
        return True
    except ValueError:
        return False


class Output:
    """A folder being written: `tmp` to write into, `commit()` to move it into place."""

    def __init__(self, final: Path, tmp: Path):
        self.final = final
        self.tmp = tmp

    def commit(self) -> Path:
        old = None
        if self.final.exists():
            old = self.final.with_name(f".{self.final.name}.old-{os.getpid()}")
            self.final.rename(old)
        self.tmp.rename(self.final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def prepare_output(out: str | Path, *, inputs: list[str | Path], overwrite: bool, what: str,
                   flag: str = "--overwrite") -> Output:
    """Check `out` before any work, then return a temporary sibling to write into.

    Refused: `out` is an existing file; `out` is non-empty and `overwrite` is false; `out` is, or holds,
    one of `inputs` (with or without `overwrite`); `out` holds a run or an adapter (checkpoints,
    trainer_state.json, metrics.jsonl, adapter_config.json) that is not a previous output of this kind."""
    out = Path(out).expanduser()
    final = out.resolve()
    if final.exists() and not final.is_dir():
        raise UserError(f"{what} output {out} is an existing file; choose a folder path")
    for src in inputs:
        if src is None:
            continue
        s = Path(src).expanduser()
        if not s.exists():
            continue
        s = s.resolve()
        if _inside(s, final) or _inside(final, s):
            raise UserError(f"{what} output {out} {'holds' if _inside(s, final) else 'is inside'} the input {src}; "
                            "writing there could destroy it, so choose another output folder")
    if final.is_dir() and any(final.iterdir()):
        markers = [m for m in RUN_MARKERS if (final / m).exists()]
        if markers:
            raise UserError(f"{what} output {out} holds a training run or adapter ({', '.join(markers)}); it is never "
                            "replaced, choose another output folder")
        if not overwrite:
            raise UserError(f"{what} output {out} exists and is not empty; choose another folder, or pass {flag} to "
                            "replace it")
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=parent))
    except OSError as e:
        raise UserError(f"cannot write {what} output {out}: {e.strerror or e}") from None
    return Output(final, tmp)
