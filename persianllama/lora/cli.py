"""Command line of the LoRA track: `persianllama lora train`, `persianllama merge`, `persianllama plan`.

``register(subparsers)`` adds the three commands to the `persianllama` CLI; ``python -m persianllama.lora``
runs the same commands on their own (what scripts/lora_adapt.sh calls). Heavy libraries are imported
inside the command functions, so ``--help`` stays fast.

Settings: defaults (`persianllama/lora/config.py`) < ``--config RECIPE.yaml`` < the flags < ``key=value``
overrides (dotted for nested settings, e.g. ``lora.r=16 train.optimizer=adamw8bit``). Paths given by
flags are taken literally (never parsed as YAML), so names with spaces or colons work.
"""

from __future__ import annotations

import argparse
import json

from persianllama.config import describe


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "--recipe", dest="config", metavar="YAML",
                   help="recipe (e.g. configs/lora_13b_8bit.yaml)")
    p.add_argument("--base", metavar="MODEL", help="base model: HF directory or hub id (model.base)")
    p.add_argument("--tokenizer", metavar="DIR", help="tokenizer, e.g. the extended one (model.tokenizer)")
    p.add_argument("--base-tokenizer", metavar="DIR", help="the base model's tokenizer (model.base_tokenizer)")
    p.add_argument("--corpus", nargs="+", metavar="PATH", help="corpus directories / .parquet / .txt (data.corpus)")
    p.add_argument("--output", metavar="DIR", help="run folder (out_dir)")
    p.add_argument("--quantization", choices=["8bit", "4bit", "none"], help="model.quantization")
    p.add_argument("--rank", type=int, help="lora.r")
    p.add_argument("--alpha", type=int, help="lora.alpha")
    p.add_argument("--steps", type=int, help="train.max_steps")
    p.add_argument("--seq-len", type=int, help="train.seq_len")
    p.add_argument("--micro-batch", type=int, help="train.micro_batch_size")
    p.add_argument("--lr", type=float, help="train.lr")
    p.add_argument("--optimizer", choices=["adamw", "adamw8bit"], help="train.optimizer")
    p.add_argument("--resume", metavar="auto|none|DIR", help="checkpoint.resume")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="setting overrides")


def load_config(args: argparse.Namespace):
    from persianllama import config as cfg
    from persianllama.lora.config import LoraConfig

    corpus, overrides = cfg.split_overrides(getattr(args, "corpus", None), args.overrides)
    data = cfg.read_recipe(args.config) if args.config else {}
    flags = cfg.flags_to_settings({
        "out_dir": args.output, "model.base": args.base, "model.tokenizer": args.tokenizer,
        "model.base_tokenizer": args.base_tokenizer, "model.quantization": args.quantization, "lora.r": args.rank,
        "lora.alpha": args.alpha, "data.corpus": corpus, "train.max_steps": args.steps,
        "train.seq_len": args.seq_len, "train.micro_batch_size": args.micro_batch, "train.lr": args.lr,
        "train.optimizer": args.optimizer, "checkpoint.resume": args.resume,
    })
    data = cfg.merge(data, flags)
    return cfg.from_dict(LoraConfig, cfg.merge(data, cfg.parse_overrides(overrides)))


def _add_train(sub: argparse._SubParsersAction, name: str) -> None:
    from persianllama.lora.config import LoraConfig

    train = sub.add_parser(
        name, help="train a LoRA adapter (8-bit base, extended vocabulary, resumable)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="settings (key: type = default):\n" + describe(LoraConfig),
        description="Train a LoRA adapter on packed Persian text. Settings: defaults < --config < flags < key=value.")
    _add_run_flags(train)
    train.set_defaults(func=run_train)


def register(sub: argparse._SubParsersAction) -> None:
    """`persianllama lora train`, `persianllama merge`, `persianllama plan`."""
    lora = sub.add_parser("lora", help="LoRA track: adapt a LLaMA base (8-bit) to Persian")
    lora_sub = lora.add_subparsers(dest="lora_command", metavar="COMMAND")
    _add_train(lora_sub, "train")
    lora.set_defaults(func=lambda args: lora.print_help() or 2)
    _add_merge_and_plan(sub)


def _add_merge_and_plan(sub: argparse._SubParsersAction) -> None:
    from persianllama.lora.config import LoraConfig

    merge = sub.add_parser("merge", help="merge a LoRA adapter into an fp16/bf16/fp32 copy of its base",
                           description="Fold a PEFT LoRA adapter into its base model and save a full HF model "
                                       "(safetensors) with the tokenizer and a model card. Never into 8-bit weights.")
    merge.add_argument("--base", required=True, metavar="MODEL", help="the base model (HF directory or hub id)")
    merge.add_argument("--adapter", required=True, metavar="DIR", help="the adapter folder (e.g. runs/lora/adapter)")
    merge.add_argument("--output", required=True, metavar="DIR", help="where the merged model goes")
    merge.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"], help="weights dtype (default bf16)")
    merge.add_argument("--tokenizer", metavar="DIR", help="tokenizer to save with it (default: the adapter's)")
    merge.add_argument("--device", default="cpu", help="where to merge (cpu or cuda; default cpu)")
    merge.add_argument("--no-check", action="store_true", help="skip the merged-vs-unmerged logits check")
    merge.add_argument("--overwrite", action="store_true",
                       help="replace a non-empty --output (never one that holds the base, the adapter or a run)")
    merge.add_argument("--force", action="store_true",
                       help="merge even into a base other than the one the adapter records (persianllama_base.json)")
    merge.set_defaults(func=run_merge)

    plan = sub.add_parser(
        "plan", help="predict peak GPU memory of a LoRA run, part by part, and the largest micro-batch that fits",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="settings (key: type = default):\n" + describe(LoraConfig),
        description="Memory plan of a LoRA run from its recipe, without loading weights. The architecture comes "
                    "from the base model's config.json, or --arch.")
    _add_run_flags(plan)
    plan.add_argument("--arch", metavar="PRESET|config.json",
                      help="architecture when the base is not at hand (llama-7b, llama-13b, llama-2-13b, ...)")
    plan.add_argument("--vocab", help="vocabulary size after extension, >= 1 (default: the tokenizer's)")
    plan.add_argument("--device-memory-gb", help="device memory in GiB, > 0 (default: the GPU, else 80)")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument("--calibrate", metavar="RESULTS.json",
                      help="instead: this plan's error per part against the measurements benchmarks/gpu_check.py "
                           "wrote (each measurement carries its own settings; the recipe flags are not used)")
    plan.set_defaults(func=run_plan)


def run_train(args: argparse.Namespace) -> int:
    from persianllama.lora.train import run
    from persianllama.run.launcher import follow_launcher

    follow_launcher()  # harmless under plain python; under deepspeed/torchrun a dead launcher stops the run cleanly

    summary = run(load_config(args))
    if summary.get("exit_code"):
        return int(summary["exit_code"])
    val = summary.get("val")
    print(f"lora: {summary['step']} steps, last loss {summary['last_loss']:.4f}"
          + (f", validation bits/byte {val['bits_per_byte']:.4f}" if val else "")
          + f" -> {summary['adapter']}")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from persianllama.lora.merge import merge

    r = merge(args.base, args.adapter, args.output, dtype=args.dtype, tokenizer=args.tokenizer, device=args.device,
              check=not args.no_check, overwrite=args.overwrite, force=args.force)
    diff = "" if r.max_abs_diff is None else f", max logit difference {r.max_abs_diff:.3g}"
    print(f"merge: {r.output} ({args.dtype}, vocabulary {r.vocab}{diff}) in {r.seconds:.1f}s")
    return 0


def plan_for_config(cfg, *, arch: str | None = None, vocab: int | None = None):
    """The memory plan of a recipe without preflight's device checks: for the target GPU, not this machine."""
    from pathlib import Path

    from persianllama.lora.plan import estimate, inputs_for, resolve_arch
    from persianllama.lora.preflight import device_memory
    from persianllama.run.batch import batch_arithmetic
    from persianllama.run.device import precision_rule

    a = resolve_arch(cfg.model.base, arch)
    if vocab is None:
        src = cfg.model.tokenizer or cfg.model.base
        if src and Path(src).is_dir():
            try:
                from transformers import AutoTokenizer

                vocab = len(AutoTokenizer.from_pretrained(src))
            except Exception:  # noqa: BLE001 - the plan still works with the base vocabulary
                vocab = None
    vocab = max(vocab or a.vocab, a.vocab)
    emb = cfg.lora.embeddings
    if emb == "auto":
        emb = "full" if vocab > a.vocab else "none"
    mem, name = device_memory(cfg)
    # The target device, not this machine: a GPU (with bf16, as the A100 the recipes plan for) unless told cpu.
    device = "cpu" if cfg.train.device == "cpu" else "cuda"
    has_bf16 = not (cfg.plan.device_name or "").upper().startswith(("T4", "V100", "TESLA"))
    precision = precision_rule(cfg.train.precision, device, has_bf16)
    dtype = precision_rule(cfg.model.dtype, device, has_bf16)
    batch = batch_arithmetic(cfg.train, world_size=1)
    return estimate(inputs_for(cfg, arch=a, vocab=vocab, embeddings=emb, precision=precision, dtype=dtype,
                               micro_batch=batch.micro, device=device, device_memory=mem, device_name=name))


def run_plan(args: argparse.Namespace) -> int:
    from persianllama.config import Count, check_value
    from persianllama.lora.plan import format_plan

    if args.calibrate:
        from persianllama.lora.calibrate import run_calibrate

        return run_calibrate(args.calibrate, as_json=args.json)
    if args.device_memory_gb is not None:
        args.overrides = list(args.overrides) + [f"plan.device_memory_gb={args.device_memory_gb}"]
    vocab = None if args.vocab is None else check_value(args.vocab, Count, "--vocab")
    cfg = load_config(args)
    plan = plan_for_config(cfg, arch=args.arch, vocab=vocab)
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2, default=str))
    else:
        print(format_plan(plan))
    return 0 if plan.fits else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m persianllama.lora COMMAND``: the same commands without the rest of the CLI."""
    from persianllama.cli import dispatch

    parser = argparse.ArgumentParser(prog="python -m persianllama.lora",
                                     description="PersianLLaMA LoRA track: train, merge, plan.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub, "train")
    _add_merge_and_plan(sub)
    return dispatch(parser, parser.parse_args(argv))
