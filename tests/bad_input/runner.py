"""The bad-input table's row type and the one way every row is run.

A row names a command line (with ``{tmp}`` and the placeholders its `setup` returns), the exit code
it must end with, the words its one-line message must hold, and optionally a `check` on what it left
(records kept, files untouched). Rows live in ``cases_*.py`` beside this file, one module per stage;
``test_bad_input.py`` runs them all as one table.

Commands run in-process (``persianllama.cli.main`` or ``scripts/pretrain.py``'s ``main``), so a row
costs milliseconds to seconds, and an exception that escapes to a user fails the row with its
traceback.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Case:
    id: str
    """Unique, readable: `stage-what-is-wrong`."""
    argv: list[str]
    """The command after `persianllama` (or, with entry="pretrain", after `scripts/pretrain.py`); `{name}`
    placeholders are filled from {"tmp": tmp_path, "repo": REPO, **setup(tmp_path)}."""
    exit: int = 2
    words: list[str] = field(default_factory=list)
    """Substrings the error line must contain (case-insensitive)."""
    setup: Callable[[Path], dict[str, Any]] | None = None
    check: Callable[[Path, Result], None] | None = None
    """Further assertions (records kept, inputs untouched); raise AssertionError."""
    entry: str = "persianllama"
    """persianllama | pretrain."""
    env: dict[str, str] = field(default_factory=dict)
    marks: list = field(default_factory=list)


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if "error:" in line]


@functools.cache
def shared_assets() -> dict[str, Path]:
    """A tiny Persian corpus (Parquet shards), a tiny tokenizer and a tiny LLaMA with an adapter-less base,
    built once per test session (tests/data/conftest.py's builders) for rows that need real inputs."""
    spec = importlib.util.spec_from_file_location("bad_input_assets", REPO / "tests" / "data" / "conftest.py")
    assets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(assets)
    root = Path(tempfile.mkdtemp(prefix="bad-input-assets-"))
    docs = assets.make_documents(n_docs=60)
    tok = assets.train_tiny_tokenizer(root / "tokenizer", docs)
    corpus = assets.write_parquet_shards(root / "corpus", docs)
    return {"tok": tok, "corpus": corpus, "root": root}


@functools.cache
def tiny_base() -> Path:
    """A tiny LLaMA (1 layer, width 32) with the shared tokenizer beside it: a LoRA base that loads in seconds."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    a = shared_assets()
    out = a["root"] / "base"
    tok = AutoTokenizer.from_pretrained(str(a["tok"]))
    LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                 vocab_size=len(tok), max_position_embeddings=128, bos_token_id=tok.bos_token_id,
                                 eos_token_id=tok.eos_token_id)).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


@functools.cache
def _pretrain_main():
    spec = importlib.util.spec_from_file_location("pretrain_script", REPO / "scripts" / "pretrain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def run_case(case: Case, tmp_path: Path, capsys, monkeypatch) -> Result:
    values = {"tmp": str(tmp_path), "repo": str(REPO)}
    if case.setup is not None:
        values.update({k: str(v) for k, v in (case.setup(tmp_path) or {}).items()})
    argv = [a.format(**values) for a in case.argv]
    for k, v in case.env.items():
        monkeypatch.setenv(k, v.format(**values))
    capsys.readouterr()
    saved_env = dict(os.environ)  # an unlaunched pretrain fills in RANK, WORLD_SIZE ...: undo it
    try:
        code = _run(case, argv)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
    captured = capsys.readouterr()
    return Result(int(code), captured.out, captured.err)


def _run(case: Case, argv: list[str]) -> int:
    if case.entry == "pretrain":
        return _pretrain_main()(argv)
    else:
        from persianllama.cli import main

        try:
            return main(argv)
        except SystemExit as e:  # argparse's own usage errors exit 2 through SystemExit
            return e.code if isinstance(e.code, int) else 2


def assert_case(case: Case, result: Result, tmp_path: Path) -> None:
    text = result.out + result.err
    assert "Traceback (most recent call last)" not in text, text[-3000:]
    assert result.code == case.exit, f"exit {result.code}, expected {case.exit}\n{text[-3000:]}"
    if case.exit == 2:
        lines = result.error_lines or [ln for ln in result.err.splitlines() if ln.strip()]
        assert lines, f"no error line on stderr:\n{text[-2000:]}"
        message = lines[-1].lower()
        for word in case.words:
            assert word.lower() in message, f"{word!r} not in the error line: {lines[-1]!r}"
    if case.check is not None:
        case.check(tmp_path, result)
