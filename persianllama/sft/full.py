"""Instruction tuning with every weight trained (`method=full`): DeepSpeed ZeRO on the Zero track's engine loop.

    deepspeed --num_gpus 8 --module persianllama.sft.full --base MODEL --data FILE --output DIR \\
        --recipe configs/sft_tiny.yaml method=full ds_config=ds_configs/zero3.json
    persianllama sft --base MODEL --data FILE --output DIR method=full      # one process, no launcher

The same data path as method=lora (records checked, chat template, assistant-only labels, packing without
cross-talk) feeds `persianllama.train.loop.Trainer` (the Zero track's DeepSpeed loop: gradient accumulation,
ranks that stop together, checkpoints with manifests, exact resume). Each rank takes its share of every step's
packed rows; validation is the assistant-token loss on held-out conversations, added over ranks. The run ends
with `DIR/hf` (safetensors, the tokenizer with its chat template, a model card) from the fp32 master weights.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from pathlib import Path

from persianllama.config import to_dict
from persianllama.errors import UserError
from persianllama.sft.config import SftConfig

log = logging.getLogger("persianllama.sft")


def identity(hf_config, tokenizer) -> dict:
    from persianllama.data.packing import tokenizer_fingerprint

    return {"model.hidden_size": hf_config.hidden_size, "model.num_layers": hf_config.num_hidden_layers,
            "model.vocab_size": hf_config.vocab_size, "tokenizer": tokenizer_fingerprint(tokenizer)}


def changeable(cfg: SftConfig) -> dict:
    t = cfg.train
    return {"train.lr": t.lr, "train.min_lr": t.min_lr, "train.warmup_steps": t.warmup_steps,
            "train.max_steps": t.max_steps, "train.seed": t.seed, "train.seq_len": t.seq_len,
            "data.files": list(cfg.data.files), "data.val_fraction": cfg.data.val_fraction}


def run_full(cfg: SftConfig, *, cleanup: contextlib.ExitStack | None = None, local_rank: int | None = None) -> dict:
    with contextlib.ExitStack() as stack:
        return _run(cfg, cleanup or stack, local_rank)


def _run(cfg: SftConfig, cleanup: contextlib.ExitStack, local_rank: int | None) -> dict:
    from persianllama import hub
    from persianllama.data.packed import BlockOrder
    from persianllama.run.batch import batch_arithmetic
    from persianllama.run.device import choose_precision, device_name, device_type, free_cores
    from persianllama.run.dist import dist_env
    from persianllama.run.lock import RunLock
    from persianllama.run.metrics import RunLog, device_peak, plot_loss_curve
    from persianllama.run.outputs import resolve_path
    from persianllama.run.resume import check_compatible
    from persianllama.run.schedule import warmup_cosine
    from persianllama.run.signals import StopSignal
    from persianllama.sft import data as sft_data
    from persianllama.sft.packing import collate
    from persianllama.sft.train import prepare_data, score
    from persianllama.train.checkpoint import Checkpoints, check_stage
    from persianllama.train.ds_config import fill_ds_config, load_ds_config, zero_stage
    from persianllama.train.loop import Trainer, TrainState
    from persianllama.train.model import build_model, flops_per_token, param_groups

    # --- checks before any long work --------------------------------------------------------------------
    if not cfg.model.base:
        raise UserError("no base model: pass --base MODEL (an HF directory or hub id)")
    if not cfg.data.files:
        raise UserError("no instruction data: pass --data FILE_OR_HUB_ID (or data.files=[...])")
    if cfg.model.quantization != "none":
        raise UserError(f"method=full trains every weight, which 8-bit/4-bit storage cannot (model.quantization="
                        f"{cfg.model.quantization}); use model.quantization=none, or method=lora")
    if cfg.lora.init_adapter:
        raise UserError("method=full starts from a full model: merge the adapter first (`persianllama merge`) and "
                        "pass the merged folder as --base")
    env = dist_env(local_rank)
    device = device_type(cfg.train.device)
    if device == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        if "OMP_NUM_THREADS" not in os.environ:
            import torch

            torch.set_num_threads(max(1, free_cores() // env.local_world_size))
    precision = choose_precision(cfg.train.precision, device)
    batch = batch_arithmetic(cfg.train, env.world_size)
    convs, report = sft_data.read_conversations(cfg.data.files, fmt=cfg.data.format, split=cfg.data.hf_split,
                                                normalize=cfg.data.normalize, system_prompt=cfg.data.system_prompt)
    from transformers import AutoConfig, AutoTokenizer

    hf_config = hub.from_pretrained(AutoConfig.from_pretrained, cfg.model.base, "config", context=" (model.base)")
    tok = hub.from_pretrained(AutoTokenizer.from_pretrained, cfg.model.tokenizer or cfg.model.base, "tokenizer")
    if len(tok) > hf_config.vocab_size:
        raise UserError(f"vocabulary mismatch: the tokenizer has {len(tok)} tokens but {cfg.model.base} has "
                        f"{hf_config.vocab_size} embedding rows; use the model's own tokenizer")
    positions = int(getattr(hf_config, "max_position_embeddings", 0) or 0)
    if positions and cfg.train.seq_len > positions:
        raise UserError(f"train.seq_len={cfg.train.seq_len} is longer than the base model's context ({positions} "
                        "positions); lower train.seq_len")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    ds_path = resolve_path(cfg.ds_config, what="DeepSpeed config")
    ds_cfg = fill_ds_config(load_ds_config(ds_path), train=cfg.train, batch=batch, precision=precision,
                            hidden_size=hf_config.hidden_size, source=str(ds_path))
    stage = zero_stage(ds_cfg)
    out = Path(cfg.out_dir)
    cleanup.enter_context(RunLock(out, active=env.rank == 0))
    from persianllama.train.pretrain import choose_resume

    resume = choose_resume(cfg.checkpoint.resume, out / "checkpoints", cfg.checkpoint.verify, env.rank)
    if resume is not None:
        check_stage(resume[0], resume[1], world_size=env.world_size, zero_stage=stage)
        check_compatible(resume[0], resume[1], identity=identity(hf_config, tok), settings=changeable(cfg))
    train, val, template_source = prepare_data(cfg, tok, convs, report, batch.global_batch, write=env.rank == 0)

    # --- distributed, model, engine ---------------------------------------------------------------------
    import deepspeed
    import torch
    import torch.distributed as dist

    own_group = not dist.is_initialized()
    deepspeed.init_distributed(dist_backend="gloo" if device == "cpu" else None)
    torch.manual_seed(cfg.train.seed)
    hf_config.use_cache = False
    hf_config._attn_implementation = "sdpa"
    model = build_model(hf_config, init_from=cfg.model.base, zero3_init_config=ds_cfg if stage == 3 else None,
                        activation_checkpointing=cfg.model.gradient_checkpointing)
    engine, _, _, _ = deepspeed.initialize(
        model=model, model_parameters=param_groups(model, cfg.train.weight_decay), config=ds_cfg,
        lr_scheduler=None if "scheduler" in ds_cfg else functools.partial(warmup_cosine, train=cfg.train))
    if env.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        tok.save_pretrained(str(out / "tokenizer"))  # with its chat template: the export copies it
    extra = {"world_size": env.world_size, "zero_stage": stage, "precision": precision,
             "global_batch_size": batch.global_batch, "seq_len": batch.seq_len, "lr": cfg.train.lr,
             "min_lr": cfg.train.min_lr, "warmup_steps": cfg.train.warmup_steps, "max_steps": cfg.train.max_steps,
             "model_config": {k: v for k, v in hf_config.to_dict().items() if not k.startswith("_")},
             "tokenizer_dir": str((out / "tokenizer").resolve()), "data": {"corpus": list(cfg.data.files)},
             "identity": identity(hf_config, tok), "settings": changeable(cfg), "method": "full",
             "base": cfg.model.base, "chat_template": template_source}
    checkpoints = Checkpoints(out / "checkpoints", rank=env.rank, world_size=env.world_size,
                              keep_last=cfg.checkpoint.keep_last)
    state = TrainState(extra=extra)
    if resume is not None:
        state = TrainState.from_dict(checkpoints.load(engine, resume[0], zero_stage=stage))
        state.extra = extra
    peak, _ = device_peak(device, precision, override=None, local_world_size=env.local_world_size)
    runlog = RunLog(out, active=env.rank == 0, tensorboard=cfg.log.tensorboard, wandb_project=cfg.log.wandb_project,
                    config=to_dict(cfg), total_steps=cfg.train.max_steps, start_step=state.step,
                    progress=cfg.log.progress_bar)
    runlog.line(f"sft method=full: {sum(p.numel() for p in model.parameters()):,} parameters trained, {precision}, "
                f"ZeRO-{stage}, {env.world_size} rank(s) on {device_name(device)}; {len(train.rows)} packed rows")
    if resume is not None:
        runlog.write({"kind": "event", "event": "resume", "step": state.step, "checkpoint": str(resume[0])})
    order = BlockOrder(len(train.rows), cfg.train.seed)
    pad = tok.pad_token_id

    def micro_batches(samples: int, micro: int, rank: int):
        return collate(train, order.micro_batch(samples, micro, rank, batch.micro, batch.world), pad)

    def validation(step: int) -> dict | None:
        if not val.rows:
            return None
        split = stage < 3 and env.world_size > 1  # ZeRO-3 forwards are collective: every rank scores every row
        rows = list(range(len(val.rows)))[env.rank::env.world_size] if split else None

        def add_over_ranks(sums: list[float]) -> list[float]:
            t = torch.tensor(sums, dtype=torch.float64, device=engine.device)
            dist.all_reduce(t)
            return t.cpu().tolist()

        return score(engine.module, tok, val, cfg.log.eval_batch_size, step=step, device=str(engine.device),
                     precision="fp32" if device == "cpu" else precision, rows=rows,
                     reduce=add_over_ranks if split else None)

    trainer = Trainer(
        engine=engine, data=None, order=order, batch=batch, dist=env, device=device, state=state,
        checkpoints=checkpoints, runlog=runlog, tokenizer=tok, val_texts=[], max_steps=cfg.train.max_steps,
        save_interval=cfg.checkpoint.save_interval, eval_interval=cfg.log.eval_interval,
        log_interval=cfg.log.log_interval, eval_batch_size=cfg.log.eval_batch_size, zero_stage=stage,
        precision=precision, flops_per_token=flops_per_token(hf_config, batch.seq_len), peak_tflops=peak,
        signals=cleanup.enter_context(StopSignal()), micro_batches=micro_batches, validation=validation)
    try:
        stopped = trainer.train()
    finally:
        runlog.close()
        if env.rank == 0:
            plot_loss_curve(out / "metrics.jsonl", out / "loss_curve.png", title=f"SFT (full): {out.name}")
    if own_group:
        dist.barrier()
        deepspeed.comm.destroy_process_group()  # also drops DeepSpeed's cached groups (a later run in this process)
    summary = {"step": state.step, "finished": not stopped, "exit_code": 128 + stopped if stopped else 0,
               "last_loss": None, "val": state.last_eval, "method": "full", "data": report.to_dict()}
    if stopped:
        return summary
    summary["hf"] = summary["adapter"] = str(out / "hf")
    if env.rank == 0:  # the export reads the merged fp32 weights of every rank's shard from the checkpoint
        from persianllama.train.export import export

        export(out, out / "hf", overwrite=True, card=functools.partial(sft_card, cfg=cfg))
    if env.rank == 0:  # one writer of the summary, as of the export
        from persianllama.atomic import write_json
        from persianllama.run.metrics import read_metrics

        train_records, _ = read_metrics(out / "metrics.jsonl")
        if train_records:
            summary["last_loss"] = train_records[max(train_records)]["loss"]
        write_json(out / "sft_summary.json", summary)
    return summary


def sft_card(state: dict, config, precision: str, name: str, *, cfg: SftConfig) -> str:
    ev = state.get("last_eval") or {}
    return "\n".join([
        "---", "language:", "- fa", "library_name: transformers", "pipeline_tag: text-generation",
        "tags:", "- persian", "- persianllama", "- instruction-tuning", "---", "",
        f"# {name}", "",
        f"`{cfg.model.base}` instruction-tuned with every weight trained (`persianllama sft method=full`, DeepSpeed "
        f"ZeRO-{state.get('zero_stage')}, {state.get('world_size')} rank(s), {state.get('precision')}).", "",
        f"- data: {', '.join(cfg.data.files)}; loss on the assistant's tokens ({cfg.data.train_on}), conversations "
        f"packed into {state.get('seq_len')}-token rows without cross-talk",
        f"- chat template: {state.get('chat_template')}, saved with the tokenizer",
        f"- {state.get('step')} steps, lr {state.get('lr')} (cosine to {state.get('min_lr')})",
        f"- held-out assistant-token loss: {ev['loss']:.4f}" if ev.get("loss") is not None else "- not validated",
        "", "## Use", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
        f'tok = AutoTokenizer.from_pretrained("{name}")', f'model = AutoModelForCausalLM.from_pretrained("{name}")',
        'ids = tok.apply_chat_template([{"role": "user", "content": "سلام"}], add_generation_prompt=True, '
        'return_tensors="pt", return_dict=True)', "print(tok.decode(model.generate(**ids, max_new_tokens=64)[0]))",
        "```", ""])


def main(argv: list[str] | None = None) -> int:
    """`deepspeed --module persianllama.sft.full ARGS`: the `persianllama sft` arguments, under a launcher."""
    import argparse

    from persianllama.cli import dispatch
    from persianllama.sft import cli as sft_cli

    parser = argparse.ArgumentParser(prog="persianllama.sft.full")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command")
    sft_cli.register(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "sft":
        argv = ["sft", *argv]
    args, rest = parser.parse_known_args(argv)
    if rest:  # `--local_rank=N` inserted by the launcher after our subcommand
        args = parser.parse_args([a for a in argv if not a.startswith("--local_rank")])
    args.overrides = [*args.overrides, "method=full"] if not any(o.startswith("method=") for o in args.overrides) \
        else args.overrides
    return dispatch(parser, args)


if __name__ == "__main__":
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    sys.exit(main())
