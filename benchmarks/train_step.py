"""Training-step throughput: the project's loop (scripts/pretrain.py, DeepSpeed ZeRO-2, one process)
against a bare PyTorch loop on the same model, batches and optimizer settings. Goal: >= 0.9x.

    python benchmarks/train_step.py                       # CPU, fp32, hidden 128 x 4 layers, 8 x 256 tokens
    python benchmarks/train_step.py --steps 40 --hidden 512 --layers 8

The project's side is the real entry point, `scripts/pretrain.py`'s `main`, in this process (a world
of one rank, as without the launcher), with validation and checkpoints pushed past the end; its
step times come from its own metrics.jsonl. The bare side builds the identical model (same config,
same seed), torch AdamW with the same groups and hyperparameters, the same warmup + cosine
schedule and gradient clipping, and reads the same blocks in the same order. Steady state only: the
first `--warmup` steps of each run are left out. Runs alternate (bare, ours, bare, ours) and the
best run of each is reported, so a busy neighbour on the machine slows both alike.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bare_loop(args, tokenizer_dir: Path, data, steps: int) -> list[float]:
    """Step times of a plain PyTorch loop on the same model and data."""
    import torch
    from transformers import AutoTokenizer

    from persianllama.data import BlockOrder
    from persianllama.run.schedule import warmup_cosine
    from persianllama.train import preflight as plan
    from persianllama.train.config import ModelConfig, TrainConfig
    from persianllama.train.model import build_model, llama_config, param_groups

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    mcfg = ModelConfig(hidden_size=args.hidden, num_layers=args.layers, num_heads=args.heads)
    tcfg = TrainConfig(seq_len=args.seq_len, micro_batch_size=args.micro, lr=3e-3, min_lr=3e-4, warmup_steps=5,
                       max_steps=steps, weight_decay=0.0)
    torch.manual_seed(tcfg.seed)
    model = build_model(llama_config(mcfg, plan.model_sizes(mcfg, tok, args.seq_len), tok, "sdpa"))
    model.train()
    opt = torch.optim.AdamW(param_groups(model, tcfg.weight_decay), lr=tcfg.lr, betas=(tcfg.beta1, tcfg.beta2),
                            eps=tcfg.eps)
    sched = warmup_cosine(opt, tcfg)
    order = BlockOrder(data.n_blocks, tcfg.seed)
    times = []
    for step in range(steps):
        start = time.perf_counter()
        x = torch.from_numpy(data.batch(order.blocks(step * args.micro, args.micro)))
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        times.append(time.perf_counter() - start)
    return times


def project_loop(args, pretrain, tokenizer_dir: Path, corpus: Path, cache: Path, out: Path, steps: int) -> list[float]:
    argv = ["--config", str(REPO / "configs" / "tiny.yaml"), f"tokenizer={tokenizer_dir}", f"data.corpus={corpus}",
            f"data.cache_dir={cache}", f"out_dir={out}", "ds_config=ds_configs/zero2.json",
            f"model.hidden_size={args.hidden}", f"model.num_layers={args.layers}", f"model.num_heads={args.heads}",
            "model.intermediate_size=null", f"train.seq_len={args.seq_len}", f"train.micro_batch_size={args.micro}",
            "train.grad_accum_steps=1", "train.precision=fp32", "train.lr=3e-3", "train.min_lr=3e-4",
            "train.warmup_steps=5", "train.weight_decay=0.0", f"train.max_steps={steps}",
            f"checkpoint.save_interval={steps + 1}", "log.eval_interval=0", "log.eval_docs=0", f"log.log_interval={steps}",
            "log.tensorboard=true", "export=false"]
    assert pretrain.main(argv) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["step_seconds"] for r in records if r.get("kind") == "train"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--micro", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for both loops (1: on a shared machine OpenMP threads that get "
                         "descheduled make every step many times slower, whichever loop runs)")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # read by scripts/pretrain.py too
    import logging

    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(REPO / "tests" / "data"))
    from conftest import (  # the project's test assets
        make_documents,
        train_tiny_tokenizer,
        write_parquet_shards,
    )

    from persianllama.data import pack

    pretrain = _load("pretrain_script", REPO / "scripts" / "pretrain.py")
    # One process group for all runs, as the tests do: a run that creates its own also tears it down.
    import deepspeed

    from persianllama.run.dist import dist_env

    dist_env()
    deepspeed.init_distributed(dist_backend="gloo")
    with tempfile.TemporaryDirectory(prefix="stepbench-") as tmp:
        tmp = Path(tmp)
        docs = make_documents(3000)
        corpus = write_parquet_shards(tmp / "corpus", docs)
        tok_dir = train_tiny_tokenizer(tmp / "tok", docs, vocab_size=2000)
        data = pack(corpus, tok_dir, block_size=args.seq_len, cache_dir=tmp / "cache", val_fraction=0.0, workers=1,
                    progress=False)
        tokens_per_step = args.micro * args.seq_len
        print(f"model: LLaMA hidden {args.hidden} x {args.layers} layers, vocab {data.meta['vocab_size']}; "
              f"batch {args.micro} x {args.seq_len} = {tokens_per_step} tokens/step; fp32 on CPU, "
              f"{torch.get_num_threads()} thread(s); {args.steps} steps per run, first {args.warmup} left out")
        best: dict[str, float] = {}
        for r in range(args.repeat):
            for name in ("bare PyTorch loop", "project loop (ZeRO-2)"):
                if name.startswith("bare"):
                    times = bare_loop(args, tok_dir, data, args.steps)
                else:
                    times = project_loop(args, pretrain, tok_dir, corpus, tmp / "cache", tmp / f"run{r}", args.steps)
                tok_s = tokens_per_step / statistics.median(times[args.warmup:])
                print(f"  run {r + 1}: {name:24s} {tok_s:>10,.0f} tokens/s")
                best[name] = max(best.get(name, 0.0), tok_s)
        for name, tok_s in best.items():
            print(f"{name:24s} {tok_s:>10,.0f} tokens/s (median step, best of {args.repeat})")
        bare, ours = best.values()
        print(f"ratio (project / bare): {ours / bare:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
