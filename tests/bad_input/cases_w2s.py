"""Bad-input rows of the weak-to-strong experiment: `w2s`."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.bad_input.runner import REPO, Case, tiny_base

SAMPLE = REPO / "corpora" / "sample" / "tasks"


def _inputs(tmp: Path) -> dict:
    """A tiny base, and data roots that are incomplete or too small."""
    only_test = tmp / "only-test" / "farstail" / "data"
    only_test.mkdir(parents=True)
    shutil.copy(SAMPLE / "farstail" / "data" / "Test-word.csv", only_test)
    tiny = tmp / "tiny" / "farstail" / "data"
    tiny.mkdir(parents=True)
    shutil.copy(SAMPLE / "farstail" / "data" / "Test-word.csv", tiny)
    rows = (SAMPLE / "farstail" / "data" / "Train-word.csv").read_text(encoding="utf-8").splitlines()
    (tiny / "Train-word.csv").write_text("\n".join(rows[:4]) + "\n", encoding="utf-8")  # header + 3 rows
    (tmp / "empty").mkdir()
    (tmp / "not-a-model").mkdir()
    return {"base": tiny_base(), "sample": SAMPLE}


def _nothing_written(tmp: Path, result) -> None:
    assert not (tmp / "out").exists()


def w2s(id: str, words: list[str], *, task="farstail", data="{sample}", weak="{base}", strong="{base}",
        extra: tuple = ()) -> Case:
    argv = ["w2s", "--task", task, "--data-dir", data, "--weak", weak, "--strong", strong, "--output", "{tmp}/out",
            *extra]
    return Case(id=f"w2s-{id}", argv=argv, words=words, setup=_inputs, check=_nothing_written)


CASES = [
    w2s("unknown-task", ["--task", "invalid choice", "sst2"], task="sst2"),
    w2s("data-dir-missing", ["--data-dir", "nope", "no such folder"], data="{tmp}/nope"),
    w2s("data-dir-without-task", ["farstail/data", "no", "folder"], data="{tmp}/empty"),
    w2s("no-train-split", ["Train-word.csv", "training split"], data="{tmp}/only-test"),
    w2s("too-few-rows", ["only 3 training row", "two halves", "min_half_rows"], data="{tmp}/tiny"),
    w2s("weak-missing", ["--weak", "no-such-model", "no such file"], weak="{tmp}/no-such-model"),
    w2s("strong-not-a-model", ["--strong", "not-a-model", "no config.json"], strong="{tmp}/not-a-model"),
    w2s("no-weak", ["--weak is required"], weak=""),
    w2s("bad-setting", ["aux.alpha", "1.5"], extra=("aux.alpha=1.5",)),
    w2s("unknown-setting", ["aux.beta"], extra=("aux.beta=1",)),
]
