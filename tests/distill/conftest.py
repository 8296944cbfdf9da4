"""Tiny real assets for the distillation tests: a Persian byte-level BPE (the student's), a LLaMA-style
SentencePiece BPE with byte fallback (a teacher's other vocabulary), tiny LLaMA teachers saved with
save_pretrained, and a Parquet corpus of Persian documents written for the tests."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import load_file

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[2]


data_assets = load_file("distill_data_assets", ROOT / "tests" / "data" / "conftest.py")

# Persian with what makes byte alignment hard: ZWNJ inside words, Persian and Latin digits, Latin words, and
# characters the SentencePiece vocabulary below never saw (spelled in byte-fallback pieces: «ژ», «ۀ», «€», «😊»).
HARD = [
    "کتاب‌ها را در سال ۱۴۰۲ خریدم و ۳ تا را خواندم.",
    "مدل LLaMA با 13B پارامتر روی GPU آموزش دید.",
    "ژاله گفت: «قیمت ۲۰ € است» 😊",
    "خانۀ ما در کوچهٔ بن‌بست است؛ شمارهٔ 42.",
]


def save_llama(out: Path, tokenizer_dir: Path, *, hidden: int = 32, layers: int = 1, seed: int = 0,
               vocab: int | None = None) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    torch.manual_seed(seed)
    LlamaForCausalLM(LlamaConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                                 num_attention_heads=4, vocab_size=vocab or len(tok), max_position_embeddings=256,
                                 bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                 tie_word_embeddings=False)).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def train_spm_tokenizer(out: Path, texts: list[str], vocab_size: int = 400) -> Path:
    """A LLaMA-shaped tokenizer: SentencePiece BPE with byte fallback and a dummy prefix, saved as HF files."""
    import sentencepiece as spm

    from persianllama.tokenizer.spm import load_proto, save_hf

    out.mkdir(parents=True, exist_ok=True)
    (out / "train.txt").write_text("\n".join(texts), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(out / "train.txt"), model_prefix=str(out / "sp"), model_type="bpe", vocab_size=vocab_size,
        byte_fallback=True, split_digits=True, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        add_dummy_prefix=True, remove_extra_whitespaces=False, normalization_rule_name="identity", minloglevel=2,
        num_threads=1)
    save_hf(load_proto(out / "sp.model"), out)
    (out / "train.txt").unlink()
    return out


@pytest.fixture(scope="session")
def distill_assets(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("distill assets")
    docs = data_assets.make_documents(n_docs=160)
    tok = data_assets.train_tiny_tokenizer(root / "tokenizer", docs + HARD, vocab_size=400)
    corpus = data_assets.write_parquet_shards(root / "corpus", docs, n_shards=2)
    # The SentencePiece vocabulary never sees ژ, ۀ, € or emoji: those go to byte-fallback pieces.
    spm_texts = [d.replace("ژ", "") for d in docs[:120]] + ["The model reads text. GPU and LLaMA 13B 42."] * 5
    spm_tok = train_spm_tokenizer(root / "spm tokenizer", spm_texts, vocab_size=420)
    teacher = save_llama(root / "teacher", tok, hidden=48, layers=2, seed=1, vocab=len_of(tok) + 3)
    other_teacher = save_llama(root / "other teacher", spm_tok, hidden=48, layers=1, seed=2)
    return SimpleNamespace(root=root, docs=docs, tok=tok, corpus=corpus, spm_tok=spm_tok, teacher=teacher,
                           other_teacher=other_teacher, cache=root / "cache")


def len_of(tokenizer_dir: Path) -> int:
    from transformers import AutoTokenizer

    return len(AutoTokenizer.from_pretrained(str(tokenizer_dir)))


def student_args(assets, out: Path, flags: list[str], *extra: str, steps: int = 4) -> list[str]:
    """`persianllama distill` arguments for a tiny student run (the tiny recipe at its smallest, one process, CPU):
    the teacher `flags`, then key=value settings (`extra` last)."""
    return [*flags, "--student-config", str(ROOT / "configs" / "tiny.yaml"), "--tokenizer", str(assets.tok),
            "--corpus", str(assets.corpus), "--output", str(out), f"train.max_steps={steps}",
            "train.seq_len=64", "train.micro_batch_size=4", "train.warmup_steps=1", "model.hidden_size=32",
            "model.intermediate_size=64", f"data.cache_dir={assets.cache}", "log.eval_interval=0",
            "log.progress_bar=false", "log.eval_docs=8", "checkpoint.save_interval=2", "ds_config="
            + str(ROOT / "ds_configs" / "zero0.json"), *extra]
