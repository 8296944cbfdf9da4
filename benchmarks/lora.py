"""LoRA training throughput by base precision, and the memory plan against what is measured.

    python benchmarks/lora.py                       # tiny + small LLaMA, 8bit / 4bit / bf16 / fp32, CPU or GPU
    python benchmarks/lora.py --sizes small --modes 8bit,fp32 --steps 30 --json out.json

For each model size and mode, the trainer's own code path (`persianllama.lora.preflight.preflight`,
`model.build`, the optimizer and schedule of `train`) runs LoRA r=8 on every projection with an
extended vocabulary (10 Persian words, embeddings trained in full) on the same packed Persian data:

- tokens/s of optimizer steps (micro-batch x seq_len tokens each; the first steps are not timed);
- the memory plan's static parts (frozen weights, adapter + trained embeddings, gradients, optimizer
  state) against the bytes of the real tensors, and its saved activations against the tensors autograd
  actually saved for the backward pass of one step (counted with saved-tensor hooks, parameters
  excluded); on a GPU also the plan's allocator peak against ``torch.cuda.max_memory_allocated``.

Modes: 8bit = LLM.int8 base (bitsandbytes), 4bit = NF4 base, bf16 = bf16 base with bf16 autocast,
fp32 = fp32 base. The data are Persian sentences written for the tests (no download). Threads: one
by default (``--threads``), so a shared CPU gives comparable numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

SIZES = {  # hidden, intermediate, layers, heads
    "tiny": (64, 128, 2, 4),
    "small": (256, 688, 4, 4),
    "mid": (1024, 2816, 8, 16),
}
MODES = {  # quantization, base dtype, autocast precision
    "8bit": ("8bit", "auto", "auto"),
    "4bit": ("4bit", "auto", "auto"),
    "bf16": ("none", "bf16", "bf16"),
    "fp32": ("none", "fp32", "fp32"),
}
SENTENCES = [
    "تهران پایتخت ایران است و در دامنهٔ کوه‌های البرز قرار دارد.",
    "کتابخانهٔ دانشگاه تا ساعت ده شب برای دانشجویان باز است.",
    "در بهار درختان بادام شکوفه می‌دهند و باغ‌ها سفید می‌شوند.",
    "مادربزرگ هر جمعه آش رشته می‌پزد و همهٔ نوه‌ها را دعوت می‌کند.",
    "قطار تهران به تبریز از کنار دریاچهٔ ارومیه می‌گذرد.",
    "دانشجویان زبان فارسی شعرهای حافظ و سعدی را می‌خوانند.",
    "بازار سرپوشیدهٔ تبریز یکی از کهن‌ترین بازارهای ایران است.",
    "باران پاییزی خیابان‌های شیراز را شست و هوا تازه شد.",
    "نوروز جشن آغاز بهار و سال نو در ایران است.",
    "هوای کویر در شب سرد و در روز بسیار گرم است.",
]
NEW_WORDS = ["تهران", "ایران", "کتابخانهٔ", "دانشجویان", "می‌خوانند", "شیراز", "تبریز", "نوروز", "بهار", "است"]


def make_assets(root: Path, size: str, docs: int = 1500) -> dict:
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    rng = random.Random(0)
    texts = [f"سند {i}: " + " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(3, 8))) for i in range(docs)]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=512, special_tokens=["<unk>", "<s>", "</s>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                       show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    base_tok = root / "base tokenizer"
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(str(base_tok))
    ext = AutoTokenizer.from_pretrained(str(base_tok))
    ext.add_tokens(NEW_WORDS)
    ext_tok = root / "extended tokenizer"
    ext.save_pretrained(str(ext_tok))
    h, i, layers, heads = SIZES[size]
    torch.manual_seed(0)
    base = root / f"base {size}"
    cfg = LlamaConfig(hidden_size=h, intermediate_size=i, num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=heads, vocab_size=len(AutoTokenizer.from_pretrained(str(base_tok))),
                      max_position_embeddings=1024, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    LlamaForCausalLM(cfg).save_pretrained(str(base))
    AutoTokenizer.from_pretrained(str(base_tok)).save_pretrained(str(base))
    corpus = root / "corpus"
    corpus.mkdir(exist_ok=True)
    pq.write_table(pa.table({"text": texts}), corpus / "shard-000.parquet")
    return {"base": base, "tokenizer": ext_tok, "corpus": corpus, "cache": root / "cache"}


def config(assets: dict, mode: str, out: Path, a: argparse.Namespace):
    from persianllama.config import from_dict
    from persianllama.lora.config import LoraConfig

    q, dtype, precision = MODES[mode]
    return from_dict(LoraConfig, {
        "out_dir": str(out),
        "model": {"base": str(assets["base"]), "tokenizer": str(assets["tokenizer"]), "quantization": q,
                  "dtype": dtype, "gradient_checkpointing": a.checkpointing},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.05},
        "data": {"corpus": [str(assets["corpus"])], "cache_dir": str(assets["cache"]), "workers": 1,
                 "val_fraction": 0.01},
        "train": {"seq_len": a.seq_len, "micro_batch_size": a.micro_batch, "global_batch_size": a.micro_batch,
                  "max_steps": a.steps, "lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 2, "precision": precision,
                  "device": a.device},
        "log": {"eval_docs": 0, "log_interval": 1000},
        "checkpoint": {"save_interval": 10**6},
    })


def tensor_bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        if t is None or t.numel() == 0:
            continue
        key = (t.untyped_storage().data_ptr(), t.dtype, tuple(t.shape))
        if key not in seen:
            seen.add(key)
            total += t.numel() * t.element_size()
    return total


def quant_stats(net) -> list:
    """The tensors bitsandbytes keeps beside quantized weights: int8 row scales; 4-bit absmax and code books."""
    out = []
    for m in net.modules():
        name = type(m).__name__
        if name == "Linear8bitLt":
            out.append(getattr(m.weight, "SCB", None))
        elif name == "Linear4bit" and getattr(m.weight, "quant_state", None) is not None:
            qs = m.weight.quant_state
            out += [qs.absmax, qs.code, getattr(qs, "offset", None)]
            if getattr(qs, "state2", None) is not None:
                out += [qs.state2.absmax, qs.state2.code]
    return [t for t in out if t is not None]


def saved_activation_bytes(net, setup, x) -> int:
    """Bytes of the tensors autograd saves for backward in one forward (parameters excluded), counted with
    saved-tensor hooks. Checkpointing is switched off for this one forward: its own hooks would hide them."""
    import torch

    from persianllama.lora.train import autocast

    inner = net.get_base_model()
    ckpt = inner.is_activation_checkpointing
    if ckpt:
        inner.activation_checkpointing_disable()
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    saved: dict = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            saved[ptr] = max(saved.get(ptr, 0), t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast(setup):
        loss = net(input_ids=x, labels=x).loss
    del loss
    if ckpt:
        inner.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return sum(saved.values())


def measure(cfg) -> dict:
    """tokens/s over the timed steps, measured memory parts, and the plan's parts."""
    import torch

    from persianllama.data import BlockOrder, pack
    from persianllama.lora.model import build, trainable
    from persianllama.lora.plan import activation_bytes, estimate
    from persianllama.lora.preflight import plan_inputs, preflight
    from persianllama.lora.train import autocast, make_optimizer
    from persianllama.run.schedule import warmup_cosine

    setup = preflight(cfg)
    plan = estimate(plan_inputs(setup))
    data = pack(cfg.data.corpus, setup.tok, block_size=cfg.train.seq_len, cache_dir=cfg.data.cache_dir, workers=1,
                val_fraction=cfg.data.val_fraction, progress=False)
    order = BlockOrder(data.n_blocks, 0)
    if setup.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    net, _ = build(setup)
    named = trainable(net)
    params = [p for _, p in named]
    ids = {id(p) for p in params}
    measured = {
        "weights": tensor_bytes(p for p in net.parameters() if id(p) not in ids) + tensor_bytes(quant_stats(net))
        + tensor_bytes(b for _, b in net.named_buffers()),
        "adapter": tensor_bytes(params),
    }
    opt = make_optimizer(named, cfg)
    sched = warmup_cosine(opt, cfg.train)
    net.train()
    b, s = cfg.train.micro_batch_size, cfg.train.seq_len
    x = torch.from_numpy(data.batch(order.micro_batch(0, 0, 0, b, 1))).to(setup.device)
    measured["activations_no_ckpt"] = saved_activation_bytes(net, setup, x)
    times = []
    for step in range(cfg.train.max_steps):
        x = torch.from_numpy(data.batch(order.micro_batch(step * b, 0, 0, b, 1))).to(setup.device)
        if setup.device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast(setup):
            loss = net(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        if step == 0:
            measured["gradients"] = tensor_bytes(p.grad for p in params)
        opt.step()
        sched.step()
        if step == 0:
            measured["optimizer"] = tensor_bytes(t for st in opt.state.values() for t in st.values()
                                                 if torch.is_tensor(t))
        opt.zero_grad(set_to_none=True)
        if setup.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    timed = times[3:] if len(times) > 5 else times[1:]
    result = {"tokens_per_s": b * s * len(timed) / sum(timed), "step_ms": 1000 * sum(timed) / len(timed),
              "last_loss": float(loss.item()), "measured": measured,
              "predicted": {**{k: int(plan.parts[k]) for k in ("weights", "adapter", "gradients", "optimizer")},
                            "activations_no_ckpt": int(activation_bytes(
                                dataclasses.replace(plan.inputs, gradient_checkpointing=False))[0])},
              "trainable": plan.counts["trainable"], "precision": setup.precision}
    if setup.device == "cuda":
        result["measured"]["allocator_peak"] = int(torch.cuda.max_memory_allocated())
        result["predicted"]["allocator_peak"] = int(plan.allocator_peak)
    del net, opt
    return result


def fmt_bytes(n: float) -> str:
    for unit, div in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:.0f} B"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="tiny,small", help=f"comma-separated of {', '.join(SIZES)}")
    p.add_argument("--modes", default="8bit,4bit,bf16,fp32", help=f"comma-separated of {', '.join(MODES)}")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--micro-batch", type=int, default=8)
    p.add_argument("--no-checkpointing", dest="checkpointing", action="store_false",
                   help="without gradient checkpointing (default: with, as the recipe)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    a = p.parse_args()
    import torch

    from persianllama.run.device import bf16_supported

    torch.set_num_threads(a.threads)
    device = a.device if a.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    with tempfile.TemporaryDirectory(prefix="lora-bench-") as tmp:
        for size in a.sizes.split(","):
            assets = make_assets(Path(tmp) / size, size)
            for mode in a.modes.split(","):
                if mode == "bf16" and not bf16_supported(device):
                    print(f"skip {size}/{mode}: no native bf16 on this {device}", file=sys.stderr)
                    continue
                cfg = config(assets, mode, Path(tmp) / size / f"out-{mode}", a)
                r = measure(cfg)
                r.update(size=size, mode=mode, device=device)
                rows.append(r)
                print(f"{size:5s} {mode:4s} {r['tokens_per_s']:10,.0f} tok/s  ({r['step_ms']:.1f} ms/step)",
                      file=sys.stderr)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nLoRA r=8 on all projections + extended vocabulary (embeddings trained), seq {a.seq_len} x micro-batch "
          f"{a.micro_batch}, {a.steps} steps (first 3 untimed), {device}, {a.threads} thread(s), "
          f"checkpointing {'on' if a.checkpointing else 'off'}, load average {load:.1f}\n")
    print("| size | mode | tokens/s | vs fp32 | weights pred/meas | adapter pred/meas | grads pred/meas | "
          "optimizer pred/meas | saved activations (no ckpt) pred/meas |")
    print("|---|---|---:|---:|---|---|---|---|---|")
    for r in rows:
        ref = next((x for x in rows if x["size"] == r["size"] and x["mode"] == "fp32"), None)
        speed = f"{r['tokens_per_s'] / ref['tokens_per_s']:.2f}x" if ref else "-"
        cells = [f"{fmt_bytes(r['predicted'][k])} / {fmt_bytes(r['measured'][k])}"
                 for k in ("weights", "adapter", "gradients", "optimizer", "activations_no_ckpt")]
        print(f"| {r['size']} | {r['mode']} | {r['tokens_per_s']:,.0f} | {speed} | " + " | ".join(cells) + " |")
    if any("allocator_peak" in r["measured"] for r in rows):
        print("\n| size | mode | allocator peak predicted | measured | error |\n|---|---|---|---|---:|")
        for r in rows:
            pr, me = r["predicted"]["allocator_peak"], r["measured"]["allocator_peak"]
            print(f"| {r['size']} | {r['mode']} | {fmt_bytes(pr)} | {fmt_bytes(me)} | {pr / me - 1:+.1%} |")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
