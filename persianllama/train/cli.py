"""Command-line stages of the Zero track (training itself runs under the launcher: scripts/pretrain.py).

    persianllama pretrain-check --config configs/7b.yaml --hostfile hostfile [key=value ...]
    persianllama export runs/1b [--out DIR] [--dtype bf16] [--overwrite]
"""

from __future__ import annotations

import json

from persianllama.errors import UserError


def register(subparsers) -> None:
    e = subparsers.add_parser("export", help="write an HF model directory (safetensors, tokenizer, model card) "
                              "from a pretraining checkpoint")
    e.add_argument("checkpoint", help="run folder (newest complete checkpoint), its checkpoints/ or a step_N folder")
    e.add_argument("--out", help="output directory (default RUN/hf)")
    e.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="weights dtype (auto: the training precision)")
    e.add_argument("--tokenizer", help="tokenizer directory, if the run's copy has moved")
    e.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty --out folder (never one that holds the run, its checkpoints or tokenizer)")
    e.set_defaults(func=cmd_export)

    c = subparsers.add_parser("pretrain-check", help="run every pretraining check (config, ds_config, tokenizer, "
                              "hostfile, batch arithmetic) without training")
    c.add_argument("--config", required=True, help="pretraining recipe")
    c.add_argument("--world-size", type=int, help="ranks the run will have (default: hostfile slots, else 1)")
    c.add_argument("--hostfile", help="the launcher's hostfile: every host is checked reachable")
    c.add_argument("overrides", nargs="*", metavar="key=value")
    c.set_defaults(func=cmd_check)


def cmd_export(args) -> int:
    from persianllama.train.export import describe_export, export

    out = export(args.checkpoint, args.out, dtype=args.dtype, tokenizer=args.tokenizer, overwrite=args.overwrite)
    print(describe_export(out))
    return 0


def cmd_check(args) -> int:
    """The checks scripts/pretrain.py runs before any long work, for a run with `world_size` ranks."""
    from persianllama import config as configlib
    from persianllama.data import cache_path, load_tokenizer
    from persianllama.run.batch import batch_arithmetic
    from persianllama.run.device import choose_precision, device_type
    from persianllama.run.outputs import resolve_path
    from persianllama.train.config import PretrainConfig
    from persianllama.train.ds_config import fill_ds_config, load_ds_config, zero_stage
    from persianllama.train.hostfile import check_hostfile
    from persianllama.train.model import choose_attention, count_params, flops_per_token, llama_config
    from persianllama.train.preflight import check_required, model_sizes

    cfg = configlib.load(PretrainConfig, args.config, args.overrides, hostfile=args.hostfile)
    check_required(cfg)
    world = args.world_size
    if world is not None and world < 1:
        raise UserError(f"--world-size={world} is out of range: it must be >= 1")
    if cfg.hostfile:
        hosts = check_hostfile(cfg.hostfile, world_size=world)
        world = world or sum(h.slots for h in hosts)
        print(f"hostfile {cfg.hostfile}: {len(hosts)} host(s) reachable, {sum(h.slots for h in hosts)} slots")
    world = world or 1
    device = device_type()
    precision = choose_precision(cfg.train.precision, device)
    batch = batch_arithmetic(cfg.train, world)
    tokenizer = load_tokenizer(resolve_path(cfg.tokenizer, what="tokenizer directory"))
    sizes = model_sizes(cfg.model, tokenizer, cfg.train.seq_len, cfg.tokenizer)
    ds_path = resolve_path(cfg.ds_config, what="DeepSpeed config")
    ds = fill_ds_config(load_ds_config(ds_path), train=cfg.train, batch=batch, precision=precision,
                        hidden_size=cfg.model.hidden_size, source=str(ds_path))
    hf = llama_config(cfg.model, sizes, tokenizer, choose_attention(cfg.model.attn_implementation, device, precision))
    params = count_params(hf)
    print(f"model: {params['total'] / 1e6:.1f}M parameters, vocab {sizes.vocab_size} (tokenizer {len(tokenizer)}), "
          f"context {sizes.max_positions}, {flops_per_token(hf, batch.seq_len) / 1e9:.2f} GFLOP/token")
    print(f"batch: {batch.global_batch} sequences/step = micro {batch.micro} x accumulation {batch.accum} x "
          f"{world} rank(s); {batch.tokens_per_step:,} tokens/step; {precision} on {device} (this machine)")
    print(f"deepspeed: {ds_path}, ZeRO-{zero_stage(ds)}; filled config:\n{json.dumps(ds, indent=2)}")
    path = cache_path(cfg.data, tokenizer, block_size=cfg.train.seq_len)
    if (path / "meta.json").is_file():
        from persianllama.data import PackedData

        data = PackedData(path)
        enough = "enough" if data.n_blocks >= batch.global_batch else "NOT enough"
        print(f"data: {path}: {data.n_blocks:,} blocks ({enough} for one step of {batch.global_batch})")
    else:
        print(f"data: not packed yet ({path}); `persianllama data pack --config {args.config}` packs it")
    print("all checks passed")
    return 0
