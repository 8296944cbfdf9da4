"""Tiny real assets for the weak-to-strong tests: a Persian byte-level BPE tokenizer trained here on the bundled
task files' text, and two tiny LLaMAs (a weak and a wider, deeper strong one) saved with save_pretrained."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import load_file

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "corpora" / "sample" / "tasks"


data_assets = load_file("w2s_data_assets", ROOT / "tests" / "data" / "conftest.py")
sft_assets = load_file("w2s_sft_assets", ROOT / "tests" / "sft" / "conftest.py")


def task_texts() -> list[str]:
    """Every prompt and label word of the bundled classification tasks (what the tiny tokenizer must cover)."""
    from persianllama.w2s.data import TASKS as W2S_TASKS
    from persianllama.w2s.data import load_task

    texts = []
    for task in W2S_TASKS:
        t = load_task(task, str(TASKS))
        texts += [r.text for r in t.train + t.test] + [t.delimiter + w for w in t.choices] * 5
    return texts


@pytest.fixture(scope="session")
def w2s_assets(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("w2s assets")
    tok = data_assets.train_tiny_tokenizer(root / "tokenizer", data_assets.make_documents(n_docs=60) + task_texts(),
                                           vocab_size=500)
    weak = sft_assets.save_tiny_llama(root / "weak", tok, hidden=32, layers=1, seed=1)
    strong = sft_assets.save_tiny_llama(root / "strong", tok, hidden=64, layers=2, seed=2)
    return SimpleNamespace(root=root, tok=tok, weak=weak, strong=strong)
