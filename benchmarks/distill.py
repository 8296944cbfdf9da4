"""Distillation, measured: does a student taught by a better teacher end closer to it and better on held-out text
than the same student trained with CE alone for the same steps? And what does the KD step cost?

    python benchmarks/distill.py                      # CPU: teacher 128x4 (300 steps), students 64x2 (150 steps)
    python benchmarks/distill.py --teacher-steps 600 --student-steps 300

1. a tokenizer and a teacher pretrained with `persianllama.train.pretrain` (the Zero track) on real Persian prose
   (ParsiNLU's Quran translations from ../shared when present; else the test documents);
2. the same student config, seed and data order, trained four ways with `persianllama distill`: CE only
   (kd.alpha=0), forward KL online, forward KL from the top-k cache, and reverse KL;
3. a side-by-side table: held-out bits per byte, KL(teacher || student) on the held-out documents, tokens/s;
4. the KD step's throughput against a bare PyTorch loop doing the same work (teacher forward + student forward and
   backward + the same loss, AdamW, clipping): the loop a user would otherwise write.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "parsinlu" / "data" / "translation" / "quran"


def corpus_docs(limit: int) -> tuple[list[str], str]:
    files = sorted(SHARED.glob("fa.*.norm.txt")) if SHARED.is_dir() else []
    if files:
        lines: list[str] = []
        for f in files[:2]:
            lines += [ln.strip() for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()]
        docs = [" ".join(lines[i:i + 6]) for i in range(0, len(lines), 6)][:limit]  # six verses a document
        return docs, f"ParsiNLU Quran translations ({', '.join(f.name for f in files[:2])})"
    sys.path.insert(0, str(REPO / "tests" / "data"))
    from conftest import make_documents

    return make_documents(limit), "the test documents (../shared absent)"


def common(args, tok: Path, corpus: Path, cache: Path, out: Path, steps: int, hidden: int, layers: int) -> list[str]:
    return [f"tokenizer={tok}", f"data.corpus=[{corpus}]", f"data.cache_dir={cache}", f"out_dir={out}",
            "ds_config=ds_configs/zero0.json", f"model.hidden_size={hidden}", f"model.num_layers={layers}",
            "model.num_heads=4", "model.intermediate_size=null", f"train.seq_len={args.seq_len}",
            f"train.micro_batch_size={args.micro}", "train.grad_accum_steps=1", "train.precision=fp32",
            "train.lr=3e-3", "train.min_lr=3e-4", "train.warmup_steps=10", "train.weight_decay=0.0",
            f"train.max_steps={steps}", f"checkpoint.save_interval={steps + 1}", "log.eval_interval=0",
            "log.eval_docs=64", f"log.log_interval={max(1, steps // 3)}", "log.progress_bar=false",
            "data.val_fraction=0.05"]


def records(out: Path, kind: str) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    return [r for r in rows if r.get("kind") == kind]


def bare_kd_loop(args, tok_dir: Path, teacher_dir: Path, data, steps: int) -> list[float]:
    """Step times of a plain PyTorch KD loop: the same student, teacher, batches, loss and optimizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from persianllama.data import BlockOrder
    from persianllama.run.schedule import warmup_cosine
    from persianllama.train import preflight
    from persianllama.train.config import ModelConfig, TrainConfig
    from persianllama.train.model import build_model, llama_config, param_groups

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    teacher = AutoModelForCausalLM.from_pretrained(str(teacher_dir)).eval()
    mcfg = ModelConfig(hidden_size=args.hidden, num_layers=args.layers, num_heads=4)
    tcfg = TrainConfig(seq_len=args.seq_len, micro_batch_size=args.micro, lr=3e-3, min_lr=3e-4, warmup_steps=10,
                       max_steps=steps, weight_decay=0.0)
    torch.manual_seed(tcfg.seed)
    model = build_model(llama_config(mcfg, preflight.model_sizes(mcfg, tok, args.seq_len), tok, "sdpa")).train()
    opt = torch.optim.AdamW(param_groups(model, 0.0), lr=tcfg.lr, betas=(tcfg.beta1, tcfg.beta2), eps=tcfg.eps)
    sched = warmup_cosine(opt, tcfg)
    order = BlockOrder(data.n_blocks, tcfg.seed)
    vocab, T, a = len(tok), 2.0, 0.5
    times = []
    for step in range(steps):
        start = time.perf_counter()
        x = torch.from_numpy(data.batch(order.blocks(step * args.micro, args.micro)))
        out = model(input_ids=x, labels=x)
        with torch.no_grad():
            t_log = torch.log_softmax(teacher(input_ids=x).logits[:, :-1, :vocab].float() / T, -1)
        s_log = torch.log_softmax(out.logits[:, :-1, :vocab].float() / T, -1)
        kd = (t_log.exp() * (t_log - s_log)).sum(-1).mean() * T * T
        loss = (1 - a) * out.loss + a * kd
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--vocab", type=int, default=2000)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--micro", type=int, default=8)
    ap.add_argument("--teacher-steps", type=int, default=300)
    ap.add_argument("--student-steps", type=int, default=150)
    ap.add_argument("--hidden", type=int, default=64, help="student width")
    ap.add_argument("--layers", type=int, default=2, help="student layers")
    ap.add_argument("--top-k", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import logging

    logging.basicConfig(level=logging.WARNING)
    import deepspeed
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(REPO / "tests" / "data"))
    from conftest import train_tiny_tokenizer, write_parquet_shards

    from persianllama.cli import main as cli
    from persianllama.data import pack
    from persianllama.distill.run import held_out_kl
    from persianllama.distill.teacher import Teacher
    from persianllama.run.dist import dist_env
    from persianllama.train.pretrain import main as pretrain

    dist_env()
    deepspeed.init_distributed(dist_backend="gloo")  # one process group for every run, as the tests do
    with tempfile.TemporaryDirectory(prefix="distillbench-") as tmp:
        tmp = Path(tmp)
        docs, source = corpus_docs(args.docs)
        corpus = write_parquet_shards(tmp / "corpus", docs)
        tok = train_tiny_tokenizer(tmp / "tok", docs, vocab_size=args.vocab)
        cache = tmp / "cache"
        print(f"corpus: {len(docs)} documents from {source}; BPE vocabulary {args.vocab}; blocks of {args.seq_len}, "
              f"batch {args.micro}; fp32 on CPU, {args.threads} thread(s)")
        t0 = time.perf_counter()
        teacher_out = tmp / "teacher"
        assert pretrain(["--config", str(REPO / "configs" / "tiny.yaml"),
                         *common(args, tok, corpus, cache, teacher_out, args.teacher_steps, 128, 4)]) == 0
        t_eval = records(teacher_out, "eval")[-1]
        print(f"teacher: LLaMA 128 x 4 layers, {args.teacher_steps} steps ({time.perf_counter() - t0:.0f} s): "
              f"held-out {t_eval['bits_per_byte']:.4f} bits/byte")

        from transformers import AutoModelForCausalLM, AutoTokenizer

        teacher_model = AutoModelForCausalLM.from_pretrained(str(teacher_out / "hf")).eval()
        teacher = Teacher(teacher_model, AutoTokenizer.from_pretrained(str(teacher_out / "hf")), "cpu", {})
        data = pack(corpus, tok, block_size=args.seq_len, cache_dir=cache, val_fraction=0.05, progress=False)
        val = data.val_texts(limit=64)
        bare_steps = min(args.student_steps, 60)
        bare_rates = [args.micro * args.seq_len / statistics.median(bare_kd_loop(args, tok, teacher_out / "hf", data,
                                                                                 bare_steps)[5:])]
        runs = [("CE only (kd.alpha=0)", ["kd.alpha=0"]),
                ("forward KL, online", ["kd.loss=forward_kl"]),
                (f"forward KL, top-{args.top_k} cache", ["kd.loss=forward_kl", f"kd.top_k={args.top_k}"]),
                ("reverse KL, online", ["kd.loss=reverse_kl"])]
        rows = []
        for i, (name, kd) in enumerate(runs):
            out = tmp / f"student{i}"
            argv = ["distill", "--teacher", str(teacher_out / "hf"), "--student-config",
                    str(REPO / "configs" / "tiny.yaml"),
                    *common(args, tok, corpus, cache, out, args.student_steps, args.hidden, args.layers),
                    "kd.temperature=2", *kd]
            start = time.perf_counter()
            assert cli(argv) == 0, name
            seconds = time.perf_counter() - start
            ev = records(out, "eval")[-1]
            train = records(out, "train")
            tok_s = statistics.median([r["tokens_per_s"] for r in train[5:]])
            student = AutoModelForCausalLM.from_pretrained(str(out / "hf"))
            kl = held_out_kl(student, teacher, AutoTokenizer.from_pretrained(str(out / "hf")), val,
                             max_length=args.seq_len)
            rows.append((name, ev["bits_per_byte"], kl, tok_s, seconds))
        print(f"\nstudents: LLaMA {args.hidden} x {args.layers} layers, {args.student_steps} steps each, same seed and "
              f"data order; alpha 0.5, T 2\n")
        print("| student | held-out bits/byte | KL(teacher || student) nats/token | tokens/s | wall s |")
        print("|---|---|---|---|---|")
        for name, bpb, kl, tok_s, seconds in rows:
            print(f"| {name} | {bpb:.4f} | {kl:.4f} | {tok_s:,.0f} | {seconds:.0f} |")
        print(f"| (teacher) | {t_eval['bits_per_byte']:.4f} | 0 | | |")
        ce, fkl = rows[0], rows[1]
        print(f"\nKD (forward KL, online) vs CE only: bits/byte {fkl[1] - ce[1]:+.4f}, KL to teacher "
              f"{fkl[2] - ce[2]:+.4f} ({'lower' if fkl[2] < ce[2] else 'NOT lower'} KL, "
              f"{'lower' if fkl[1] < ce[1] else 'NOT lower'} bits/byte)")

        # the bare loop once before the students and once after: the best of the two, as a neighbour's load slows both
        bare_rates.append(args.micro * args.seq_len / statistics.median(bare_kd_loop(args, tok, teacher_out / "hf",
                                                                                     data, bare_steps)[5:]))
        bare_tok_s = max(bare_rates)
        print(f"\nKD step throughput: project (`persianllama distill`, online forward KL) {fkl[3]:,.0f} tokens/s, "
              f"bare PyTorch KD loop {bare_tok_s:,.0f} tokens/s (best of {', '.join(f'{r:,.0f}' for r in bare_rates)}): "
              f"ratio {fkl[3] / bare_tok_s:.3f}x; "
              f"top-{args.top_k} cache vs online teacher: {rows[2][3] / fkl[3]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
