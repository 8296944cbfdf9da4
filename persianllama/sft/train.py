"""Instruction tuning, top to bottom: the LoRA track's adapter loop fed with packed chat data.

1. resolve and refuse without loading weights (the LoRA track's preflight: device, precision, tokenizer,
   resume), the memory plan;
2. the chat template (kept, or the documented default); read, check and normalize the conversations; hold
   some out; tokenize with assistant-only labels; pack without cross-talk;
3. train the adapter (`persianllama.lora.train.train_adapter`: resume, signals, metrics, checkpoints);
   validation is the assistant-token loss (and bits per byte of the replies) on held-out conversations;
4. the adapter folder with the tokenizer *and its chat template*, a card, and with merge=true a merged model.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from pathlib import Path

from persianllama.atomic import write_json
from persianllama.config import to_dict
from persianllama.errors import UserError
from persianllama.run.lock import RunLock
from persianllama.sft.config import SftConfig

log = logging.getLogger("persianllama.sft")


def encode_all(tok, convs, train_on: str):
    from persianllama.sft.packing import Example
    from persianllama.sft.template import encode

    return [Example(*encode(tok, c.messages, train_on=train_on)) for c in convs]


def score_sums(net, tok, packed, batch_size: int, *, device: str, precision: str, attn_kind: str = "sdpa",
               rows: list[int] | None = None) -> list[float]:
    """[nll, reply bytes, assistant tokens, reply words, conversations] over `rows` of held-out packed rows."""
    import torch

    from persianllama.run.device import autocast
    from persianllama.sft.packing import IGNORE, collate
    from persianllama.text.words import count_words

    rows = list(range(len(packed.rows))) if rows is None else rows
    nll = n_tok = n_bytes = n_words = 0.0
    was_training = net.training
    net.eval()
    try:
        for start in range(0, len(rows), batch_size):
            batch, _ = collate(packed, rows[start:start + batch_size], tok.pad_token_id or 0, attn_kind)
            labels = batch.pop("labels")
            with autocast(device, precision), torch.no_grad():
                logits = net(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu()
            target = labels[:, 1:]
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            keep = target != IGNORE
            nll -= float(logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)[keep].sum())
            n_tok += int(keep.sum())
            for ids, k in zip(target, keep):
                text = tok.decode(ids[k].tolist(), skip_special_tokens=True)
                n_bytes += len(text.encode("utf-8"))
                n_words += count_words(text)
    finally:
        net.train(was_training)
    return [nll, n_bytes, n_tok, n_words, float(sum(len(packed.rows[r]) for r in rows))]


def score(net, tok, packed, batch_size: int, *, step: int, device: str, precision: str, attn_kind: str = "sdpa",
          rows: list[int] | None = None, reduce=None) -> dict | None:
    """The ``eval`` record of held-out conversations: loss per assistant token, bits per byte of the replies.
    (`rows`: only these packed rows, one rank's share; `reduce(list) -> list` adds the sums over ranks.)"""
    from persianllama.run.metrics import eval_record

    if not packed.rows:
        return None
    t0 = time.perf_counter()
    sums = score_sums(net, tok, packed, batch_size, device=device, precision=precision, attn_kind=attn_kind,
                      rows=rows)
    if reduce is not None:
        sums = reduce(sums)
    nll, n_bytes, n_tok, n_words, n_docs = sums
    return eval_record(step, nll, n_bytes, n_tok, n_words, n_docs, time.perf_counter() - t0)


def attn(setup) -> str:
    a = setup.cfg.model.attn_implementation
    return "sdpa" if a == "auto" else a


def card(setup, summary: dict, *, data_report: dict, template_source: str) -> str:
    cfg = setup.cfg
    v = summary.get("val") or {}
    v0 = summary.get("val_start") or {}
    formats = ", ".join(f"{k} {n}" for k, n in data_report.get("formats", {}).items())
    lines = [
        "---", "library_name: peft", f"base_model: {cfg.model.base}", "language: [fa]",
        "tags: [lora, persian, persianllama, instruction-tuning, chat]", "---", "",
        f"# PersianLLaMA instruction-tuned adapter for {cfg.model.base}", "",
        "Instruction tuning with LoRA (`persianllama sft`): loss on the assistant's tokens "
        f"({cfg.data.train_on}), conversations packed into {cfg.train.seq_len}-token rows without cross-talk.", "",
        f"- data: {', '.join(cfg.data.files)} ({data_report.get('kept', 0)} conversations: {formats}; "
        f"{sum(data_report.get('broken', {}).values())} bad records skipped), Persian normalizer "
        f"{'on' if cfg.data.normalize else 'off'}",
        f"- chat template: {template_source}; saved with the tokenizer, so `apply_chat_template(messages, "
        "add_generation_prompt=True)` gives the prompt format the model was trained on",
        f"- base loaded in {cfg.model.quantization}; LoRA r={cfg.lora.r}, alpha={cfg.lora.alpha}, targets "
        f"{', '.join(cfg.lora.target_modules)}",
        f"- {summary.get('step', 0)} steps, {summary.get('tokens', 0):,} tokens, lr {cfg.train.lr}, global batch "
        f"{setup.batch.global_batch}",
    ]
    if v:
        lines.append(f"- held-out assistant-token loss {v['loss']:.4f} ({v['documents']} conversations)"
                     + (f", before training {v0['loss']:.4f}" if v0 else ""))
    lines += ["", "## Use", "", "```python", "from peft import AutoPeftModelForCausalLM",
              "from transformers import AutoTokenizer", "tok = AutoTokenizer.from_pretrained(ADAPTER)",
              "model = AutoPeftModelForCausalLM.from_pretrained(ADAPTER)",
              'ids = tok.apply_chat_template([{"role": "user", "content": "سلام"}], add_generation_prompt=True, '
              'return_tensors="pt", return_dict=True)',
              "print(tok.decode(model.generate(**ids, max_new_tokens=64)[0]))", "```", "",
              "or `persianllama chat --model BASE --adapter ADAPTER`.", ""]
    return "\n".join(lines)


def prepare_data(cfg: SftConfig, tok, convs, report, global_batch: int, *, write: bool = True):
    """(train rows, held-out rows, template source): the chat template, the held-out split, assistant-only labels,
    packing; `data_report.json` in the run folder. The same for method=lora and method=full."""
    from persianllama.sft import data as sft_data
    from persianllama.sft.packing import pack
    from persianllama.sft.template import ensure_template

    template_source = ensure_template(tok, cfg.data.chat_template)
    train_convs, held = sft_data.split_heldout(convs, cfg.data.val_fraction)
    if cfg.data.max_examples:
        train_convs = train_convs[: cfg.data.max_examples]
    held = held[: cfg.log.eval_docs] if cfg.log.eval_docs else []
    seq = cfg.train.seq_len
    train = pack(encode_all(tok, train_convs, cfg.data.train_on), seq, packing=cfg.data.packing,
                 too_long=cfg.data.too_long)
    val = pack(encode_all(tok, held, cfg.data.train_on), seq, packing=cfg.data.packing, too_long=cfg.data.too_long)
    if not train.rows:
        raise UserError(f"no conversation fits train.seq_len={seq} ({train.dropped} dropped as too long or without "
                        "an assistant token); raise train.seq_len or use data.too_long=truncate")
    if len(train.rows) < global_batch:
        log.warning("only %d packed row(s) for a global batch of %d: rows repeat within a step", len(train.rows),
                    global_batch)
    log.info("instruction data: %d conversations (%s) -> %d train / %d held out; %d rows of %d tokens (%.0f%% "
             "filled), %d dropped, %d truncated; chat template: %s", report.kept,
             ", ".join(f"{k} {n}" for k, n in report.formats.items()), len(train.examples), len(val.examples),
             len(train.rows), seq, 100 * train.fill(), train.dropped, train.truncated, template_source)
    if write:
        write_json(Path(cfg.out_dir) / "data_report.json", {
            **report.to_dict(), "train_conversations": len(train.examples), "heldout_conversations": len(val.examples),
            "rows": len(train.rows), "fill": round(train.fill(), 4), "dropped_too_long": train.dropped,
            "truncated": train.truncated, "chat_template": template_source})
    return train, val, template_source


def finish(cfg, setup, summary: dict, summary_name: str) -> None:
    """The end of an adapter post-training run (sft, dpo): with merge=true the merged model in DIR/hf, then the
    summary file."""
    out = Path(cfg.out_dir)
    if cfg.merge:
        from persianllama.lora.merge import merge

        dtype = "bf16" if setup.device == "cuda" else "fp32"
        r = merge(cfg.model.base, str(out / "adapter"), str(out / "hf"), dtype=dtype, device=setup.device,
                  overwrite=True)
        summary["hf"] = str(r.output)
        log.info("merged model written to %s (%s)", r.output, dtype)
    write_json(out / summary_name, {k: v for k, v in summary.items() if k != "config"} | {"config": to_dict(cfg)})


def run(cfg: SftConfig) -> dict:
    """Instruction-tune (or resume) as `cfg` says; returns the summary."""
    if cfg.method == "full":
        from persianllama.sft.full import run_full

        return run_full(cfg)
    with RunLock(cfg.out_dir):
        return _run(cfg)


def _run(cfg: SftConfig) -> dict:
    from persianllama.data.packed import BlockOrder
    from persianllama.lora.export import export
    from persianllama.lora.train import prepare_run, train_adapter
    from persianllama.sft import data as sft_data
    from persianllama.sft.packing import collate

    if not cfg.data.files:
        raise UserError("no instruction data: pass --data FILE_OR_HUB_ID (or data.files=[...])")
    # 1. the conversations (checked before anything is written), then resolve and refuse, the memory plan
    convs, report = sft_data.read_conversations(cfg.data.files, fmt=cfg.data.format, split=cfg.data.hf_split,
                                                normalize=cfg.data.normalize, system_prompt=cfg.data.system_prompt)
    setup, plan = prepare_run(cfg, require_corpus=False)
    tok = setup.tok
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token  # padding is masked out of attention and loss

    # 2. the chat template, the held-out split, the packed rows
    train, val, template_source = prepare_data(cfg, tok, convs, report, setup.batch.global_batch)
    b = setup.batch
    order = BlockOrder(len(train.rows), cfg.train.seed)
    pad = tok.pad_token_id
    kind = attn(setup)

    def micro_batches(samples: int, micro: int):
        rows = order.micro_batch(samples, micro, 0, b.micro, 1)
        return collate(train, rows, pad, kind)

    # 3. train the adapter
    summary = train_adapter(
        setup, plan, micro_batches,
        lambda net, step: score(net, tok, val, cfg.log.eval_batch_size, step=step, device=setup.device,
                                precision=setup.precision, attn_kind=kind),
        export_fn=functools.partial(export, card_fn=functools.partial(card, data_report=report.to_dict(),
                                                                      template_source=template_source)))
    summary["data"] = report.to_dict()
    if not summary.get("finished"):
        return summary

    # 4. the merged model, when asked
    if summary.get("val") and math.isfinite(summary["val"]["loss"]):
        log.info("held-out assistant-token loss %.4f", summary["val"]["loss"])
    finish(cfg, setup, summary, "sft_summary.json")
    return summary
