"""Tiny real assets for the instruction-tuning tests: a Persian byte-level BPE tokenizer trained here, a tiny
LLaMA saved with save_pretrained, and short Persian conversations written for these tests."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[2]
INSTRUCTIONS = ROOT / "corpora" / "sample" / "instructions"

# Eight short conversations (original, for these tests): the overfitting test reproduces each answer exactly.
EIGHT = [
    [{"role": "user", "content": "پایتخت ایران کجاست؟"}, {"role": "assistant", "content": "تهران."}],
    [{"role": "user", "content": "دو به علاوهٔ دو چند می‌شود؟"}, {"role": "assistant", "content": "چهار."}],
    [{"role": "system", "content": "کوتاه پاسخ بده."}, {"role": "user", "content": "رنگ آسمان؟"},
     {"role": "assistant", "content": "آبی."}],
    [{"role": "user", "content": "سلام"}, {"role": "assistant", "content": "سلام! چطور کمک کنم؟"}],
    [{"role": "user", "content": "یک میوهٔ زرد نام ببر."}, {"role": "assistant", "content": "موز."}],
    [{"role": "user", "content": "ترجمه کن: book"}, {"role": "assistant", "content": "کتاب"}],
    [{"role": "user", "content": "شعر از کیست؟ «بنی آدم اعضای یکدیگرند»"}, {"role": "assistant", "content": "سعدی."},
     {"role": "user", "content": "در کدام کتاب؟"}, {"role": "assistant", "content": "گلستان."}],
    [{"role": "user", "content": "نوروز چه روزی است؟"}, {"role": "assistant", "content": "آغاز سال نو."}],
]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


data_assets = _load("sft_data_assets", ROOT / "tests" / "data" / "conftest.py")


def save_tiny_llama(out: Path, tokenizer_dir: Path, *, hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    torch.manual_seed(seed)
    LlamaForCausalLM(LlamaConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                                 num_attention_heads=4, vocab_size=len(tok), max_position_embeddings=256,
                                 bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def sft_assets(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("sft assets")
    texts = data_assets.make_documents(n_docs=120)
    texts += [m["content"] for conv in EIGHT for m in conv] * 5
    tok = data_assets.train_tiny_tokenizer(root / "tokenizer", texts, vocab_size=600)
    base = save_tiny_llama(root / "base", tok)
    eight = root / "eight.jsonl"
    eight.write_text("".join(json.dumps({"messages": c}, ensure_ascii=False) + "\n" for c in EIGHT), encoding="utf-8")
    return SimpleNamespace(root=root, tok=tok, base=base, eight=eight, conversations=EIGHT)


def tiny_overrides(**extra) -> list[str]:
    values = {"model.quantization": "none", "model.gradient_checkpointing": "false", "lora.r": 16, "lora.alpha": 32,
              "lora.dropout": 0.0, "train.seq_len": 128, "train.micro_batch_size": 4, "train.global_batch_size": 4,
              "train.max_steps": 10, "train.lr": 1e-2, "train.min_lr": 1e-3, "train.warmup_steps": 2,
              "checkpoint.save_interval": 100, "log.log_interval": 10, "log.eval_interval": 0, "log.eval_docs": 4,
              "log.tensorboard": "false", "data.val_fraction": 0.0}
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]
