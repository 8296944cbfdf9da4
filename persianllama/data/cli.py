"""`persianllama data pack`: tokenize and pack a corpus once, into the cache every training track reuses.

    persianllama data pack --config configs/1b.yaml             # pack what that recipe will train on
    persianllama data pack --corpus DIR --tokenizer DIR --block-size 2048
"""

from __future__ import annotations

from typing import Annotated


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="pre-tokenize and pack a corpus into cached training blocks")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    p = data_sub.add_parser("pack", help="tokenize + pack a corpus once (cached by corpus, tokenizer, block size)",
                            description="Tokenize a corpus and pack it into fixed-length blocks (EOS between "
                            "documents, no padding), with a held-out validation split by document. The result is "
                            "cached; every training track reuses it.")
    p.add_argument("--config", help="take corpus, tokenizer, block size and data.* from this pretraining recipe")
    p.add_argument("--corpus", nargs="+", help="corpus directories (Parquet shards), .parquet or .txt files")
    p.add_argument("--tokenizer", help="HF tokenizer directory")
    p.add_argument("--block-size", help="tokens per block (the training seq_len), >= 2")
    p.add_argument("--cache-dir", help="cache root (default runs/cache/packed)")
    p.add_argument("--val-fraction", help="fraction of documents held out, in [0, 1) (default 0.005)")
    p.add_argument("--workers", help="processes, >= 0 (default 0: one per core)")
    p.add_argument("--text-column", help="Parquet text column (default text)")
    p.add_argument("--txt-document", choices=["blank_line", "line", "file"], help="how .txt files split into documents")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides (with --config)")
    p.set_defaults(func=cmd_pack)
    data.set_defaults(func=lambda args: data.print_help() or 2)


def pack_settings(args):
    """(DataConfig, tokenizer, block size) from --config and the flags, every value checked by its field's rule."""
    from persianllama import config as configlib
    from persianllama.data.config import DataConfig
    from persianllama.errors import UserError
    from persianllama.train.config import PretrainConfig

    flags = {"corpus": args.corpus, "cache_dir": args.cache_dir, "val_fraction": args.val_fraction,
             "workers": args.workers, "text_column": args.text_column, "txt_document": args.txt_document}
    flags = {f"data.{k}": v for k, v in flags.items() if v is not None}
    if args.block_size is not None:
        flags["train.seq_len"] = args.block_size
    if args.tokenizer is not None:
        flags["tokenizer"] = args.tokenizer
    if args.overrides and not args.config:
        raise UserError("key=value overrides need --config")
    nested = configlib.flags_to_settings(flags)
    if args.config:
        data = configlib.merge(configlib.read_recipe(args.config), configlib.parse_overrides(args.overrides))
        data = configlib.merge(data, nested)
        cfg = configlib.from_dict(PretrainConfig, data)
        d, tokenizer, block = cfg.data, cfg.tokenizer, cfg.train.seq_len
        missing = [k for k, v in (("corpus", d.corpus), ("tokenizer", tokenizer)) if not v]
    else:
        d = configlib.from_dict(DataConfig, {k.split(".", 1)[1]: v for k, v in flags.items() if k.startswith("data.")},
                                prefix="data.")
        tokenizer = args.tokenizer
        block = None if args.block_size is None else \
            configlib.check_value(args.block_size, Annotated[int, configlib.Range(2)], "--block-size")
        missing = [k for k, v in (("corpus", d.corpus), ("tokenizer", tokenizer), ("block_size", block)) if not v]
    if missing:
        raise UserError(f"data pack needs {', '.join('--' + m.replace('_', '-') for m in missing)} (or --config)")
    return d, tokenizer, block


def cmd_pack(args) -> int:
    from persianllama.data import pack

    d, tokenizer, block = pack_settings(args)
    data = pack(d, tokenizer, block_size=block)
    m = data.meta
    print(f"{data.path}\n  {'built' if data.built else 'already cached'}: {m['train_tokens']:,} training tokens "
          f"in {m['n_blocks']:,} blocks of {m['block_size']} ({m['train_docs']:,} documents), "
          f"{m['val_docs']:,} validation documents ({m['val_tokens']:,} tokens)")
    return 0
