"""`persianllama` command line: one subcommand per pipeline stage.

Each stage module exposes ``register(subparsers)``, which adds its parser(s) and sets
``func`` to a plain function taking the parsed arguments. Stage modules import their heavy
libraries (torch, transformers, datatrove) inside those functions, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from persianllama.config import ConfigError
from persianllama.errors import UserError, disk_full

# Stage name -> module with register(). Order is the order of the pipeline.
STAGES = [
    "persianllama.corpus.cli",
    "persianllama.tokenizer.cli",
    "persianllama.data.cli",
    "persianllama.train.cli",
    "persianllama.lora.cli",
    "persianllama.sft.cli",
    "persianllama.distill.cli",
    "persianllama.w2s.cli",
    "persianllama.eval.cli",
    "persianllama.quickstart",
    "persianllama.serve.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="persianllama",
        description="From raw Persian text to a trained, evaluated Persian LLaMA.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in STAGES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name and module_name.startswith(e.name):  # stage not built yet
                continue
            raise
        module.register(sub)
    return parser


def dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run the parsed subcommand: logging set up, user errors as one line (exit 2), Ctrl-C as 130.
    Shared by `persianllama` and the stage modules' own `python -m` entry points."""
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UserError, ConfigError, FileNotFoundError) as e:
        print(f"{parser.prog} {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        message = disk_full(e)
        if message is None:
            raise
        print(f"{parser.prog} {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog} {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    return dispatch(parser, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
