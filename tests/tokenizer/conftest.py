"""Fixtures for the tokenizer tests: Persian sentences written for these tests, tiny trained tokenizers.

The sentences are original text (not copied from any corpus). Tokenizers are trained once per
session on them, with vocabularies of a few hundred tokens, so the whole set stays fast.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizer_testdata import ENGLISH, RAW_SENTENCES, SENTENCES


@pytest.fixture(scope="session")
def sentences() -> list[str]:
    return list(SENTENCES)


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    """The sentences, repeated so that BPE has pairs to count, one per line."""
    path = tmp_path_factory.mktemp("corpus") / "persian.txt"
    path.write_text("\n".join(SENTENCES * 4 + RAW_SENTENCES * 2) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def bpe_dir(tmp_path_factory, corpus_file) -> Path:
    """A tiny byte-level BPE (with multi-word tokens) trained through the package API."""
    from persianllama.tokenizer.train import TokenizerTrainConfig, train

    out = tmp_path_factory.mktemp("bpe")
    train(TokenizerTrainConfig(input=[str(corpus_file)], output=str(out), vocab_size=700, threads=1))
    return out


@pytest.fixture(scope="session")
def sp_dir(tmp_path_factory, corpus_file) -> Path:
    """A tiny Persian SentencePiece BPE, as `--backend sentencepiece` makes it."""
    from persianllama.tokenizer.train import TokenizerTrainConfig, train

    out = tmp_path_factory.mktemp("sp")
    train(TokenizerTrainConfig(input=[str(corpus_file)], output=str(out), vocab_size=600, backend="sentencepiece",
                      threads=1))
    return out


@pytest.fixture(scope="session")
def llama_like_base(tmp_path_factory) -> Path:
    """A LLaMA-style SentencePiece base (BPE, byte fallback, identity normalization), mostly English
    with a little Persian, so the extension has Persian pieces to add and English ones to keep."""
    import sentencepiece as spm

    out = tmp_path_factory.mktemp("base")
    text = ENGLISH * 20 + SENTENCES[:3]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text), model_prefix=str(out / "tokenizer"), model_type="bpe", vocab_size=500,
        byte_fallback=True, split_digits=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True, character_coverage=1.0, minloglevel=2, num_threads=1,
    )
    return out / "tokenizer.model"
