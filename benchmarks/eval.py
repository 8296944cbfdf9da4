"""Eval harness on the real data sets: throughput per task and per task family, what was truncated or
dropped, and a random-model sanity table with macro-F1 and the majority / chance baselines.

    python benchmarks/eval.py                       # first 200 examples of each task
    python benchmarks/eval.py --limit 0             # every example (hours on 2 CPU cores)
    python benchmarks/eval.py --shared ../shared/data --out /tmp/bench-eval --threads 2
    python benchmarks/eval.py --tasks persian_chat,persian_translation --limit 50

The model is a small random-init LLaMA (2 layers, hidden 64) with a real 32k vocabulary (Mistral
v0.3's tokenizer.json from ../shared/data/tokenizers, about 5.2 tokens per Persian word, like
LLaMA-2's), so sequence lengths and the output layer cost what they would for a LLaMA tokenizer.
Each task runs through `persianllama.eval.runner.evaluate` on its own, so its time is its own.

Chat-mode tasks run without a chat template here (the tokenizer has none); a random model names no
option letter, so they measure throughput only (their no_answer rate is shown). Translation generates
up to 160 tokens per verse, so it is the slowest family per example.

Sanity table: a random-init model knows nothing, so on every cloze task it must score what a guesser
scores. Its outputs are nearly uniform but not exactly, so it tends to prefer one kind of answer
(the choice with the fewest tokens, say). Its accuracy must therefore lie between the rarest and
the commonest gold label's share (what "always answer X" scores, for the worst and best X), up to
sampling noise (2 standard errors); for ParsiNLU multiple choice, whose candidates change with
every question, the reference is 1/(number of candidates). Bits per byte is compared with a
uniform distribution over the vocabulary: tokens * log2(V) / bytes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TASKS = [
    "persian_bpb",
    "parsinlu_mc",
    "parsinlu_entailment",
    "farstail",
    "parsinlu_sentiment",
    "parsinlu_qqp",
    "parsinlu_rc",
    "persianqa",
    "persian_generation",
    "parsinlu_mc_chat",
    "parsinlu_entailment_chat",
    "farstail_chat",
    "parsinlu_qqp_chat",
    "persian_translation",
]


def build_model(shared: Path, out: Path, hidden: int, layers: int, seed: int) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(shared / "tokenizers/mistral_v03/tokenizer.json"),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    path = out / "random-llama"
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def class_shares(task: str, docs: list[dict]) -> tuple[list[float], float]:
    """Share of each gold label among `docs`, and the uniform-guess accuracy."""
    if task.startswith("parsinlu_mc"):
        return [], sum(1 / len(d["choices"]) for d in docs) / len(docs)
    counts = Counter(d["label"] for d in docs)
    k = {"parsinlu_qqp": 2}.get(task, 7 if "sentiment" in task else 3)
    return [counts.get(c, 0) / len(docs) for c in range(k)], 1 / k


def sanity_rows(result: dict, task_docs: dict[str, list[dict]]) -> list[dict]:
    rows = []
    meta = result["persianllama"]
    for task, docs in task_docs.items():
        metrics = result["results"].get(task)
        if not metrics or "acc,none" not in metrics:
            continue
        acc, se = metrics["acc,none"], metrics.get("acc_stderr,none") or 0.0
        shares, uniform = class_shares(task, docs)
        if shares:
            low, high = min(shares), max(shares)
        else:
            low = high = uniform
        ok = low - 2 * se - 1e-9 <= acc <= high + 2 * se + 1e-9
        base = meta.get("baselines", {}).get(task, {})
        rows.append(
            {
                "task": task,
                "n": len(docs),
                "acc": acc,
                "stderr": se,
                "acc_norm": metrics.get("acc_norm,none"),
                "macro_f1": metrics.get("macro_f1,none"),
                "majority_acc": base.get("majority", {}).get("acc"),
                "majority_macro_f1": base.get("majority", {}).get("macro_f1"),
                "chance_macro_f1": base.get("chance", {}).get("macro_f1"),
                "uniform_guess": uniform,
                "rarest_label": low,
                "commonest_label": high,
                "at_chance": ok,
            }
        )
    return rows


def _num(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"), help="the shared data folder")
    ap.add_argument("--out", default="/tmp/persianllama-bench-eval", help="where runs and the summary go")
    ap.add_argument("--limit", type=int, default=200, help="examples per task (0: all)")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the machine is shared)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    shared = Path(args.shared)
    if not (shared / "parsinlu").is_dir():
        print(f"benchmarks/eval.py: no shared data at {shared}; skipping")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import logging

    import torch

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    # lm-eval adds torch's environment report (pip list etc., ~3 s) to every result;
    # once per process is enough.
    from torch.utils import collect_env

    env_report = collect_env.get_pretty_env_info()
    collect_env.get_pretty_env_info = lambda: env_report

    from persianllama.eval import leaderboard as L
    from persianllama.eval.config import EvalConfig
    from persianllama.eval.runner import evaluate, task_manager

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_dir = build_model(shared, out, args.hidden, args.layers, args.seed)
    limit = args.limit or None
    manager = task_manager(data_dir=str(shared))

    timing, sanity, bpb_rows, other_rows, caveats = [], [], [], [], []
    for task in [t for t in args.tasks.split(",") if t]:
        run_dir = out / "runs" / task
        t0 = time.perf_counter()
        result = evaluate(
            EvalConfig(
                model=str(model_dir),
                tasks=[task],
                limit=limit,
                output=str(run_dir),
                data_dir=str(shared),
                batch_size=args.batch_size,
                device="cpu",
                dtype="fp32",
                seed=args.seed,
                bootstrap_iters=1000,
            )
        )
        wall = time.perf_counter() - t0
        meta = result["persianllama"]
        seconds = meta["seconds"].get("lm_eval", meta["seconds"].get("persian_bpb", 0.0))
        n = meta["examples"]
        # chat-mode variants generate a letter, cloze ones score every choice: throughput differs by format
        families = {
            (L.task_info(result, t)[1] or "other") + (" (chat)" if "_chat" in t else "")
            for t in L.top_level_tasks(result)
        }
        timing.append(
            {
                "task": task,
                "family": ", ".join(sorted(families)),
                "examples": n,
                "seconds": seconds,
                "examples_per_s": n / seconds,
                "wall_incl_load_and_setup": wall,
            }
        )
        for name, c in meta.get("caveats", {}).items():
            caveats.append({"task": name, **{k: c[k] for k in ("prompts", "truncated_prompts",
                                                                 "max_truncated_tokens", "dropped_rows")}})
        if task == "persian_bpb":
            d = result["results"][task]["bpb_details"]
            uniform = d["tokens"] * math.log2(meta["model_info"]["tokenizer_size"]) / d["bytes"]
            bpb_rows.append(
                {
                    **{
                        k: d[k]
                        for k in ("bits_per_byte", "word_perplexity", "documents", "words", "bytes", "tokens")
                    },
                    "uniform_bpb": uniform,
                    "tokens_per_word": d["tokens"] / d["words"],
                }
            )
            continue
        loaded = manager.load([task])
        docs = {
            name: list(t.eval_docs)[:limit] if limit else list(t.eval_docs)
            for name, t in loaded["tasks"].items()
        }
        sanity += sanity_rows(result, docs)
        for name in docs:
            metrics = result["results"][name]
            if "acc,none" not in metrics:
                other_rows.append(
                    {
                        "task": name,
                        **{
                            k.split(",")[0]: v
                            for k, v in metrics.items()
                            if k.endswith(",none") and "_stderr" not in k
                        },
                    }
                )
        print(f"{task}: {n} examples in {seconds:.1f} s ({n / seconds:.2f}/s)", flush=True)

    lines = [
        f"# Eval benchmark: random-init LLaMA ({args.layers} layers, hidden {args.hidden}, vocab 32768), "
        f"limit {limit or 'all'}, {args.threads} threads",
        "",
        "## Throughput",
        "",
        "| task | examples | seconds | examples/s | wall incl. load+setup |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['task']} | {r['examples']} | {r['seconds']:.1f} | {r['examples_per_s']:.2f} | "
        f"{r['wall_incl_load_and_setup']:.1f} |"
        for r in timing
    ]
    by_family: dict[str, list[float]] = {}
    for r in timing:
        total = by_family.setdefault(r["family"], [0, 0.0])
        total[0] += r["examples"]
        total[1] += r["seconds"]
    family_rows = [
        {"family": f, "examples": n, "seconds": sec, "examples_per_s": n / sec if sec else None}
        for f, (n, sec) in by_family.items()
    ]
    lines += [
        "",
        "## Throughput per task family",
        "",
        "| family | examples | seconds | examples/s |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['family']} | {r['examples']} | {r['seconds']:.1f} | {r['examples_per_s']:.2f} |" for r in family_rows
    ]
    lines += [
        "",
        "## Truncated prompts and dropped rows (context 1024 tokens)",
        "",
        "| task | prompts | truncated | most tokens cut | rows dropped |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {c['task']} | {c['prompts']} | {c['truncated_prompts']} | {c['max_truncated_tokens']} | "
        f"{c['dropped_rows']} |"
        for c in caveats
    ]
    if bpb_rows:
        b = bpb_rows[0]
        lines += [
            "",
            "## Bits per byte (UD Persian test sentences)",
            "",
            "| bits/byte | uniform-model bits/byte | word ppl | docs | words | tokens/word |",
            "|---|---|---|---|---|---|",
            f"| {b['bits_per_byte']:.4f} | {b['uniform_bpb']:.4f} | {b['word_perplexity']:.4g} | "
            f"{b['documents']} | "
            f"{b['words']} | {b['tokens_per_word']:.2f} |",
        ]
    lines += [
        "",
        "## Sanity: a random model is at chance",
        "",
        "| task | n | acc ± se | acc_norm | macro-F1 | majority acc / macro-F1 | chance macro-F1 | uniform guess "
        "| rarest..commonest label | at chance |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['task']} | {r['n']} | {r['acc']:.3f} ± {r['stderr']:.3f} | {r['acc_norm']:.3f} | "
        f"{_num(r['macro_f1'])} | {_num(r['majority_acc'])} / {_num(r['majority_macro_f1'])} | "
        f"{_num(r['chance_macro_f1'])} | "
        f"{r['uniform_guess']:.3f} | {r['rarest_label']:.3f}..{r['commonest_label']:.3f} | "
        f"{'yes' if r['at_chance'] else 'NO'} |"
        for r in sanity
    ]
    if other_rows:
        lines += ["", "## Generative tasks (random model)", ""]
        for r in other_rows:
            lines.append(
                f"- {r['task']}: "
                + ", ".join(f"{k} {v:.3f}" for k, v in r.items() if isinstance(v, float) and math.isfinite(v))
            )
    summary = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(summary, encoding="utf-8")
    (out / "summary.json").write_text(
        json.dumps(
            {
                "timing": timing,
                "families": family_rows,
                "caveats": caveats,
                "bpb": bpb_rows,
                "sanity": sanity,
                "generative": other_rows,
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    print(summary)
    return 0 if all(r["at_chance"] for r in sanity) else 1


if __name__ == "__main__":
    sys.exit(main())
