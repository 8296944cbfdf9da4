"""``persianllama tokenizer {train,extend,report}``: options are the fields of each command's config.

Every command takes ``--recipe FILE`` (YAML with the same keys) and trailing ``key=value``
overrides; the flags below are shortcuts for the most used keys. Precedence: defaults < recipe <
flags < overrides. Heavy libraries load inside the command functions.
"""

from __future__ import annotations

import argparse
import re

from persianllama import config as cfg

# A trailing override: `key=value` or `a.b=value`, as opposed to a path that may contain '='.
_OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*=")


def _split_overrides(values: list[str] | None, keys: set[str]) -> tuple[list[str], list[str]]:
    """Separate `key=value` items from the values of an nargs='+' option (argparse cannot tell them apart).

    An item is an override only when its key is a setting: ``--tokenizer ours=DIR`` stays a value.
    """
    from pathlib import Path

    kept, overrides = [], []
    for value in values or []:
        key = value.split("=", 1)[0].split(".", 1)[0].replace("-", "_")
        if _OVERRIDE.match(value) and key in keys and not Path(value).exists():
            overrides.append(value)
        else:
            kept.append(value)
    return kept, overrides


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", metavar="FILE", help="YAML recipe with the settings below")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="settings on top of recipe and flags")


def _parser(sub, name: str, help_text: str, config_cls: type) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="settings (recipe keys, key=value overrides):\n" + cfg.describe(config_cls),
    )


def register(subparsers) -> None:
    from persianllama.tokenizer.extend import ExtendConfig
    from persianllama.tokenizer.report import ReportConfig
    from persianllama.tokenizer.train import TokenizerTrainConfig

    parser = subparsers.add_parser(
        "tokenizer", help="train a Persian vocabulary, extend LLaMA's, compare tokenizers",
        description="Tokenizer stage: train | extend | report.",
    )
    sub = parser.add_subparsers(dest="tokenizer_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])

    p = _parser(sub, "train", "Train a Persian BPE vocabulary (byte-level, or SentencePiece) on a corpus.",
                TokenizerTrainConfig)
    p.add_argument("--input", nargs="+", metavar="CORPUS",
                   help="corpus-builder output dirs, .parquet files or .txt files")
    p.add_argument("--vocab-size", dest="vocab_size", metavar="N")  # parsed in run_train, checked by TokenizerTrainConfig
    p.add_argument("--output", metavar="DIR")
    p.add_argument("--backend", choices=["bpe", "sentencepiece"])
    p.add_argument("--allow-non-persian", action="store_true", default=None, dest="allow_non_persian",
                   help="train even if under min_persian_share of the corpus letters are Persian (a warning)")
    _add_common(p)
    p.set_defaults(func=run_train)

    p = _parser(sub, "extend", "Append Persian pieces to a LLaMA SentencePiece tokenizer (ids unchanged).",
                ExtendConfig)
    p.add_argument("--base", metavar="PATH", help="LLaMA tokenizer.model or HF tokenizer directory")
    p.add_argument("--persian", metavar="DIR", help="output of `tokenizer train --backend sentencepiece`")
    p.add_argument("--output", metavar="DIR2")
    p.add_argument("--max-new", dest="max_new", metavar="N")
    _add_common(p)
    p.set_defaults(func=run_extend)

    p = _parser(sub, "report", "Fertility report: tokens per word, chars per token, byte fallback, round trip.",
                ReportConfig)
    p.add_argument("--text", nargs="+", metavar="FILE", help="text files (one text per line) or corpus dirs")
    p.add_argument("--tokenizer", nargs="+", dest="tokenizers", metavar="NAME=PATH",
                   help="HF tokenizer dirs, SentencePiece .model files, tiktoken rank files")
    p.add_argument("--output", metavar="DIR")
    _add_common(p)
    p.set_defaults(func=run_report)


def _load(config_cls, args, **flags):
    import dataclasses

    keys = {f.name for f in dataclasses.fields(config_cls)}
    overrides = list(args.overrides or [])
    for key, value in list(flags.items()):
        if isinstance(value, list):
            flags[key], extra = _split_overrides(value, keys)
            overrides += extra
            if not flags[key]:
                flags[key] = None
    return cfg.load(config_cls, args.recipe, overrides, **flags)


def run_train(args) -> int:
    from persianllama.cliargs import integer
    from persianllama.tokenizer.train import TokenizerTrainConfig, train

    config = _load(TokenizerTrainConfig, args, input=args.input, vocab_size=integer(args.vocab_size, "--vocab-size"),
                   output=args.output,
                   backend=args.backend, allow_non_persian=args.allow_non_persian)
    result = train(config)
    print(f"{result.output}: {result.vocab_size} tokens in {result.seconds:.1f} s "
          f"(card: {result.output / 'tokenizer_card.md'})")
    return 0


def run_extend(args) -> int:
    from persianllama.cliargs import integer
    from persianllama.tokenizer.extend import ExtendConfig, extend

    config = _load(ExtendConfig, args, base=args.base, persian=args.persian, output=args.output,
                   max_new=integer(args.max_new, "--max-new"))
    result = extend(config)
    print(f"{config.output}: {result.base_size} -> {result.new_size} tokens "
          f"({len(result.added)} new, listed in new_tokens.json)")
    return 0


def run_report(args) -> int:
    from persianllama.tokenizer.report import ReportConfig, report

    config = _load(ReportConfig, args, text=args.text, tokenizers=args.tokenizers, output=args.output)
    result = report(config)
    print(result.markdown_table)
    print(f"\nwrote {config.output}/report.md, report.json, fertility.png")
    return 1 if config.fail_on_round_trip and not result.all_round_trip else 0
