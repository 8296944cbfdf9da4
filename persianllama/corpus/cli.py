"""`persianllama corpus build`: raw OSCAR shards and Wikipedia dumps to a clean, deduplicated corpus."""

from __future__ import annotations

import argparse
import logging
import os
import re

from persianllama.config import describe

log = logging.getLogger("persianllama.corpus")
_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def register(sub: argparse._SubParsersAction) -> None:
    from persianllama.corpus.config import CorpusConfig

    corpus = sub.add_parser("corpus", help="stage 1: build a clean Persian corpus from OSCAR and Wikipedia")
    corpus_sub = corpus.add_subparsers(dest="corpus_command", metavar="COMMAND")
    build = corpus_sub.add_parser(
        "build",
        help="read, normalize, filter and deduplicate into Parquet shards with stats and a data card",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build a Persian corpus. Settings come from the defaults, then --recipe, then the flags, "
                    "then key=value overrides (dotted for nested settings, e.g. quality.min_words=30).",
        epilog="settings (key: type = default):\n" + describe(CorpusConfig),
    )
    build.add_argument("--source", choices=["wikipedia", "oscar"], help="kind of the --input files")
    build.add_argument("--input", nargs="+", default=[], metavar="PATH",
                       help="input files, directories, globs, or an HF dataset id/path")
    build.add_argument("--hf-config", metavar="NAME",
                       help="HF dataset configuration for an --input hub id/path, e.g. 20231101.fa")
    build.add_argument("--output", metavar="DIR", help="output directory")
    build.add_argument("--recipe", metavar="YAML", help="recipe file (see corpora/*.yaml)")
    build.add_argument("--workers", type=int, help="tasks run in parallel (executor.workers)")
    build.add_argument("--fresh", action="store_true", help="discard earlier work in DIR and start over")
    build.add_argument("--no-progress", action="store_true", help="no progress bars")
    build.add_argument("overrides", nargs="*", metavar="key=value", help="setting overrides")
    build.set_defaults(func=run_build)
    corpus.set_defaults(func=lambda args: corpus.print_help() or 2)


def run_build(args: argparse.Namespace) -> int:
    from persianllama import config as cfg
    from persianllama.corpus.config import CorpusConfig
    from persianllama.corpus.pipeline import build
    from persianllama.errors import UserError

    # `--input a b k=v`: argparse hands k=v to --input; give setting overrides back to the overrides.
    inputs = [p for p in args.input if not (_OVERRIDE.match(p) and not os.path.exists(p))]
    overrides = [p for p in args.input if p not in inputs] + list(args.overrides)
    data = cfg.read_recipe(args.recipe) if args.recipe else {}
    if inputs:
        if not args.source:
            raise UserError("--input needs --source {wikipedia,oscar}")
        source = {"kind": args.source, "inputs": inputs}
        if args.hf_config:
            source["hf_config"] = args.hf_config
        data.setdefault("sources", []).append(source)
    elif args.source:
        raise UserError("--source needs --input PATH [PATH ...]")
    if args.output:
        data["output"] = args.output
    if args.workers is not None:  # (0 and negatives too: the setting's rule refuses them by name)
        data = cfg.merge(data, {"executor": {"workers": args.workers}})
    if args.no_progress:
        data["progress"] = False
    config = cfg.from_dict(CorpusConfig, cfg.merge(data, cfg.parse_overrides(overrides)))
    stats = build(config, fresh=args.fresh)
    if not stats:
        return 0
    r, k = stats["read"], stats["kept"]
    print(
        f"corpus: read {r['documents']:,} documents ({r['broken_records']:,} broken records skipped), "
        f"dropped {stats['dropped_total']:,}, kept {k['documents']:,} ({k['words']:,} words) "
        f"in {stats['seconds']} s -> {os.path.join(config.output, 'data')} "
        f"(data card: {os.path.join(config.output, 'README.md')})"
    )
    return 0
