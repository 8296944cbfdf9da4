"""`persianllama evaluate`: Persian benchmarks and bits-per-byte for a model, adapter or 8-bit model;
`persianllama evaluate --compare DIR...` for a side-by-side report of earlier runs."""

from __future__ import annotations

import argparse
import re

from persianllama.config import describe

_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def _precision_name(dtype: str) -> str:
    """fp32/bf16/fp16 for a torch dtype name too (float32, bfloat16, float16: accepted as before)."""
    from persianllama.run.device import TORCH_DTYPES

    return {v: k for k, v in TORCH_DTYPES.items()}.get(dtype, dtype)


def register(sub: argparse._SubParsersAction) -> None:
    from persianllama.eval.config import EvalConfig

    p = sub.add_parser(
        "evaluate",
        help="stage 4: bits-per-byte and Persian benchmarks (ParsiNLU, FarsTail, PersianQA) via lm-eval",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Evaluate a model (a base, a PEFT adapter with its extended tokenizer, or 8-bit) on "
        "Persian tasks and write DIR/results.json, DIR/report.md and DIR/chart.png.\n"
        "Settings come from the defaults, then --recipe, then the flags, then key=value overrides.",
        epilog="examples:\n"
        "  persianllama evaluate --model out/zero --tasks all --data-dir ../shared/data --output eval/zero\n"
        "  persianllama evaluate --model meta-llama/Llama-2-7b-hf --adapter out/lora --load-in-8bit \\\n"
        "      --tasks persian_bpb,parsinlu_mc --num-fewshot 3 --output eval/lora\n"
        "  persianllama evaluate --model my-chat-model --tasks persian_chat --apply-chat-template --num-fewshot 3 \\\n"
        "      --data-dir ../shared/data --output eval/chat\n"
        "  persianllama evaluate --model out/zero --tasks belebele_pes_Arab,parsinlu_mc --data belebele_pes_Arab=DIR \\\n"
        "      --data-dir ../shared/data --output eval/mixed\n"
        "  persianllama evaluate --model out/zero --tasks all --data-dir ../shared/data --output eval/zero --lm-eval-command\n"
        "  persianllama evaluate --list-tasks --data-dir ../shared/data\n"
        "  persianllama evaluate --compare eval/zero eval/lora eval/base --output eval/compare\n\n"
        "settings (key: type = default):\n" + describe(EvalConfig),
    )
    p.add_argument("--model", metavar="PATH_OR_HUB_ID", help="base model")
    p.add_argument("--adapter", metavar="PEFT_DIR", help="PEFT adapter to attach")
    p.add_argument("--tokenizer", metavar="DIR", help="tokenizer (default: the adapter's, else the model's)")
    p.add_argument(
        "--load-in-8bit", action="store_true", default=None, help="load the base in 8-bit (bitsandbytes)"
    )
    p.add_argument("--tasks", metavar="LIST", help="comma-separated tasks or groups, or 'all'")
    # Numbers are parsed by cliargs.integer and range-checked by EvalConfig's field rules (one line each).
    p.add_argument("--num-fewshot", metavar="K", help="few-shot examples per prompt (default 0)")
    p.add_argument("--limit", metavar="N", help="first N examples of each task")
    p.add_argument("--output", metavar="DIR", help="output folder")
    p.add_argument("--data-dir", metavar="DIR", help="root of the data sets in their upstream layout")
    p.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="KEY=PATH",
        help="source of one data set (repeatable), e.g. farstail=/data/FarsTail/data or text=held_out.txt",
    )
    p.add_argument("--batch-size", metavar="N")
    p.add_argument("--max-length", metavar="TOKENS", help="context length (default: the model's)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument(
        "--dtype",
        choices=["auto", "fp32", "bf16", "fp16", "float32", "bfloat16", "float16"],
        help="weights dtype unless 8-bit (default: as saved); float32/bfloat16/float16 are accepted for fp32/bf16/fp16",
    )
    p.add_argument(
        "--apply-chat-template",
        action="store_true",
        default=None,
        help="wrap prompts in the tokenizer's chat template (chat models; the *_chat tasks as leaderboards run them)",
    )
    p.add_argument("--system-prompt", metavar="TEXT", help="system message (with --apply-chat-template)")
    p.add_argument(
        "--list-tasks",
        action="store_true",
        help="list every task (ours and lm-eval's Persian ones) with where its data comes from, then exit",
    )
    p.add_argument(
        "--lm-eval-command",
        action="store_true",
        help="print the plain lm_eval command lines of this evaluation (bits per byte and the rest), then exit",
    )
    p.add_argument(
        "--compare",
        nargs="+",
        metavar="RESULTS_DIR",
        help="compare earlier runs instead of evaluating (writes to --output)",
    )
    p.add_argument("--recipe", metavar="YAML", help="settings file (keys of the settings below)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="setting overrides")
    p.set_defaults(func=run_evaluate)


def _data_pairs(items: list[str]) -> dict[str, str]:
    from persianllama.errors import UserError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise UserError(f"--data {item!r}: expected KEY=PATH_OR_HUB_ID")
        out[key.strip()] = value.strip()
    return out


def run_evaluate(args: argparse.Namespace) -> int:
    from persianllama import config as cfg
    from persianllama.cliargs import integer, output_dir, writing
    from persianllama.errors import UserError
    from persianllama.eval.config import EvalConfig

    if args.list_tasks:
        from persianllama.eval.commands import list_tasks

        data = _data_pairs(args.data) if args.data else {}
        print(list_tasks(data, args.data_dir))
        return 0

    if args.compare:
        if not args.output:
            raise UserError("--compare needs --output DIR for the comparison report")
        output_dir(args.output)
        from persianllama.eval.report import compare

        with writing(args.output, "the comparison"):
            result = compare(args.compare, args.output)
        print(f"evaluate: compared {len(result['runs'])} run(s) -> {args.output}/report.md")
        return 0

    data = cfg.read_recipe(args.recipe) if args.recipe else {}
    flags = {
        "model": args.model,
        "adapter": args.adapter,
        "tokenizer": args.tokenizer,
        "load_in_8bit": args.load_in_8bit,
        "tasks": args.tasks.split(",") if args.tasks else None,
        "num_fewshot": integer(args.num_fewshot, "--num-fewshot"),
        "limit": integer(args.limit, "--limit"),
        "output": args.output,
        "data_dir": args.data_dir,
        "batch_size": integer(args.batch_size, "--batch-size"),
        "max_length": integer(args.max_length, "--max-length"),
        "device": args.device,
        "dtype": _precision_name(args.dtype),
        "apply_chat_template": args.apply_chat_template,
        "system_prompt": args.system_prompt,
    }
    data = cfg.merge(data, {k: v for k, v in flags.items() if v is not None})
    if args.data:
        data = cfg.merge(data, {"data": _data_pairs(args.data)})
    config = cfg.from_dict(EvalConfig, cfg.merge(data, cfg.parse_overrides(args.overrides)))
    if args.lm_eval_command:
        from persianllama.eval.commands import lm_eval_commands
        from persianllama.eval.runner import check_data_keys, split_names

        if not config.model or not config.tasks:
            raise UserError("--lm-eval-command needs --model and --tasks (the evaluation to translate)")
        check_data_keys(config.data)
        if not split_names(config.tasks):
            raise UserError("--lm-eval-command: no tasks given")
        print("\n".join(lm_eval_commands(config)))
        return 0
    if config.output:  # before any data or model is loaded: a file or an unwritable place is refused now
        output_dir(config.output)

    from persianllama.eval.report import summary_rows
    from persianllama.eval.runner import evaluate

    with writing(config.output, "the evaluation outputs"):
        results = evaluate(config)
    for row in summary_rows(results):
        se = row["stderr"]
        se_text = f" ± {se:.4f}" if isinstance(se, float) else ""
        value = row["value"]
        print(
            f"  {row['task']:<32} {row['metric']:<14} {value:.4f}{se_text}"
            if isinstance(value, (int, float))
            else f"  {row['task']:<32} n/a"
        )
    meta = results["persianllama"]
    from persianllama.eval.report import analysis_warnings

    for warning in analysis_warnings(meta):
        print(f"  warning: {warning}")
    print(
        f"evaluate: {meta['examples']} examples in {sum(meta['seconds'].values()):.1f} s "
        f"-> {config.output}/report.md"
    )
    return 0
