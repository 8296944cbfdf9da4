"""What a run reports, the same way in every track: one record schema, one writer, one loss curve.

Every record goes to ``OUT/metrics.jsonl`` (one JSON object per line: the plain-text source of truth), to
TensorBoard (``OUT/tensorboard``) unless disabled, and to Weights & Biases when a project is set. The
schema (`TRAIN_KEYS`, `EVAL_KEYS`):

- ``{"kind": "train", "step", "loss", "lr", "grad_norm", "tokens_per_s", "tokens_seen", "step_seconds", ...}``
  one per optimizer step (a track may add keys: ``mfu``, ``epoch``, or its loss terms);
- ``{"kind": "eval", "step", "loss", "bits_per_byte", "token_perplexity", "word_perplexity", "tokens", "bytes",
  "documents", "seconds"}`` one per validation on held-out documents;
- ``{"kind": "event", "step", "event": "resume" | "stop" | ...}``.

On resume from step N the file keeps the records up to N and drops the later ones (they are trained
again), so the curve never holds a step twice; a fresh run starts an empty file. At the end
``OUT/loss_curve.png`` plots training and validation loss and validation bits-per-byte.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from persianllama.atomic import write_text
from persianllama.errors import UserError

log = logging.getLogger("persianllama.run")

TRAIN_KEYS = ("step", "loss", "lr", "grad_norm", "tokens_per_s", "tokens_seen", "step_seconds")
EVAL_KEYS = ("step", "loss", "bits_per_byte", "token_perplexity", "word_perplexity", "tokens", "bytes", "documents",
             "seconds")
_REQUIRED = {"train": TRAIN_KEYS, "eval": EVAL_KEYS, "event": ("step", "event")}

# Dense (no sparsity) peak TFLOP/s per GPU, from NVIDIA's datasheets: (bf16, fp16, fp32 without TF32).
# Matched in order against torch.cuda.get_device_name(); the first pattern that matches wins.
GPU_PEAKS: list[tuple[str, tuple[float | None, float | None, float]]] = [
    (r"H200", (989.4, 989.4, 66.9)),
    (r"H100.*PCIe", (756.0, 756.0, 51.2)),
    (r"H100.*NVL", (835.0, 835.0, 60.0)),
    (r"H100|GH200", (989.4, 989.4, 66.9)),
    (r"A100|A800", (312.0, 312.0, 19.5)),
    (r"L40S", (362.1, 362.1, 91.6)),
    (r"L4\b", (121.0, 121.0, 30.3)),
    (r"A10\b", (125.0, 125.0, 31.2)),
    (r"T4\b", (None, 65.0, 8.1)),
    (r"V100", (None, 125.0, 15.7)),
]


def gpu_peak_tflops(name: str, precision: str) -> float | None:
    col = {"bf16": 0, "fp16": 1, "fp32": 2}[precision]
    for pattern, peaks in GPU_PEAKS:
        if re.search(pattern, name):
            return peaks[col]
    return None


def _cpu_ghz() -> float | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            mhz = [float(line.split(":")[1]) for line in fh if line.startswith("cpu MHz")]
        return max(mhz) / 1000 if mhz else None
    except (OSError, ValueError):
        return None


def cpu_peak_tflops(precision: str, cores: int) -> tuple[float | None, str]:
    """Rough x86 peak: cores x clock x FLOPs per cycle (two FMA units per core assumed)."""
    from persianllama.run.device import cpu_flags

    flags, ghz = cpu_flags(), _cpu_ghz()
    if not ghz:
        return None, "CPU clock unknown"
    if precision == "bf16" and "amx_bf16" in flags:
        per_cycle, isa = 1024, "AMX-BF16"
    elif precision == "bf16" and "avx512_bf16" in flags:
        per_cycle, isa = 128, "AVX512-BF16"
    elif "avx512f" in flags:
        per_cycle, isa = 64, "AVX-512 FMA"
    elif "avx2" in flags and "fma" in flags:
        per_cycle, isa = 32, "AVX2 FMA"
    else:
        per_cycle, isa = 8, "SSE"
    peak = cores * ghz * per_cycle / 1000
    return peak, f"estimate: {cores} core(s) x {ghz:.2f} GHz x {per_cycle} FLOP/cycle ({isa})"


def device_peak(device: str, precision: str, *, override: float | None, local_world_size: int) -> tuple[float | None, str]:
    """Peak TFLOP/s of one rank's device and where the number comes from (said once in the log)."""
    if override:
        return override, "log.peak_tflops"
    if device == "cuda":
        import torch

        name = torch.cuda.get_device_name()
        peak = gpu_peak_tflops(name, precision)
        if peak is None:
            return None, f"{name} not in the peak table; set log.peak_tflops for MFU"
        return peak, f"{name}, {precision} dense, datasheet"
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return cpu_peak_tflops(precision, max(1, cores // max(1, local_world_size)))


def mfu(flops_per_token: float, tokens_per_s: float, peak_tflops: float | None, world_size: int) -> float | None:
    if not peak_tflops:
        return None
    return flops_per_token * tokens_per_s / (peak_tflops * 1e12 * world_size)


def fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"


def fmt_count(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.1f}{unit}"
    return f"{n:.0f}"


class RunLog:
    """Rank 0's sinks; on other ranks every method is a no-op."""

    def __init__(self, out_dir: Path, *, active: bool, tensorboard: bool = True, wandb_project: str | None = None,
                 config: dict | None = None, total_steps: int = 0, start_step: int = 0, progress: bool = True):
        self.active = active
        self.out_dir = Path(out_dir)
        self.tb = self.wandb = self.bar = None
        if not active:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / "metrics.jsonl"
        keep = [json.dumps(r, ensure_ascii=False) for r in read_records(path) if r["step"] <= start_step] \
            if start_step else []
        write_text(path, "".join(line + "\n" for line in keep))
        self.jsonl = open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the run)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.out_dir / "tensorboard"))
        if wandb_project:
            self.wandb = _start_wandb(wandb_project, self.out_dir, config or {})
        if progress and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True)

    def write(self, record: dict[str, Any]) -> None:
        kind = record.get("kind")
        missing = [k for k in _REQUIRED.get(kind, ("kind",)) if k not in record]
        if missing:  # a programming error in a track, caught by its tests
            raise ValueError(f"metrics record of kind {kind!r} lacks {missing}: {record}")
        if not self.active:
            return
        self.jsonl.write(json.dumps({**record, "time": round(time.time(), 3)}, ensure_ascii=False) + "\n")
        self.jsonl.flush()
        if kind == "event":
            return
        step = record.get("step", 0)
        scalars = {k: v for k, v in record.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step" and v is not None}
        prefix = "val" if kind == "eval" else "train"
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(f"{prefix}/{k}", v, step)
        if self.wandb is not None:
            self.wandb.log({f"{prefix}/{k}": v for k, v in scalars.items()}, step=step)

    def progress(self, step: int, **postfix: Any) -> None:
        if self.bar is not None:
            self.bar.n = step
            self.bar.set_postfix(postfix, refresh=True)

    def line(self, text: str) -> None:
        if not self.active:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            log.info(text)

    def close(self) -> None:
        if not self.active:
            return
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
        self.jsonl.close()
        self.active = False


def _start_wandb(project: str, out_dir: Path, config: dict):
    try:
        import wandb
    except ImportError as e:
        raise UserError("log.wandb_project is set but wandb is not installed: pip install wandb") from e
    return wandb.init(project=project, dir=str(out_dir), name=out_dir.name, config=config)


def read_records(path: Path) -> list[dict]:
    """Every record of a metrics.jsonl, in order; a line cut off by a kill (or not a record) is skipped."""
    out = []
    if not Path(path).is_file():
        return out
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("step"), int) and rec.get("kind") in _REQUIRED:
            out.append(rec)
    return out


def read_metrics(path: Path) -> tuple[dict[int, dict], dict[int, dict]]:
    """Train and eval records by step; a step logged twice keeps the last."""
    train: dict[int, dict] = {}
    evals: dict[int, dict] = {}
    for rec in read_records(path):
        if rec["kind"] == "eval":
            evals[rec["step"]] = rec
        elif rec["kind"] == "train":
            train[rec["step"]] = rec
    return train, evals


def summarize(path: Path) -> dict:
    """What a report says of a run: first and last training loss (with steps), first and last validation."""
    train, evals = read_metrics(path)
    out: dict[str, Any] = {"steps": max(train) if train else 0}
    if train:
        first, last = train[min(train)], train[max(train)]
        out.update(train_loss_first=first["loss"], train_loss_first_step=first["step"], train_loss_last=last["loss"],
                   train_loss_last_step=last["step"])
    if evals:
        out.update(eval_first=evals[min(evals)], eval_last=evals[max(evals)])
    return out


def plot_loss_curve(metrics: Path, out_png: Path, *, title: str | None = None) -> Path | None:
    """Training loss (its named terms ``loss_*`` too, and validation loss, bits-per-byte when measured) against
    step; written atomically."""
    train, evals = read_metrics(metrics)
    if not train:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 if evals else 1, figsize=(11 if evals else 6, 4), squeeze=False)
    ax = axes[0][0]
    steps = sorted(train)
    ax.plot(steps, [train[s]["loss"] for s in steps], label="training loss", lw=1)
    # the named terms of a loss made of several (distillation: loss_ce, loss_kd), each its own line
    parts = sorted({k for r in train.values() for k in r if k.startswith("loss_")
                    and isinstance(r[k], (int, float))})
    for k in parts:
        have = [s for s in steps if isinstance(train[s].get(k), (int, float))]
        ax.plot(have, [train[s][k] for s in have], label=k.removeprefix("loss_").replace("_", " "), lw=1, alpha=0.8)
    if evals:
        es = sorted(evals)
        ax.plot(es, [evals[s]["loss"] for s in es], "o-", label="validation loss")
        ax2 = axes[0][1]
        ax2.plot(es, [evals[s]["bits_per_byte"] for s in es], "o-", color="tab:green")
        ax2.set_xlabel("step")
        ax2.set_ylabel("bits per byte")
        ax2.set_title("validation bits-per-byte")
        ax2.grid(alpha=0.3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    from persianllama.atomic import atomic_path

    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(out_png)


def eval_record(step: int, nll: float, n_bytes: float, n_tokens: float, n_words: float, n_docs: float,
                seconds: float) -> dict:
    """The ``eval`` record of a validation from its sums (added over ranks where a track splits the documents)."""
    return {
        "kind": "eval", "step": step,
        "loss": nll / n_tokens if n_tokens else float("nan"),
        "bits_per_byte": nll / math.log(2.0) / n_bytes if n_bytes else float("nan"),
        "token_perplexity": math.exp(min(nll / n_tokens, 700.0)) if n_tokens else float("nan"),
        "word_perplexity": math.exp(min(nll / n_words, 700.0)) if n_words else float("nan"),
        "tokens": int(n_tokens), "bytes": int(n_bytes), "documents": int(n_docs), "seconds": round(seconds, 3),
    }


def validate(model, tokenizer, texts: list[str], *, step: int, max_length: int, batch_size: int,
             reduce=None) -> dict | None:
    """Score held-out `texts` (`persianllama.eval.bpb.evaluate_bpb`) and return the ``eval`` record.

    `reduce(sums_tensor)`, when given, adds the five sums over ranks in place (each rank scored its share)."""
    if not texts and reduce is None:
        return None
    import torch

    from persianllama.eval.bpb import evaluate_bpb

    start = time.perf_counter()
    sums = torch.zeros(5, dtype=torch.float64)
    if texts:
        r = evaluate_bpb(model, tokenizer, texts, max_length=max_length, batch_size=batch_size)
        sums = torch.tensor([r["nll_nats"], r["bytes"], r["tokens"], r["words"], r["documents"]], dtype=torch.float64)
    if reduce is not None:
        sums = reduce(sums)
    nll, n_bytes, n_tokens, n_words, n_docs = sums.tolist()
    if not n_docs:
        return None
    return eval_record(step, nll, n_bytes, n_tokens, n_words, n_docs, time.perf_counter() - start)


def eval_line(rec: dict) -> str:
    return (f"step {rec['step']}: validation bits/byte {rec['bits_per_byte']:.4f} | loss {rec['loss']:.4f} | "
            f"token ppl {rec['token_perplexity']:.2f} | word ppl {rec['word_perplexity']:.1f} "
            f"({rec['documents']} docs, {rec['seconds']:.1f}s)")
