"""LoRA adaptation of a LLaMA base to Persian: the training run, top to bottom.

    python -m persianllama.lora train --config configs/lora_13b_8bit.yaml data.corpus=DIR ...
    scripts/lora_adapt.sh                       # the same, with environment-variable overrides

1. resolve and refuse (no weights read): device, precision, tokenizers, vocabulary extension,
   resume checkpoint (`checks.preflight`); print the memory plan (`plan`);
2. pack the corpus into blocks (the Zero track's packer and cache, held-out documents for validation);
3. load the base in 8-bit/4-bit/plain, extend and mean-initialise the vocabulary, prepare it for
   k-bit training with gradient checkpointing and input gradients, attach LoRA (`model.build`);
4. AdamW or AdamW8bit, linear warmup + cosine (the Zero track's schedule);
5. resume from the newest complete checkpoint (resume=auto), restoring adapter, optimizer,
   scheduler, RNG and data position, so the loss curve continues exactly;
6. train: gradient accumulation, clipping, validation bits-per-byte, a checkpoint every N steps and
   on SIGTERM/SIGINT (then exit 143/130: the run is not finished);
7. export the PEFT adapter with the tokenizer and a card, and check it holds what was trained.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from persianllama.atomic import write_json
from persianllama.config import to_dict
from persianllama.errors import NonFiniteLoss, UserError
from persianllama.lora.config import LoraConfig
from persianllama.run.lock import RunLock
from persianllama.run.metrics import RunLog, eval_line, plot_loss_curve
from persianllama.run.metrics import validate as validate_texts
from persianllama.run.signals import StopSignal

log = logging.getLogger("persianllama.lora")


def make_optimizer(named, cfg: LoraConfig):
    """AdamW (torch) or AdamW8bit (bitsandbytes); weight decay on matrices only."""
    t = cfg.train
    decay = [p for n, p in named if p.ndim >= 2]
    no_decay = [p for n, p in named if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": t.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    if t.optimizer == "adamw8bit":
        from persianllama.lora.model import quiet_bitsandbytes

        quiet_bitsandbytes()
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(groups, lr=t.lr, betas=(t.beta1, t.beta2), eps=t.eps,
                                   min_8bit_size=t.min_8bit_size)
    import torch

    return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2), eps=t.eps)


def autocast(setup):
    """The forward pass's autocast for the resolved run (`persianllama.run.device.autocast`)."""
    from persianllama.run.device import autocast as device_autocast

    return device_autocast(setup.device, setup.precision)


@contextlib.contextmanager
def _closing(runlog: RunLog, out: Path):
    """Close the metrics sinks and draw the loss curve however training ends (done, signal, non-finite loss)."""
    try:
        yield
    finally:
        runlog.close()
        plot_loss_curve(out / "metrics.jsonl", out / "loss_curve.png", title=f"LoRA track: {out.name}")


def validate(net, setup, texts: list[str], step: int = 0) -> dict | None:
    """The ``eval`` record of held-out `texts` under the run's autocast (`persianllama.run.metrics.validate`)."""
    import torch

    with autocast(setup), torch.no_grad():
        return validate_texts(net, setup.tok, texts, step=step, max_length=setup.cfg.train.seq_len,
                              batch_size=setup.cfg.log.eval_batch_size)


def run(cfg: LoraConfig) -> dict:
    """Train (or resume) the adapter described by `cfg`; returns a summary (see ``training_info.json``)."""
    with RunLock(cfg.out_dir):  # one process per run folder
        return _run(cfg)


def prepare_run(cfg: LoraConfig, *, require_corpus: bool = True, show_plan: bool = True,
                sequences_per_sample: int = 1):
    """Steps 1 of every adapter run (this track, SFT, DPO, w2s): resolve and refuse without loading weights, then
    the memory plan (printed unless `show_plan` is False, e.g. for the many small runs of one experiment; always
    saved to out_dir/memory_plan.json and enforced when asked). `sequences_per_sample`: sequences each sample puts
    in a micro-batch (DPO: 2, its chosen and rejected replies run together)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from dataclasses import replace

    from persianllama.lora import preflight as checks
    from persianllama.lora.plan import GIB, estimate, format_plan

    setup = checks.preflight(cfg, require_corpus=require_corpus)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sequences = sequences_per_sample * setup.batch.micro
    plan = estimate(replace(checks.plan_inputs(setup), micro_batch=sequences))
    log.log(logging.INFO if show_plan else logging.DEBUG, "%s", format_plan(plan))
    write_json(out / "memory_plan.json", plan.to_dict())
    if cfg.plan.enforce and setup.device == "cuda" and not plan.fits:
        raise UserError(f"the memory plan predicts {plan.total / GIB:.1f} GiB for {sequences} sequences per "
                        f"micro-batch, more than the {plan.inputs.device_memory / GIB:.0f} GiB of "
                        f"{plan.inputs.device_name}; lower train.micro_batch_size or train.seq_len, enable gradient "
                        "checkpointing or use 4-bit (or plan.enforce=false)")
    for note in setup.notes:
        log.info("%s", note)
    return setup, plan


def _run(cfg: LoraConfig) -> dict:
    setup, plan = prepare_run(cfg)

    # 2. data: the packed blocks every track shares
    from persianllama.data import BlockOrder, pack

    data = pack(cfg.data, setup.tok, block_size=cfg.train.seq_len, progress=cfg.log.progress_bar)
    order = BlockOrder(data.n_blocks, cfg.train.seed)
    val_texts = data.val_texts(cfg.log.eval_docs) if cfg.log.eval_docs else []
    if cfg.log.eval_docs and not val_texts:
        log.warning("no held-out documents (data.val_fraction=%s): no validation bits-per-byte", cfg.data.val_fraction)
    b = setup.batch

    def blocks(samples: int, micro: int):
        import torch

        x = torch.from_numpy(data.batch(order.micro_batch(samples, micro, 0, b.micro, 1)))
        return {"input_ids": x, "labels": x}, int(x.numel())

    return train_adapter(setup, plan, blocks, lambda net, step: validate(net, setup, val_texts, step))


def train_adapter(setup, plan, micro_batches: Callable[[int, int], tuple[dict, int]],
                  validation: Callable[[Any, int], dict | None], *, export_fn=None,
                  loss_fn: Callable[[Any, dict], tuple[Any, dict]] | None = None) -> dict:
    """Steps 3-7 of an adapter run, the same for every track that trains a PEFT adapter on one device.

    `micro_batches(samples_before_step, micro_step)` gives the model's keyword inputs (CPU tensors, with
    ``labels``) and the number of real tokens in them; `validation(net, step)` gives an ``eval`` record (or
    None). `loss_fn(net, inputs)`, for a track whose loss is not the model's own (DPO), gives the micro-batch
    loss and a dict of numbers that are averaged over the step's micro-batches into its ``train`` record;
    None: ``net(**inputs).loss``. Resume, stop signals, metrics, checkpoints and the adapter export are this
    function's."""
    cfg = setup.cfg
    out = Path(cfg.out_dir)
    # 3. model
    import torch

    from persianllama.lora import checkpoint as lora_ckpt
    from persianllama.lora.export import export
    from persianllama.lora.model import build, save_embedding_layers, trainable
    from persianllama.lora.plan import GIB

    torch.manual_seed(cfg.train.seed)
    t_load = time.perf_counter()
    net, ext_info = build(setup)
    named = trainable(net)
    n_train = sum(p.numel() for _, p in named)
    n_all = sum(p.numel() for p in net.parameters())
    log.info("model ready in %.1fs: %s trainable of %s parameters (%d tensors)", time.perf_counter() - t_load,
             f"{n_train:,}", f"{n_all:,}", len(named))

    # 4. optimizer and schedule
    from persianllama.run.schedule import warmup_cosine

    optimizer = make_optimizer(named, cfg)
    scheduler = warmup_cosine(optimizer, cfg.train)
    scaler = torch.amp.GradScaler(setup.device) if setup.precision == "fp16" else None
    params = [p for _, p in named]

    # 5. resume
    step = samples = tokens_seen = 0
    history: dict = {}
    if setup.resume_from is not None:
        state = lora_ckpt.load(setup.resume_from, net, optimizer, scheduler, scaler, setup.device)
        step, samples = int(state["step"]), int(state["samples"])
        tokens_seen = int(state.get("tokens", samples * cfg.train.seq_len))
        history = state.get("history", {})
        log.info("resumed from %s at step %d (%s samples seen)", setup.resume_from, step, f"{samples:,}")
    runlog = RunLog(out, active=True, tensorboard=cfg.log.tensorboard, wandb_project=cfg.log.wandb_project,
                    config=to_dict(cfg), total_steps=cfg.train.max_steps, start_step=step, progress=cfg.log.progress_bar)
    if setup.resume_from is not None:
        runlog.write({"kind": "event", "event": "resume", "step": step, "checkpoint": str(setup.resume_from)})
    identity, settings = setup.identity(), setup.settings()
    ckpt_root = out / "checkpoints"
    save_layers = save_embedding_layers(setup)
    b = setup.batch
    if setup.device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def trainer_state() -> dict:
        return {"step": step, "samples": samples, "tokens": tokens_seen, "identity": identity,
                "settings": settings, "history": history, "config": to_dict(cfg),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S")}

    def checkpoint() -> Path:
        path = lora_ckpt.save(ckpt_root, net, optimizer, scheduler, scaler, trainer_state(),
                              save_embedding_layers=save_layers, keep_last=cfg.checkpoint.keep_last)
        log.info("checkpoint %s", path)
        return path

    def run_validation() -> None:
        rec = validation(net, step)
        if rec is None:
            return
        history.setdefault("val", []).append({k: v for k, v in rec.items() if k != "kind"})
        runlog.write(rec)
        runlog.line(eval_line(rec))

    # 6. train
    net.train()
    stop_code = 0
    with StopSignal() as stop, _closing(runlog, out):
        if step == 0 and cfg.log.eval_at_start:
            run_validation()
        while step < cfg.train.max_steps:
            t0 = time.perf_counter()
            loss_sum = torch.zeros((), device=setup.device)
            step_tokens = 0
            extras: dict[str, float] = {}
            for micro in range(b.accum):
                inputs, n_tokens = micro_batches(samples, micro)
                inputs = {k: v.to(setup.device) for k, v in inputs.items()}
                step_tokens += n_tokens
                with autocast(setup):
                    if loss_fn is None:
                        loss = net(**inputs).loss
                    else:
                        loss, more = loss_fn(net, inputs)
                        for k, v in more.items():
                            extras[k] = extras.get(k, 0.0) + float(v) / b.accum
                scaled = loss / b.accum
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
                loss_sum += loss.detach().float()
            if scaler is not None:
                scaler.unscale_(optimizer)
            clip = cfg.train.grad_clip if cfg.train.grad_clip > 0 else float("inf")
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
            lr = optimizer.param_groups[0]["lr"]
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            samples += b.global_batch
            loss_val = float(loss_sum.item()) / b.accum
            if not math.isfinite(loss_val):  # the same rule in every track
                raise NonFiniteLoss(step, loss_val, lr)
            dt = time.perf_counter() - t0
            tps = step_tokens / dt
            tokens_seen += step_tokens
            runlog.write({"kind": "train", "step": step, "loss": loss_val, "lr": lr, "grad_norm": grad_norm,
                          "tokens_per_s": round(tps, 1), "tokens_seen": tokens_seen,
                          "step_seconds": round(dt, 4), "samples": samples, **extras})
            runlog.progress(step, loss=f"{loss_val:.4f}", lr=f"{lr:.2e}")
            history["last_loss"] = loss_val
            if step % cfg.log.log_interval == 0 or step == 1 or step == cfg.train.max_steps:
                mem = f" | {torch.cuda.max_memory_allocated() / GIB:.2f} GiB" if setup.device == "cuda" else ""
                runlog.line(f"step {step}/{cfg.train.max_steps} | loss {loss_val:.4f} | lr {lr:.3g} | grad "
                            f"{grad_norm:.3f} | {tps:,.0f} tok/s{mem}")
            if cfg.log.eval_interval and step % cfg.log.eval_interval == 0 and step < cfg.train.max_steps:
                run_validation()
            if stop.requested:
                checkpoint()
                stop_code = stop.exit_code
                log.warning("stopped at step %d by %s; run the same command again to resume",
                            step, signal.Signals(stop.signum).name)
                break
            if step % cfg.checkpoint.save_interval == 0 and step < cfg.train.max_steps:
                checkpoint()
        else:
            if not history.get("val") or history["val"][-1]["step"] != step:
                run_validation()
            checkpoint()

    summary = {"step": step, "samples": samples, "tokens": tokens_seen, "finished": stop_code == 0,
               "exit_code": stop_code, "trainable_parameters": n_train, "parameters": n_all,
               "val": (history.get("val") or [None])[-1],
               "val_start": next((v for v in history.get("val", []) if v["step"] == 0), None),
               "last_loss": history.get("last_loss"), "memory_plan_bytes": int(plan.total),
               "memory_plan_allocator_bytes": int(plan.allocator_peak), "device": setup.device,
               "precision": setup.precision, "vocabulary": ext_info, "config": to_dict(cfg)}
    if setup.device == "cuda":
        measured = torch.cuda.max_memory_allocated()
        summary["measured_peak_bytes"] = int(measured)
        summary["plan_error"] = round(plan.allocator_peak / measured - 1, 4)
        log.info("peak memory: predicted %.2f GiB, measured %.2f GiB (%+.1f%%)", plan.allocator_peak / GIB,
                 measured / GIB, 100 * summary["plan_error"])
    if stop_code:
        return summary

    # 7. the adapter
    info = (export_fn or export)(setup, net, out / "adapter", summary, save_embedding_layers=save_layers)
    summary["adapter"] = str(out / "adapter")
    log.info("adapter written to %s (%s, %d LoRA matrix pairs%s)", out / "adapter", f"{info['bytes']:,} bytes",
             info["lora_A"], f", embeddings {setup.embeddings}" if setup.embeddings != "none" else "")
    return summary
