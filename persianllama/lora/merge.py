"""`persianllama merge`: fold a LoRA adapter into a full-precision copy of its base model.

The base is loaded in fp16, bf16 or fp32, never in 8-bit (merging ``W + (alpha/r) B A`` into int8
weights would round the update away, and an int8 checkpoint is not what users load). When the
adapter carries embedding and output weights (a vocabulary extension), the base is first resized to
the adapter's vocabulary and the adapter's rows replace the base's. Before saving, the merged model's
logits are compared with base + adapter on a few held-out-like inputs; the difference is written in
the model card and a difference above tolerance fails the merge. The output folder is complete or
absent: it is written beside the target and renamed into place.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from persianllama.errors import UserError
from persianllama.run.outputs import prepare_output

log = logging.getLogger("persianllama.lora.merge")

# Largest |merged - unmerged| logit difference accepted, relative to the logits' scale: fp32 only
# reorders sums; bf16/fp16 round W + BA to 8/11 mantissa bits.
TOLERANCE = {"fp32": 1e-4, "bf16": 5e-2, "fp16": 1e-2}
CHECK_TEXT = "تهران پایتخت ایران است. The merged model must predict exactly what base + adapter predicted."


@dataclass
class MergeResult:
    output: Path
    vocab: int
    max_abs_diff: float | None
    rel_diff: float | None
    seconds: float


def _first_line(e: BaseException) -> str:
    return (str(e).strip() or type(e).__name__).splitlines()[0][:300]


def check_inputs(base: str, adapter: str, output: str, tokenizer: str | None,
                 overwrite: bool, force: bool = False) -> tuple[dict, int | None, str]:
    """Refuse before loading anything: (adapter config, adapter vocabulary, tokenizer source)."""
    from persianllama.lora import adapter as adapter_folder
    from persianllama.lora.preflight import read_base_config

    a = Path(adapter)
    acfg = adapter_folder.read_config(a)
    hf = read_base_config(base)  # refuses a base saved in 8-bit/4-bit
    rows = adapter_folder.embedding_rows(a)
    note = adapter_folder.check_base(a, base, force=force)
    if note:
        log.info("%s", note)
    tok_src = tokenizer or adapter_folder.tokenizer_source(a, base)
    from transformers import AutoTokenizer

    try:
        n_tok = len(AutoTokenizer.from_pretrained(tok_src))
    except Exception as e:  # noqa: BLE001
        raise UserError(f"cannot load the tokenizer from {tok_src}: {_first_line(e)}") from None
    base_rows = int(hf["vocab_size"])
    vocab = rows or base_rows
    if n_tok > vocab:
        raise UserError(
            f"vocabulary mismatch: the tokenizer {tok_src} has {n_tok} tokens but the adapter {adapter} "
            + (f"was trained with {rows} embedding rows" if rows
               else f"saved no embeddings and the base has {base_rows}")
            + "; merge with the tokenizer saved beside the adapter")
    if rows is not None and rows < base_rows:
        raise UserError(f"the adapter {adapter} has {rows} embedding rows, fewer than the base {base} ({base_rows}); "
                        "it was trained on another base model")
    return acfg, rows, tok_src


def merge(base: str, adapter: str, output: str, *, dtype: str = "bf16", tokenizer: str | None = None,
          device: str = "cpu", check: bool = True, overwrite: bool = False, force: bool = False) -> MergeResult:
    """Merge `adapter` into `base` at `dtype` and save a full HF model (safetensors) with tokenizer and card."""
    if dtype not in TOLERANCE:
        raise UserError(f"--dtype {dtype}: merge into fp16, bf16 or fp32 weights (never 8-bit: the LoRA update would "
                        "be rounded away)")
    t0 = time.perf_counter()
    target = prepare_output(output, inputs=[base, adapter, tokenizer], overwrite=overwrite, what="merge")
    try:
        acfg, rows, tok_src = check_inputs(base, adapter, output, tokenizer, overwrite, force)
        return _merge(base, adapter, target, acfg, rows, tok_src, dtype=dtype, device=device, check=check, t0=t0)
    except BaseException:
        target.abort()
        raise


def _merge(base: str, adapter: str, target, acfg: dict, rows: int | None, tok_src: str, *, dtype: str, device: str,
           check: bool, t0: float) -> MergeResult:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from persianllama.lora.model import torch_dtype

    tok = AutoTokenizer.from_pretrained(tok_src)
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch_dtype(dtype)).to(device)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"cannot load the base model {base} in {dtype} on {device}: {_first_line(e)}") from None
    base_rows = model.get_input_embeddings().weight.shape[0]
    if rows is not None and rows != base_rows:
        model.resize_token_embeddings(rows, mean_resizing=False)  # the adapter's rows replace these
    try:
        net = PeftModel.from_pretrained(model, adapter, is_trainable=False)
    except Exception as e:  # noqa: BLE001 - e.g. size mismatch: the adapter belongs to another base
        raise UserError(f"cannot load the adapter {adapter} onto {base}: {_first_line(e)}") from None
    net.eval()
    ids = None
    if check:
        ids = tok(CHECK_TEXT, return_tensors="pt")["input_ids"].to(device)
        with torch.no_grad():
            reference = net(input_ids=ids).logits.float()
    merged = net.merge_and_unload()
    merged.eval()
    max_diff = rel = None
    if check:
        with torch.no_grad():
            got = merged(input_ids=ids).logits.float()
        max_diff = float((got - reference).abs().max())
        rel = max_diff / max(float(reference.abs().max()), 1e-6)
        if rel > TOLERANCE[dtype]:
            raise UserError(f"the merged model's logits differ from base + adapter by {max_diff:.3g} "
                            f"({rel:.2%} of their scale, tolerance {TOLERANCE[dtype]:.2%} in {dtype}); not saved")
        log.info("merge check: max |logit difference| %.3g (%.3g of scale) in %s", max_diff, rel, dtype)
    if any("lora_" in n for n, _ in merged.named_parameters()):
        raise UserError("merge left LoRA layers in the model; peft could not merge this adapter")

    tmp = target.tmp
    # Written into a temporary sibling, moved into place only when complete.
    merged.save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    vocab = merged.get_input_embeddings().weight.shape[0]
    info = {"base": base, "adapter": str(adapter), "dtype": dtype, "vocab": int(vocab),
            "tokenizer": str(tok_src), "lora_r": acfg.get("r"), "lora_alpha": acfg.get("lora_alpha"),
            "target_modules": acfg.get("target_modules"), "max_abs_logit_diff": max_diff,
            "relative_logit_diff": rel, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (tmp / "merge_info.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (tmp / "README.md").write_text(card(info), encoding="utf-8")
    out = target.commit()
    return MergeResult(out, int(vocab), max_diff, rel, time.perf_counter() - t0)


def card(info: dict) -> str:
    check = ("not checked" if info["max_abs_logit_diff"] is None else
             f"max |logit difference| {info['max_abs_logit_diff']:.3g} "
             f"({info['relative_logit_diff']:.3g} of the logits' scale)")
    return "\n".join([
        "---",
        f"base_model: {info['base']}",
        "language: [fa]",
        "tags: [persian, persianllama, merged-lora]",
        "---",
        "",
        "# PersianLLaMA (merged LoRA)",
        "",
        f"`{info['base']}` with the LoRA adapter `{info['adapter']}` merged into its weights "
        f"(`persianllama merge`), saved in {info['dtype']} as safetensors.",
        "",
        f"- vocabulary: {info['vocab']} tokens (tokenizer from `{info['tokenizer']}`)",
        f"- LoRA: r={info['lora_r']}, alpha={info['lora_alpha']}, targets {info['target_modules']}",
        f"- merged vs base + adapter: {check}",
        "",
        "Load it like any causal LM: `AutoModelForCausalLM.from_pretrained(DIR)`.",
        "",
    ])
