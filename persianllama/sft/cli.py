"""`persianllama sft`: instruction tuning of any causal LM (a Zero export, a merged LoRA model, a hub model);
`persianllama dpo`: preference tuning (DPO) of it or of an SFT adapter; `persianllama chat`: talk to the result.

    persianllama sft --base runs/zero/hf --data corpora/sample/instructions/conversations.jsonl --output runs/sft
    persianllama sft --base /models/llama-2-13b --adapter runs/lora-13b/adapter --data chats.jsonl \\
        --output runs/sft-13b --recipe configs/sft_13b_lora.yaml model.quantization=8bit
    persianllama dpo --base runs/zero/hf --adapter runs/sft/adapter \\
        --data corpora/sample/instructions/preferences.jsonl --output runs/dpo
    persianllama chat --model runs/zero/hf --adapter runs/dpo/adapter
"""

from __future__ import annotations

import argparse
import os

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
    register_dpo(sub)
    register_chat(sub)


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
    if os.environ.get("RANK", "0") != "0":  # method=full under a launcher: rank 0 reports
        return 0
    val = summary.get("val")
    loss = summary.get("last_loss")
    print(f"sft: {summary['step']} steps, last loss {loss if loss is None else f'{loss:.4f}'}"
          + (f", held-out assistant loss {val['loss']:.4f}" if val else "")
          + f" -> {summary['adapter']}" + (f", merged {summary['hf']}" if summary.get("hf") else ""))
    return 0


# --- dpo -----------------------------------------------------------------------------------------------------


def register_dpo(sub: argparse._SubParsersAction) -> None:
    from persianllama.sft.dpo_config import DpoConfig

    p = sub.add_parser(
        "dpo", help="preference-tune a model or an SFT adapter on chosen/rejected pairs (DPO with LoRA)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="settings (key: type = default):\n" + describe(DpoConfig),
        description="Direct preference optimisation on {prompt|messages, chosen, rejected} records (TRL's "
                    "conversational or plain-string layout, in JSONL, JSON, Parquet or an HF dataset id). The "
                    "reference model is the base (a fresh adapter) or the --adapter it continues (an SFT adapter); "
                    "its log-probabilities are computed once and cached in the run folder. Settings: defaults < "
                    "--recipe < flags < key=value.")
    p.add_argument("--recipe", "--config", dest="config", metavar="YAML", help="recipe (e.g. configs/dpo_tiny.yaml)")
    p.add_argument("--base", metavar="MODEL", help="the base model: HF directory or hub id (model.base)")
    p.add_argument("--adapter", metavar="DIR", help="an SFT adapter on that base to continue; it is also the "
                                                      "reference model (lora.init_adapter; its r, alpha and targets "
                                                      "are taken unless set)")
    p.add_argument("--tokenizer", metavar="DIR", help="tokenizer (model.tokenizer; default: the adapter's, else the "
                                                      "base's)")
    p.add_argument("--data", nargs="+", metavar="FILE_OR_HUB_ID", help="preference pairs (data.files)")
    p.add_argument("--output", metavar="DIR", help="run folder (out_dir)")
    p.add_argument("--steps", help="train.max_steps")
    p.add_argument("--beta", help="dpo.beta")
    p.add_argument("--resume", metavar="auto|none|DIR", help="checkpoint.resume")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="setting overrides")
    p.set_defaults(func=run_dpo)


def _adapter_settings(adapter: str | None) -> dict:
    """An adapter's rank, alpha and targets as settings: continuing it needs the same ones."""
    import json
    from pathlib import Path

    from persianllama.errors import UserError

    if not adapter:
        return {}
    conf = Path(adapter) / "adapter_config.json"
    if not Path(adapter).is_dir():
        raise UserError(f"--adapter {adapter}: no such folder")
    if not conf.is_file():
        raise UserError(f"--adapter {adapter}: no adapter_config.json (expected a PEFT adapter folder, such as "
                        "an sft run's adapter/)")
    try:
        ac = json.loads(conf.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{conf}: not valid JSON ({e.msg}, line {e.lineno})") from None
    out = {}
    if isinstance(ac.get("r"), int):
        out["lora.r"] = ac["r"]
    if isinstance(ac.get("lora_alpha"), int):
        out["lora.alpha"] = ac["lora_alpha"]
    if isinstance(ac.get("target_modules"), list):
        out["lora.target_modules"] = sorted(ac["target_modules"])
    return out


def load_dpo_config(args: argparse.Namespace):
    from persianllama import config as cfg
    from persianllama.cliargs import integer
    from persianllama.lora.adapter import has_tokenizer
    from persianllama.sft.dpo_config import DpoConfig

    data, overrides = cfg.split_overrides(args.data, args.overrides)
    from_adapter = _adapter_settings(args.adapter)
    tokenizer = args.tokenizer
    if tokenizer is None and args.adapter and has_tokenizer(args.adapter):
        tokenizer = args.adapter  # the SFT adapter carries its tokenizer and chat template
    recipe = cfg.read_recipe(args.config) if args.config else {}
    beta = None
    if args.beta is not None:
        try:
            beta = float(args.beta)
        except ValueError:
            from persianllama.errors import UserError

            raise UserError(f"--beta={args.beta!r} is not a number") from None
    flags = cfg.flags_to_settings({
        "out_dir": args.output, "model.base": args.base, "model.tokenizer": tokenizer,
        "lora.init_adapter": args.adapter, "data.files": data, "dpo.beta": beta,
        "train.max_steps": None if args.steps is None else integer(args.steps, "--steps"),
        "checkpoint.resume": args.resume, **from_adapter,
    })
    return cfg.from_dict(DpoConfig, cfg.merge(cfg.merge(recipe, flags), cfg.parse_overrides(overrides)))


def run_dpo(args: argparse.Namespace) -> int:
    from persianllama.run.launcher import follow_launcher
    from persianllama.sft.dpo import run

    follow_launcher()
    summary = run(load_dpo_config(args))
    if summary.get("exit_code"):
        return int(summary["exit_code"])
    val = summary.get("val")
    print(f"dpo: {summary['step']} steps, last loss {summary['last_loss']:.4f}"
          + (f", held-out reward accuracy {val['reward_accuracy']:.3f} (margin {val['reward_margin']:.3f})"
             if val else "")
          + f" -> {summary['adapter']}" + (f", merged {summary['hf']}" if summary.get("hf") else ""))
    return 0


# --- chat ----------------------------------------------------------------------------------------------------


def register_chat(sub: argparse._SubParsersAction) -> None:
    from typing import Annotated

    from persianllama.cliargs import count, non_negative, ruled
    from persianllama.config import Range

    top_p = ruled(Annotated[float, Range(0, 1, lo_open=True)], "top-p")

    p = sub.add_parser(
        "chat", help="chat with a model in the terminal (streamed replies, its chat template, RTL display)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Talk to a model: a base with --adapter (an sft/dpo run's adapter/), a merged model, or a base "
                    "model (no chat template: plain continuation). Commands: /reset, /system TEXT, /exit. With "
                    "--prompt, print one answer (greedy unless --temperature) and exit.",
        epilog="examples:\n"
               "  persianllama chat --model runs/zero/hf --adapter runs/sft/adapter\n"
               "  persianllama chat --model runs/zero/hf --adapter runs/dpo/adapter --prompt \"سلام\"\n"
               "  persianllama chat --model runs/sft/hf --system \"کوتاه پاسخ بده.\" --bidi on")
    p.add_argument("--model", metavar="PATH_OR_HUB_ID", help="the model (with --adapter: its base)")
    p.add_argument("--adapter", metavar="DIR", help="a PEFT adapter to attach (its tokenizer and chat template "
                                                    "are used)")
    p.add_argument("--tokenizer", metavar="DIR", help="tokenizer (default: the adapter's, else the model's)")
    p.add_argument("--system", metavar="TEXT", help="system message")
    p.add_argument("--prompt", metavar="TEXT", help="answer this one message, print the answer (logical order) and "
                                                     "exit")
    p.add_argument("--max-new-tokens", type=count, default=256, metavar="N", help="longest reply (default 256)")
    p.add_argument("--temperature", type=non_negative, metavar="T",
                   help="sampling temperature; 0: greedy (default 0.7, and 0 with --prompt)")
    p.add_argument("--top-p", type=top_p, default=0.9, metavar="P",
                   help="nucleus sampling: the smallest set of tokens with this much probability (default 0.9)")
    p.add_argument("--seed", type=int, metavar="N", help="seed of the sampler")
    p.add_argument("--bidi", choices=["auto", "on", "off"], default="auto",
                   help="show right-to-left replies in visual order (python-bidi); auto: when standard output is a "
                        "terminal not known to do bidi itself (never with --prompt)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--dtype", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                   help="weights dtype unless 8-bit (default: as saved)")
    p.add_argument("--load-in-8bit", action="store_true", help="load the model in 8-bit (bitsandbytes)")
    p.set_defaults(func=_run_chat)


def _run_chat(args: argparse.Namespace) -> int:
    from persianllama.sft.chat import run_chat

    return run_chat(args)
