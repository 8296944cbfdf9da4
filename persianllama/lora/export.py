"""The final adapter folder: PEFT's save, the tokenizer, a card, and a check that nothing is empty.

Chinese-LLaMA-Alpaca's users got 443-byte adapters when ``model.state_dict`` was patched; here the
adapter is written only by PEFT's ``save_pretrained`` and then read back: the export fails unless it
holds both LoRA matrices of every targeted projection, non-empty, with the B matrices moved off their
zero initialisation, and (when the embeddings were trained) the embedding and output weights.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from persianllama.atomic import write_json, write_text
from persianllama.errors import UserError


def inspect_adapter(path: Path) -> dict:
    """Counts and shapes of what an adapter file holds (no model needed)."""
    from safetensors import safe_open

    f = Path(path) / "adapter_model.safetensors"
    if not f.is_file():
        raise UserError(f"{path}: no adapter_model.safetensors")
    out = {"bytes": f.stat().st_size, "lora_A": 0, "lora_B": 0, "zero_B": 0, "empty": 0, "embedding": {},
           "trainable_tokens": 0}
    with safe_open(str(f), framework="pt") as st:
        for key in st.keys():
            t = st.get_tensor(key)
            if t.numel() == 0:
                out["empty"] += 1
            if ".lora_A." in key:
                out["lora_A"] += 1
            elif ".lora_B." in key:
                out["lora_B"] += 1
                out["zero_B"] += int(not bool(t.abs().sum() > 0))
            elif "trainable_tokens_delta" in key:
                out["trainable_tokens"] += 1
            elif key.endswith("weight") and ("embed_tokens" in key or "lm_head" in key):
                out["embedding"][key] = list(t.shape)
    return out


def verify_adapter(path: Path, *, n_projections: int, embeddings: str, trained: bool) -> dict:
    info = inspect_adapter(path)
    problems = []
    if info["lora_A"] != n_projections or info["lora_B"] != n_projections:
        problems.append(f"{info['lora_A']} lora_A / {info['lora_B']} lora_B tensors, expected {n_projections} each")
    if info["empty"]:
        problems.append(f"{info['empty']} empty tensor(s)")
    if trained and info["zero_B"] == info["lora_B"] and info["lora_B"]:
        problems.append("every lora_B is still zero (nothing was learned)")
    if embeddings == "full" and len(info["embedding"]) < 2:
        problems.append("the trained embedding/output weights are missing")
    if embeddings == "new_rows" and info["trainable_tokens"] < 1:
        problems.append("the trained new-token rows are missing")
    if problems:
        raise UserError(f"adapter {path} is incomplete: {'; '.join(problems)}")
    return info


def card(setup, summary: dict) -> str:
    cfg = setup.cfg
    ext = setup.extension
    lines = [
        "---",
        "library_name: peft",
        f"base_model: {cfg.model.base}",
        "language: [fa]",
        "tags: [lora, persian, persianllama]",
        "---",
        "",
        f"# PersianLLaMA LoRA adapter for {cfg.model.base}",
        "",
        "Continued pretraining on Persian text with LoRA (`persianllama lora train`, scripts/lora_adapt.sh).",
        "",
        f"- base: `{cfg.model.base}`, loaded in {cfg.model.quantization}"
        f"{' (LLM.int8)' if cfg.model.quantization == '8bit' else ''}",
        f"- LoRA: r={cfg.lora.r}, alpha={cfg.lora.alpha}, dropout={cfg.lora.dropout}, "
        f"targets {', '.join(cfg.lora.target_modules)}",
        f"- vocabulary: {ext.base_size} base tokens"
        + (f" + {ext.new_size - ext.base_size} new tokens (rows initialised from the mean of their base-tokenizer "
           f"subtokens; embedding and output layer trained: {setup.embeddings})" if ext.extended else
           f" (not extended; embeddings trained: {setup.embeddings})"),
        f"- data: {', '.join(map(str, cfg.data.corpus))}, blocks of {cfg.train.seq_len} tokens, "
        f"{summary.get('tokens', 0):,} tokens seen in {summary.get('step', 0)} steps",
        f"- optimizer {cfg.train.optimizer}, lr {cfg.train.lr} (cosine to {cfg.train.min_lr}, "
        f"{cfg.train.warmup_steps} warmup steps), global batch {setup.batch.global_batch}",
    ]
    if summary.get("val"):
        v = summary["val"]
        lines.append(f"- validation bits-per-byte {v['bits_per_byte']:.4f} on {v['documents']} held-out documents"
                     + (f" (before training: {summary['val_start']['bits_per_byte']:.4f})"
                        if summary.get("val_start") else ""))
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "tok = AutoTokenizer.from_pretrained(ADAPTER)",
        "base = AutoModelForCausalLM.from_pretrained(BASE)",
        "base.resize_token_embeddings(len(tok))" if ext.extended else "",
        "model = PeftModel.from_pretrained(base, ADAPTER)",
        "```",
        "",
        "or merge it into a full model: `persianllama merge --base BASE --adapter ADAPTER --output DIR`.",
        "",
        f"Written {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
    ]
    return "\n".join(line for line in lines if line is not None)


def export(setup, net, out: Path, summary: dict, *, save_embedding_layers: bool, card_fn=None) -> dict:
    """Write the adapter folder `out` and verify it (`card_fn(setup, summary)` writes the README; this track's
    `card` by default)."""
    out.mkdir(parents=True, exist_ok=True)
    net.save_pretrained(str(out), save_embedding_layers=save_embedding_layers)
    setup.tok.save_pretrained(str(out))
    from persianllama.lora.adapter import write_base_record

    write_base_record(out, setup.cfg.model.base)  # merge checks the base against this
    n_proj = len(setup.cfg.lora.target_modules) * int(setup.hf_config["num_hidden_layers"])
    info = verify_adapter(out, n_projections=n_proj, embeddings=setup.embeddings,
                          trained=summary.get("step", 0) > 0)
    write_json(out / "training_info.json", {
        **summary, "adapter": {k: v for k, v in info.items() if k != "zero_B"},
        "embeddings_trained": setup.embeddings,
        "vocabulary": setup.extension.summary() if setup.extension.extended else None,
        "config": json.loads(json.dumps(summary.get("config", {}))),
    })
    write_text(out / "README.md", (card_fn or card)(setup, summary))
    return info
