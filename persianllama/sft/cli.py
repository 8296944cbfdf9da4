"""`persianllama sft`: instruction tuning of any causal LM (a Zero export, a merged LoRA model, a hub model).

    persianllama sft --base runs/zero/hf --data corpora/sample/instructions/conversations.jsonl --output runs/sft
    persianllama sft --base /models/llama-2-13b --adapter runs/lora-13b/adapter --data chats.jsonl \\
        --output runs/sft-13b --recipe configs/sft_13b_lora.yaml model.quantization=8bit
"""

from __future__ import annotations

import argparse

from persianllama.config import describe


def register(sub: argparse._SubParsersAction) -> None:
    from persianllama.sft.config import SftConfig

    p = sub.add_parser(
        "sft", help="instruction-tune a model on chat data (LoRA; assistant-only loss, packing, chat template)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="settings (key: type = default):\n" + describe(SftConfig),
        description="Instruction tuning on conversations (messages / Alpaca / ShareGPT in JSONL, JSON, Parquet or an "
                    "HF dataset id). Settings: defaults < --recipe < flags < key=value.")
    p.add_argument("--recipe", "--config", dest="config", metavar="YAML", help="recipe (e.g. configs/sft_tiny.yaml)")
    p.add_argument("--base", metavar="MODEL", help="the model to tune: HF directory or hub id (model.base)")
    p.add_argument("--adapter", metavar="DIR", help="continue from this LoRA adapter on its base (lora.init_adapter)")
    p.add_argument("--tokenizer", metavar="DIR", help="tokenizer (model.tokenizer; default: the adapter's, else the "
                                                      "base's)")
    p.add_argument("--data", nargs="+", metavar="FILE_OR_HUB_ID", help="instruction data (data.files)")
    p.add_argument("--output", metavar="DIR", help="run folder (out_dir)")
    p.add_argument("--steps", help="train.max_steps")
    p.add_argument("--resume", metavar="auto|none|DIR", help="checkpoint.resume")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="setting overrides")
    p.set_defaults(func=run_sft)


def load_config(args: argparse.Namespace):
    from pathlib import Path

    from persianllama import config as cfg
    from persianllama.cliargs import integer
    from persianllama.lora.adapter import has_tokenizer
    from persianllama.sft.config import SftConfig

    data, overrides = cfg.split_overrides(args.data, args.overrides)
    tokenizer = args.tokenizer
    if tokenizer is None and args.adapter and has_tokenizer(args.adapter):
        tokenizer = args.adapter  # an adapter carries the (possibly extended) tokenizer it was trained with
    recipe = cfg.read_recipe(args.config) if args.config else {}
    flags = cfg.flags_to_settings({
        "out_dir": args.output, "model.base": args.base, "model.tokenizer": tokenizer,
        "lora.init_adapter": args.adapter, "data.files": data,
        "train.max_steps": None if args.steps is None else integer(args.steps, "--steps"),
        "checkpoint.resume": args.resume,
    })
    config = cfg.from_dict(SftConfig, cfg.merge(cfg.merge(recipe, flags), cfg.parse_overrides(overrides)))
    if config.lora.init_adapter and not Path(config.lora.init_adapter).is_dir():
        from persianllama.errors import UserError

        raise UserError(f"--adapter {config.lora.init_adapter}: no such folder")
    return config


def run_sft(args: argparse.Namespace) -> int:
    from persianllama.run.launcher import follow_launcher
    from persianllama.sft.train import run

    follow_launcher()
    summary = run(load_config(args))
    if summary.get("exit_code"):
        return int(summary["exit_code"])
    val = summary.get("val")
    print(f"sft: {summary['step']} steps, last loss {summary['last_loss']:.4f}"
          + (f", held-out assistant loss {val['loss']:.4f}" if val else "")
          + f" -> {summary['adapter']}" + (f", merged {summary['hf']}" if summary.get("hf") else ""))
    return 0
