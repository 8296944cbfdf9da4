"""Pretrain a Persian LLaMA from scratch with DeepSpeed (the Zero track); `scripts/pretrain.py` runs it.

    deepspeed [--hostfile H] [--num_gpus N] scripts/pretrain.py --config configs/1b.yaml [key=value ...]
    python scripts/pretrain.py --config configs/tiny.yaml [key=value ...]    # one process, no launcher
    python scripts/pretrain.py --describe                                   # every setting, with help

Settings: defaults < recipe (--config) < key=value overrides (dotted, e.g. train.lr=3e-4). The
DeepSpeed JSON (ds_config=ds_configs/zero2.json) fills its "auto" values from these settings.

Steps, in order: arguments -> checks (before any long work) -> tokenizer -> data (packed once,
cached) -> model -> DeepSpeed engine -> resume -> train -> save -> export.

Run folder (out_dir): checkpoints/step_N/ (resume=auto picks the newest complete one),
metrics.jsonl, tensorboard/, loss_curve.png, tokenizer/, config.yaml, ds_config.json, hf/ (export).

Distillation (`persianllama distill`) is this same run with an `Extension`: the student is the model
trained here, and the extension adds the teacher's term to the loss, its settings to the resume checks,
and its lines to the model card.

Exit status: 0 done; 2 bad input (one line on stderr); 128+signal (143 SIGTERM, 130 SIGINT) when
stopped by a signal after saving a checkpoint: run the same command again to continue.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from persianllama import config as configlib
from persianllama.config import ConfigError
from persianllama.data import BlockOrder, PackedData, cache_path, load_tokenizer, pack
from persianllama.data.packing import tokenizer_fingerprint
from persianllama.errors import UserError, disk_full
from persianllama.run import checkpoint as ckpt
from persianllama.run.batch import batch_arithmetic, check_enough_data
from persianllama.run.device import choose_precision, device_name, device_type, free_cores
from persianllama.run.dist import DistEnv, dist_env
from persianllama.run.launcher import follow_launcher
from persianllama.run.lock import RunLock
from persianllama.run.metrics import RunLog, device_peak, plot_loss_curve
from persianllama.run.outputs import resolve_path
from persianllama.run.resume import check_compatible
from persianllama.run.schedule import warmup_cosine
from persianllama.run.signals import StopSignal
from persianllama.train.checkpoint import Checkpoints, check_stage
from persianllama.train.config import PretrainConfig
from persianllama.train.ds_config import fill_ds_config, load_ds_config, zero_stage
from persianllama.train.hostfile import check_hostfile
from persianllama.train.loop import Trainer, TrainState
from persianllama.train.model import (
    build_model,
    choose_attention,
    count_params,
    flops_per_token,
    llama_config,
    param_groups,
)
from persianllama.train.preflight import check_required, model_sizes

log = logging.getLogger("pretrain")


@dataclass
class Extension:
    """What another track adds to a pretraining run, without a second copy of it (distillation)."""

    name: str
    """Shown in the log, the loss-curve title and the run description (``track``)."""
    settings: dict = field(default_factory=dict)
    """More settings a resumed run may change (each change is listed in one warning)."""
    make_loss: Callable | None = None
    """`make_loss(data, tokenizer, device, env)` -> the Trainer's ``loss_fn(engine, inputs)``; called after the
    data is packed and before the model is built (a teacher is loaded, a cache is filled, there)."""
    card: Callable | None = None
    """The export's model-card function (`persianllama.train.export.model_card`'s signature)."""
    describe: dict = field(default_factory=dict)
    """More of the run description stored with each checkpoint (teacher, loss...)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="recipe YAML (configs/tiny.yaml, 125m, 1b, 7b, 13b)")
    p.add_argument("--describe", action="store_true", help="print every setting with its help line, then exit")
    p.add_argument("--verbose", action="store_true", help="also show DeepSpeed's own log lines")
    # The deepspeed launcher inserts --local_rank=N before our arguments; LOCAL_RANK carries the same.
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="settings on top of the recipe")
    return p.parse_args(argv)


def choose_resume(mode: str, root: Path, verify: str, rank: int) -> tuple[Path, dict] | None:
    """The checkpoint to continue from and its state (see checkpoint.resume); a damaged newest one is passed over."""
    if mode == "none":
        done = [p for _, p, ok in ckpt.list_checkpoints(root) if ok]
        if done:
            raise UserError(f"{root} already holds checkpoints (newest {done[-1].name}); use checkpoint.resume=auto "
                            "to continue that run, or choose another out_dir")
        return None
    if mode == "auto":
        # Every rank verifies (the same files, the same answer); only rank 0 moves a damaged one aside.
        return ckpt.find_resumable(root, verify_mode=verify, set_aside=rank == 0)
    return ckpt.resolve_checkpoint(mode, verify_mode=verify)


def identity(hf_config, tokenizer) -> dict:
    """What the saved tensors depend on: a checkpoint with other values cannot be resumed."""
    return {"model.hidden_size": hf_config.hidden_size, "model.num_layers": hf_config.num_hidden_layers,
            "model.num_heads": hf_config.num_attention_heads, "model.num_kv_heads": hf_config.num_key_value_heads,
            "model.intermediate_size": hf_config.intermediate_size, "model.vocab_size": hf_config.vocab_size,
            "model.tie_word_embeddings": bool(hf_config.tie_word_embeddings),
            "tokenizer": tokenizer_fingerprint(tokenizer)}


def run_settings(cfg: PretrainConfig, extension: Extension | None) -> dict:
    return changeable(cfg) | (extension.settings if extension else {})


def changeable(cfg: PretrainConfig) -> dict:
    """Settings a resumed run may change (each change is listed in one warning line)."""
    t, d = cfg.train, cfg.data
    return {"train.lr": t.lr, "train.min_lr": t.min_lr, "train.warmup_steps": t.warmup_steps,
            "train.max_steps": t.max_steps, "train.seed": t.seed, "train.seq_len": t.seq_len,
            "train.micro_batch_size": t.micro_batch_size, "train.global_batch_size": t.global_batch_size,
            "train.weight_decay": t.weight_decay, "train.grad_clip": t.grad_clip, "train.precision": t.precision,
            "data.corpus": list(d.corpus), "data.val_fraction": d.val_fraction}


def packed_data(cfg: PretrainConfig, tokenizer, env: DistEnv) -> PackedData:
    """Local rank 0 packs (or finds the cache); the other ranks of the node wait for its folder."""
    if env.local_rank == 0:
        return pack(cfg.data, tokenizer, block_size=cfg.train.seq_len, progress=env.rank == 0)
    path = cache_path(cfg.data, tokenizer, block_size=cfg.train.seq_len)
    waited = 0
    while not (path / "meta.json").is_file():  # the launcher kills us if local rank 0 fails
        time.sleep(1)
        waited += 1
        if waited % 120 == 0:
            log.info("rank %d: still waiting for local rank 0 to pack %s", env.rank, path)
    return PackedData(path)


def run_description(cfg: PretrainConfig, env: DistEnv, *, stage: int, precision: str, batch,
                    hf_config, params: dict, data: PackedData, ds_path: Path, tokenizer,
                    extension: Extension | None = None) -> dict:
    """What every checkpoint records besides the step: for resume checks, `export` and the model card."""
    out_dir = Path(cfg.out_dir)
    return {
        "world_size": env.world_size, "zero_stage": stage, "precision": precision,
        "global_batch_size": batch.global_batch, "seq_len": batch.seq_len, "lr": cfg.train.lr,
        "min_lr": cfg.train.min_lr, "warmup_steps": cfg.train.warmup_steps, "max_steps": cfg.train.max_steps,
        "model_config": {k: v for k, v in hf_config.to_dict().items() if not k.startswith("_")},
        "model_params": params,
        "data": {k: data.meta.get(k) for k in ("corpus", "train_tokens", "train_docs", "val_docs", "key")}
        | {"cache": str(data.path)},
        "tokenizer_dir": str((out_dir / "tokenizer").resolve()),
        "tokenizer_source": str(Path(cfg.tokenizer).resolve()),
        "ds_config": str(ds_path),
        "identity": identity(hf_config, tokenizer),
        "settings": run_settings(cfg, extension),
    } | ({"track": extension.name, **extension.describe} if extension else {})


def signal_test_hook(rank: int):
    """Test hook: ``PERSIANLLAMA_TEST_SIGTERM_AT=STEP[:RANK]`` makes that rank (default 0) send itself a
    real SIGTERM right after optimizer step STEP, as when a preemption notice reaches one node first."""
    spec = os.environ.get("PERSIANLLAMA_TEST_SIGTERM_AT")
    if not spec:
        return None
    step, _, who = spec.partition(":")
    if rank != int(who or 0):
        return None
    return lambda state: signal.raise_signal(signal.SIGTERM) if state.step == int(step) else None


def run(argv: list[str] | None, cleanup: contextlib.ExitStack, *, on_step=None) -> int:
    # --- arguments and the checks that need nothing heavy ------------------------------------------
    args = parse_args(argv)
    if args.describe:
        print(configlib.describe(PretrainConfig))
        return 0
    follow_launcher()  # a rank whose deepspeed/torchrun launcher exits stops as on SIGTERM (saves, exits 143)
    if not args.verbose:
        logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    cfg = configlib.load(PretrainConfig, args.config, args.overrides)
    return run_config(cfg, cleanup, on_step=on_step, local_rank=args.local_rank)


def run_config(cfg: PretrainConfig, cleanup: contextlib.ExitStack, *, on_step=None, local_rank: int | None = None,
               extension: Extension | None = None) -> int:
    """The run for a loaded config (see the module docstring); returns the exit status."""
    check_required(cfg)
    env = dist_env(local_rank)
    if cfg.hostfile:
        check_hostfile(cfg.hostfile, world_size=env.world_size)
    device = device_type()
    if device == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        if "OMP_NUM_THREADS" not in os.environ:  # ranks sharing a machine must not oversubscribe it
            import torch

            torch.set_num_threads(max(1, free_cores() // env.local_world_size))
    precision = choose_precision(cfg.train.precision, device)
    batch = batch_arithmetic(cfg.train, env.world_size)
    out_dir = Path(cfg.out_dir)

    # --- tokenizer, model sizes and the DeepSpeed config ------------------------------------------
    tokenizer = load_tokenizer(resolve_path(cfg.tokenizer, what="tokenizer directory"))
    sizes = model_sizes(cfg.model, tokenizer, cfg.train.seq_len, cfg.tokenizer)
    ds_path = resolve_path(cfg.ds_config, what="DeepSpeed config")
    ds_cfg = fill_ds_config(load_ds_config(ds_path), train=cfg.train, batch=batch, precision=precision,
                            hidden_size=cfg.model.hidden_size, source=str(ds_path))
    stage = zero_stage(ds_cfg)
    attn = choose_attention(cfg.model.attn_implementation, device, precision)
    hf_config = llama_config(cfg.model, sizes, tokenizer, attn)

    # --- one process per run folder; the checkpoint to resume, checked before any weights are read ---
    cleanup.enter_context(RunLock(out_dir, active=env.rank == 0))
    resume = choose_resume(cfg.checkpoint.resume, out_dir / "checkpoints", cfg.checkpoint.verify, env.rank)
    if resume is not None:
        check_stage(resume[0], resume[1], world_size=env.world_size, zero_stage=stage)
        check_compatible(resume[0], resume[1], identity=identity(hf_config, tokenizer),
                         settings=run_settings(cfg, extension),
                         hint="resume with the model and tokenizer it was written with, or choose another out_dir")
    resume_from = resume[0] if resume else None

    # --- data ---------------------------------------------------------------------------------------
    data = packed_data(cfg, tokenizer, env)
    check_enough_data(data.n_blocks, batch, data.meta["train_tokens"])
    val_texts = data.val_texts(limit=cfg.log.eval_docs)
    loss_fn = extension.make_loss(data, tokenizer, device, env) if extension and extension.make_loss else None

    # --- distributed, model, engine -----------------------------------------------------------------
    import deepspeed
    import torch
    import torch.distributed as dist

    own_group = not dist.is_initialized()
    deepspeed.init_distributed(dist_backend="gloo" if device == "cpu" else None)
    torch.manual_seed(cfg.train.seed)
    model = build_model(hf_config, init_from=cfg.model.init_from,
                        zero3_init_config=ds_cfg if stage == 3 else None,
                        activation_checkpointing=cfg.train.activation_checkpointing)
    # The schedule is the training config's warmup + cosine unless the ds_config brings its own block;
    # DeepSpeed builds the optimizer, then calls this with it.
    scheduler = None if "scheduler" in ds_cfg else functools.partial(warmup_cosine, train=cfg.train)
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=param_groups(model, cfg.train.weight_decay),
                                           config=ds_cfg, lr_scheduler=scheduler)

    # --- the run folder, resume ---------------------------------------------------------------------
    params = count_params(hf_config)
    if env.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(str(out_dir / "tokenizer"))
        (out_dir / "config.yaml").write_text(yaml.safe_dump(configlib.to_dict(cfg), sort_keys=False, allow_unicode=True))
        (out_dir / "ds_config.json").write_text(json.dumps(ds_cfg, indent=2) + "\n")
    extra = run_description(cfg, env, stage=stage, precision=precision, batch=batch, hf_config=hf_config,
                            params=params, data=data, ds_path=ds_path, tokenizer=tokenizer, extension=extension)
    checkpoints = Checkpoints(out_dir / "checkpoints", rank=env.rank, world_size=env.world_size,
                              keep_last=cfg.checkpoint.keep_last)
    state = TrainState(extra=extra)
    if resume_from is not None:
        state = TrainState.from_dict(checkpoints.load(engine, resume_from, zero_stage=stage))
        state.extra = extra
    peak, peak_source = device_peak(device, precision, override=cfg.log.peak_tflops,
                                    local_world_size=env.local_world_size)
    runlog = RunLog(out_dir, active=env.rank == 0, tensorboard=cfg.log.tensorboard,
                    wandb_project=cfg.log.wandb_project, config=configlib.to_dict(cfg),
                    total_steps=cfg.train.max_steps, start_step=state.step, progress=cfg.log.progress_bar)
    fpt = flops_per_token(hf_config, batch.seq_len)
    runlog.line(
        f"model: {params['total'] / 1e6:.2f}M parameters ({params['non_embedding'] / 1e6:.2f}M non-embedding), "
        f"vocab {hf_config.vocab_size}, context {batch.seq_len}, attention {attn}, {precision}, ZeRO-{stage}, "
        f"{env.world_size} rank(s) on {device_name(device)}"
    )
    runlog.line(
        f"batch: {batch.global_batch} sequences x {batch.seq_len} tokens = {batch.tokens_per_step:,} tokens/step "
        f"(micro {batch.micro} x accumulation {batch.accum} x {batch.world} rank(s)); data: {data.n_blocks:,} "
        f"blocks, {cfg.train.max_steps * batch.global_batch / data.n_blocks:.2f} epoch(s) over the run; "
        f"{len(val_texts)} validation docs"
    )
    runlog.line(f"MFU: {fpt / 1e6:.2f} MFLOP/token against a peak of "
                f"{f'{peak:.1f} TFLOP/s per rank' if peak else 'unknown'} ({peak_source})")
    if resume_from is not None:
        runlog.line(f"resumed from {resume_from} at step {state.step} ({state.tokens_seen:,} tokens seen)")
        runlog.write({"kind": "event", "event": "resume", "step": state.step, "checkpoint": str(resume_from)})

    # --- train ----------------------------------------------------------------------------------------
    trainer = Trainer(
        engine=engine, data=data, order=BlockOrder(data.n_blocks, cfg.train.seed), batch=batch, dist=env,
        device=device, state=state, checkpoints=checkpoints, runlog=runlog, tokenizer=tokenizer,
        val_texts=val_texts, max_steps=cfg.train.max_steps, save_interval=cfg.checkpoint.save_interval,
        eval_interval=cfg.log.eval_interval, log_interval=cfg.log.log_interval,
        eval_batch_size=cfg.log.eval_batch_size, zero_stage=stage, precision=precision,
        flops_per_token=fpt, peak_tflops=peak, on_step=on_step or signal_test_hook(env.rank),
        # installed until the process exits: a SIGTERM from the launcher after the loop must not kill a rank mid-save
        signals=cleanup.enter_context(StopSignal()), loss_fn=loss_fn,
    )
    try:
        stopped = trainer.train()
    finally:
        runlog.close()
        if env.rank == 0:  # the curve so far, also when stopped by a signal or a non-finite loss
            png = plot_loss_curve(out_dir / "metrics.jsonl", out_dir / "loss_curve.png",
                                  title=f"{extension.name if extension else 'Zero track'}: {out_dir.name}")
            if png:
                log.info("loss curve: %s", png)

    # --- the HF export ----------------------------------------------------------------------------------
    if own_group:  # a clean exit for every rank (an abort at exit was seen without this)
        dist.barrier()
        deepspeed.comm.destroy_process_group()  # also drops DeepSpeed's cached groups (a later run in this process)
    if stopped:
        log.info("stopped by signal %d at step %d; run the same command to continue", stopped, state.step)
        return 128 + stopped
    if cfg.export and env.rank == 0:
        from persianllama.train.export import export

        card = extension.card if extension else None
        hf_dir = export(out_dir, out_dir / "hf", overwrite=True, card=card)  # our own output, replaced by each finished run
        log.info("exported %s", hf_dir)
    return 0


def main(argv: list[str] | None = None, *, on_step=None) -> int:
    try:
        with contextlib.ExitStack() as cleanup:  # the run-folder lock is released however run() ends
            return run(argv, cleanup, on_step=on_step)
    except (UserError, ConfigError, FileNotFoundError) as e:
        print(f"pretrain: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if disk_full(e) is None:
            raise
        print(f"pretrain: error: {disk_full(e)}", file=sys.stderr)
        return 2



def script_main() -> None:
    """`scripts/pretrain.py` (also under the deepspeed launcher): logging per rank, then `main`."""
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    sys.exit(main())


if __name__ == "__main__":
    script_main()
