"""The pretraining loop around a DeepSpeed engine: steps, validation, checkpoints, stop signals.

One optimizer step is ``accumulation`` micro steps of ``engine(input_ids, labels) -> backward ->
step`` (DeepSpeed applies the update at the accumulation boundary). After each optimizer step the
ranks exchange one small tensor: the mean loss and whether any rank was asked to stop. So every
rank stops after the same step, even when SIGTERM reached only one of them (a preempted node) or
reached them at different times (the launcher forwards signals one process after another).
"""

from __future__ import annotations

import logging
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from persianllama.data.packed import BlockOrder, PackedData
from persianllama.errors import NonFiniteLoss
from persianllama.run.batch import Batch
from persianllama.run.dist import DistEnv
from persianllama.run.metrics import RunLog, eval_line, fmt_count, fmt_duration, mfu, validate
from persianllama.run.signals import StopSignal
from persianllama.train.checkpoint import Checkpoints

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    """What a checkpoint must remember besides DeepSpeed's own state."""

    step: int = 0
    samples_seen: int = 0
    """Sequences consumed by all ranks: the data position (see `BlockOrder`)."""
    tokens_seen: int = 0
    last_eval: dict | None = None
    last_eval_step: int | None = None
    extra: dict = field(default_factory=dict)
    """Run description stored with each checkpoint (model config, data, precision...) for export and cards."""

    def to_dict(self) -> dict:
        d = asdict(self)
        extra = d.pop("extra")
        return {**extra, **d}

    @classmethod
    def from_dict(cls, d: dict) -> TrainState:
        return cls(step=int(d["step"]), samples_seen=int(d["samples_seen"]), tokens_seen=int(d["tokens_seen"]),
                   last_eval=d.get("last_eval"), last_eval_step=d.get("last_eval_step"))


class Trainer:
    def __init__(self, *, engine, data: PackedData, order: BlockOrder, batch: Batch, dist: DistEnv, device: str,
                 state: TrainState, checkpoints: Checkpoints, runlog: RunLog, tokenizer, val_texts: list[str],
                 max_steps: int, save_interval: int, eval_interval: int, log_interval: int, eval_batch_size: int,
                 zero_stage: int, precision: str, flops_per_token: float, peak_tflops: float | None,
                 on_step: Callable[[TrainState], None] | None = None, signals: StopSignal | None = None,
                 micro_batches: Callable[[int, int, int], tuple[dict, int]] | None = None,
                 validation: Callable[[int], dict | None] | None = None,
                 loss_fn: Callable[[object, dict], tuple[object, dict]] | None = None):
        """`micro_batches(samples_seen, micro_step, rank)` -> (the model's keyword inputs with ``labels``, real
        tokens in them): default, this rank's share of the packed blocks. `validation(step)` -> an ``eval``
        record: default, loss and bits-per-byte of `val_texts`. (Instruction tuning with method=full passes both.)
        `loss_fn(engine, inputs)` -> (the micro-batch loss, named parts such as ``loss_ce``/``loss_kd``), for a
        track whose loss is not the model's own (distillation); the parts are averaged over the step's
        micro-batches and the ranks into its ``train`` record. With it, the default micro-batches also carry
        ``block_index`` (which packed blocks: a teacher cache is looked up by it); `loss_fn` removes it."""
        self.engine = engine
        self.data = data
        self.order = order
        self.batch = batch
        self.dist = dist
        self.device = device
        self.state = state
        self.checkpoints = checkpoints
        self.runlog = runlog
        self.tokenizer = tokenizer
        self.val_texts = val_texts
        self.max_steps = max_steps
        self.save_interval = save_interval
        self.eval_interval = eval_interval
        self.log_interval = log_interval
        self.eval_batch_size = eval_batch_size
        self.zero_stage = zero_stage
        self.flops_per_token = flops_per_token
        self.peak_tflops = peak_tflops
        self.on_step = on_step
        # Given by the caller when it keeps the handler installed past the loop (until the process exits).
        self._own_signals = signals is None
        self.signals = signals or StopSignal()
        # DeepSpeed reports the gradient norm from its ZeRO and mixed-precision optimizers; for plain
        # fp32 without ZeRO we measure it ourselves before the step (grads are already all-reduced).
        self.manual_grad_norm = zero_stage == 0 and precision == "fp32"
        self.step_times: deque[float] = deque(maxlen=50)
        self.steps_run = 0
        self.micro_batches = micro_batches or self._block_batch
        self.validation = validation
        self.loss_fn = loss_fn
        self.last_parts: dict[str, float] = {}
        self.last_step_tokens = batch.tokens_per_step

    # --- one optimizer step -----------------------------------------------------------------------

    def _block_batch(self, samples_seen: int, micro_step: int, rank: int) -> tuple[dict, int]:
        import torch

        idx = self.order.micro_batch(samples_seen, micro_step, rank, self.batch.micro, self.batch.world)
        x = torch.from_numpy(self.data.batch(idx))
        inputs = {"input_ids": x, "labels": x}
        if self.loss_fn is not None:
            inputs["block_index"] = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        return inputs, int(x.numel())

    def _micro_batch(self, micro_step: int) -> tuple[dict, int]:
        inputs, n_tokens = self.micro_batches(self.state.samples_seen, micro_step, self.dist.rank)
        if self.device == "cuda":
            inputs = {k: v.pin_memory().to(self.engine.device, non_blocking=True) for k, v in inputs.items()}
        else:
            inputs = {k: v.to(self.engine.device) for k, v in inputs.items()}
        return inputs, n_tokens

    def _grad_norm(self) -> float:
        import torch

        grads = [p.grad for p in self.engine.module.parameters() if p.grad is not None]
        if not grads:
            return float("nan")
        return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])))

    def optimizer_step(self) -> tuple[float, float, float | None, bool]:
        """Run one optimizer step; return (mean loss over ranks, its lr, grad norm, stop requested by any rank)."""
        import torch
        import torch.distributed as dist

        engine = self.engine
        lr = engine.get_lr()[0]  # after the step the scheduler has already moved on to the next one
        loss_sum = torch.zeros((), device=engine.device)
        tokens = 0
        manual_norm = None
        parts: dict[str, torch.Tensor] = {}
        for m in range(self.batch.accum):
            inputs, n_tokens = self._micro_batch(m)
            tokens += n_tokens
            if self.loss_fn is None:
                loss = engine(**inputs).loss
            else:
                loss, more = self.loss_fn(engine, inputs)
                for k, v in more.items():
                    parts[k] = parts.get(k, 0.0) + torch.as_tensor(v, dtype=torch.float32).detach().to(
                        loss_sum.device) / self.batch.accum
            engine.backward(loss)
            loss_sum += loss.detach().float()
            if self.manual_grad_norm and m == self.batch.accum - 1:
                manual_norm = self._grad_norm()
            engine.step()
        self.state.step += 1
        self.state.samples_seen += self.batch.global_batch
        names = sorted(parts)  # the same keys on every rank: the loss_fn returns the same parts every step
        shared = torch.stack([loss_sum / self.batch.accum,
                              torch.tensor(float(self.signals.signum is not None), device=loss_sum.device),
                              torch.tensor(float(tokens), device=loss_sum.device),
                              *(parts[k].reshape(()) for k in names)])
        if self.batch.world > 1:
            dist.all_reduce(shared)
        loss_value, stop, all_tokens, *part_values = shared.tolist()
        loss_value, stop = loss_value / self.batch.world, stop / self.batch.world
        self.last_parts = {k: v / self.batch.world for k, v in zip(names, part_values)}
        self.last_step_tokens = int(all_tokens)
        self.state.tokens_seen += self.last_step_tokens
        norm = engine.get_global_grad_norm()
        if norm is None:
            norm = manual_norm
        elif hasattr(norm, "item"):
            norm = norm.item()
        return loss_value, lr, norm, stop > 0

    # --- validation ---------------------------------------------------------------------------------

    def evaluate(self) -> dict | None:
        """Loss and bits-per-byte on the held-out documents (`persianllama.run.metrics.validate`).

        Under ZeRO 0-2 each rank scores its share of the documents and the sums are added; under
        ZeRO-3 every forward pass is a collective over the parameter shards, so every rank scores
        all documents (the same number of forward passes everywhere).
        """
        if self.validation is not None:
            record = self.validation(self.state.step)
            if record is None:
                return None
            return self._record_eval(record)
        if not self.val_texts:
            return None
        import torch.distributed as dist

        split = self.zero_stage < 3 and self.batch.world > 1
        texts = self.val_texts[self.dist.rank::self.batch.world] if split else self.val_texts

        def add_over_ranks(sums):
            sums = sums.to(self.engine.device)
            dist.all_reduce(sums)
            return sums.cpu()

        record = validate(self.engine.module, self.tokenizer, texts, step=self.state.step,
                          max_length=self.batch.seq_len, batch_size=self.eval_batch_size,
                          reduce=add_over_ranks if split else None)
        if record is None:
            return None
        return self._record_eval(record)

    def _record_eval(self, record: dict) -> dict:
        result = {k: v for k, v in record.items() if k not in ("kind", "step")}
        self.state.last_eval = result
        self.state.last_eval_step = self.state.step
        self.runlog.write(record)
        self.runlog.line(eval_line(record))
        return result

    # --- the loop -------------------------------------------------------------------------------------

    def save(self) -> Path:
        start = time.perf_counter()
        path = self.checkpoints.save(self.engine, self.state.to_dict())
        self.runlog.line(f"checkpoint {path} ({time.perf_counter() - start:.1f}s)")
        return path

    def _report(self, loss: float, lr: float, norm: float | None, seconds: float) -> None:
        s = self.state
        self.steps_run += 1
        if self.steps_run > 1:  # this process's first step carries one-off set-up costs
            self.step_times.append(seconds)
        avg = sum(self.step_times) / len(self.step_times) if self.step_times else seconds
        tok_s = self.last_step_tokens / seconds
        avg_tok_s = self.last_step_tokens / avg
        util = mfu(self.flops_per_token, avg_tok_s, self.peak_tflops, self.batch.world)
        record = {"kind": "train", "step": s.step, "loss": loss, "lr": lr, "grad_norm": norm,
                  "tokens_per_s": tok_s, "mfu": util, "tokens_seen": s.tokens_seen,
                  "epoch": self.order.epoch_of(s.samples_seen), "step_seconds": seconds, **self.last_parts}
        self.runlog.write(record)
        eta = avg * (self.max_steps - s.step)
        self.runlog.progress(s.step, loss=f"{loss:.4f}", lr=f"{lr:.2e}")
        if s.step % self.log_interval == 0 or s.step == self.max_steps or s.step == 1:
            norm_txt = f"{norm:.3f}" if norm is not None else "n/a"
            mfu_txt = f"{100 * util:.1f}%" if util is not None else "n/a"
            parts_txt = "".join(f" | {k} {v:.4f}" for k, v in self.last_parts.items())
            self.runlog.line(
                f"step {s.step}/{self.max_steps} | loss {loss:.4f}{parts_txt} | lr {lr:.3e} | grad norm {norm_txt} | "
                f"{fmt_count(avg_tok_s)} tok/s | MFU {mfu_txt} | tokens {fmt_count(s.tokens_seen)} | "
                f"epoch {record['epoch']:.2f} | ETA {fmt_duration(eta)}"
            )

    def train(self) -> int | None:
        """Train to `max_steps`; return None when done, or the signal number that stopped it early."""
        if self._own_signals:
            self.signals.install()
        try:
            if self.state.step >= self.max_steps:
                self.runlog.line(f"already at step {self.state.step} of {self.max_steps}: nothing to train")
                return None
            while self.state.step < self.max_steps:
                start = time.perf_counter()
                loss, lr, norm, stop = self.optimizer_step()
                self._report(loss, lr, norm, time.perf_counter() - start)
                if not np.isfinite(loss):  # the same rule in every track: save nothing broken, say what to do
                    raise NonFiniteLoss(self.state.step, loss, lr)
                if self.on_step is not None:
                    self.on_step(self.state)
                step = self.state.step
                if self.eval_interval and step % self.eval_interval == 0 and step < self.max_steps and not stop:
                    self.evaluate()
                if stop:
                    self.save()
                    return self.signals.signum or int(signal.SIGTERM)  # another rank was signalled
                if step % self.save_interval == 0 and step < self.max_steps:
                    self.save()
            self.evaluate()
            self.save()
            return None
        finally:
            if self._own_signals:
                self.signals.restore()
