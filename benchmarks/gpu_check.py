#!/usr/bin/env python
"""One prepared GPU check: every number the recipes' estimates rest on, measured in one run of a few minutes.

    python benchmarks/gpu_check.py                          # on a CUDA GPU: every part, < 10 minutes
    python benchmarks/gpu_check.py --smoke                  # tiny shapes (what a machine without CUDA runs)
    python benchmarks/gpu_check.py --parts zero-125m,lora-13b-8bit --output runs/gpu_check
    persianllama plan --calibrate runs/gpu_check/gpu_check.json     # the memory plan's error per part

Nothing is downloaded: the corpus is Persian text from corpora/sample/src reshuffled into documents, the
tokenizer is trained on it here, and every model is built from a config with random weights (the
LLaMA-2-13B-shaped one in 8-bit without ever materialising full-precision weights,
`persianllama.lora.calibrate.random_quantized_llama`). Parts, in order, each in its own process with its
own time box; a part that fails or runs out of time is reported and the next one starts:

  setup          corpus, tokenizer (`persianllama.tokenizer.train`), small LoRA base, 13B-shaped config
  zero-125m      configs/125m.yaml through `deepspeed --num_gpus 1 scripts/pretrain.py` (the real entry point,
                 in the rank's process): ~30 steps, bf16 where the GPU has it; tokens/s, MFU, peak memory,
                 attention kernel. The vocabulary is set to 32000 rows (a real 32k tokenizer's shape) and
                 one step is one micro-batch (no accumulation: the same tokens/s, a shorter run)
  zero-1b        configs/1b.yaml, the same way
  lora-13b-8bit  8-bit LoRA steps of configs/lora_13b_8bit.yaml on a LLaMA-2-13B-shaped base with a 49,953-token
                 vocabulary (the extended tokenizer of the README's plan), at several (seq, micro-batch) points:
                 measured memory, part by part, next to `persianllama plan`'s prediction, and the ratio
  eval-125m      the eval harness on the GPU: bits per byte and ParsiNLU multiple choice (corpora/sample/tasks)
                 on zero-125m's model, and bits per byte again on the CPU in fp32 (they must agree)
  lora-4bit      `persianllama lora train` (train.run) on a small base in 4-bit (NF4, bf16 autocast)
  lora-fp16      the same in 8-bit with fp16 autocast and loss scaling (the T4/V100 path; CUDA only)
  zero-fp16      scripts/pretrain.py with train.precision=fp16 (DeepSpeed's dynamic loss scaling; CUDA only)

Where the numbers go (--output, default runs/gpu_check/): gpu_check.json (everything, one object per part
with status ok/failed/skipped and the reason), gpu_check.md (the same as tables), logs/PART.log (each part's
output) and logs/PART.metrics.jsonl (the training runs' own metrics). The final table is printed too.

Without CUDA (or with --smoke) every part runs at a tiny shape, in under two minutes on a laptop CPU;
tests/test_gpu_check.py runs it that way so the script cannot rot. fp16 needs CUDA: those parts say so.

Exit status: 0 every part ok or skipped; 1 a part failed or ran out of time (the rest still ran and
everything was written); 2 bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import logging
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SCRIPT = Path(__file__).resolve()
GIB = 1024**3

log = logging.getLogger("gpu_check")

# ------------------------------------------------------------------------------------------------------------
# Every size in one place. "gpu": one H100/H200/A100 in under 10 minutes; "smoke": a laptop CPU in under 2.

LLAMA_2_13B = {"hidden_size": 5120, "intermediate_size": 13824, "num_hidden_layers": 40, "num_attention_heads": 40,
               "num_key_value_heads": 40, "max_position_embeddings": 4096}
TINY_LLAMA = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 4, "max_position_embeddings": 256}
TINY_ZERO = {"model.hidden_size": 64, "model.intermediate_size": 172, "model.num_layers": 2, "model.num_heads": 4,
             "model.max_position_embeddings": 64, "train.seq_len": 64,
             "train.micro_batch_size": 4, "train.global_batch_size": 4, "data.workers": 1}

SIZES = {
    "gpu": {
        "documents": 3000, "tokenizer_vocab": 8000,
        "zero": {
            # One optimizer step = one micro-batch of the recipe (accumulation only repeats the same work).
            "zero-125m": ("configs/125m.yaml", 30, {"model.vocab_size": 32000, "train.global_batch_size": 16}),
            "zero-1b": ("configs/1b.yaml", 30, {"model.vocab_size": 32000, "train.global_batch_size": 8,
                                                "export": "false"}),
            "zero-fp16": ("configs/125m.yaml", 10, {"model.vocab_size": 32000, "train.precision": "fp16",
                                                    "train.seq_len": 1024, "train.micro_batch_size": 8,
                                                    "train.global_batch_size": 8, "export": "false"}),
        },
        "lora_base": LLAMA_2_13B, "lora_vocab": 49953,
        "lora_points": [(512, 4), (512, 16), (2048, 4)], "lora_steps_per_point": 2,
        "small_base": {"hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 8,
                       "num_attention_heads": 16, "num_key_value_heads": 16, "max_position_embeddings": 2048},
        "lora_smoke": {"train.seq_len": 512, "train.micro_batch_size": 4, "train.global_batch_size": 4,
                       "train.max_steps": 6},
    },
    "smoke": {
        "documents": 200, "tokenizer_vocab": 600,
        "zero": {
            "zero-125m": ("configs/125m.yaml", 5, TINY_ZERO),
            "zero-1b": ("configs/1b.yaml", 5, {**TINY_ZERO, "model.num_kv_heads": 2, "export": "false"}),
            "zero-fp16": ("configs/125m.yaml", 4, {**TINY_ZERO, "train.precision": "fp16", "export": "false"}),
        },
        "lora_base": TINY_LLAMA, "lora_vocab": 700,
        "lora_points": [(32, 2), (64, 4)], "lora_steps_per_point": 2,
        "small_base": TINY_LLAMA,
        "lora_smoke": {"train.seq_len": 32, "train.micro_batch_size": 2, "train.global_batch_size": 2,
                       "train.max_steps": 3, "data.workers": 1},
    },
}


@dataclass(frozen=True)
class Part:
    name: str
    box_gpu: int
    """Time box in seconds on a GPU (and at smoke size: `box_smoke`)."""
    box_smoke: int
    launcher: bool = False
    """Run under `deepspeed --num_gpus 1` (the Zero track's launcher)."""
    launcher_smoke: bool = True
    """Also at smoke size (else the same entry point runs as a world of one without it)."""
    needs_cuda: bool = False
    what: str = ""


PARTS = [  # time boxes: on a GPU they add up to more than the budget, which is what bounds the check; at smoke
    # size they are generous, so a loaded CI machine does not turn slowness into failures
    Part("setup", 120, 180, what="corpus, tokenizer, bases"),
    Part("zero-125m", 150, 180, launcher=True, what="Zero 125M: tokens/s, MFU, peak memory"),
    # at smoke size zero-125m alone goes through the launcher (its start costs ~5 s of CPU per part)
    Part("zero-1b", 240, 180, launcher=True, launcher_smoke=False, what="Zero 1B: tokens/s, MFU, peak memory"),
    Part("lora-13b-8bit", 240, 180, what="8-bit LoRA memory against the plan"),
    Part("eval-125m", 90, 180, what="eval harness: bits per byte, ParsiNLU MC"),
    Part("lora-4bit", 90, 180, what="LoRA trainer, 4-bit base"),
    Part("lora-fp16", 90, 180, needs_cuda=True, what="LoRA trainer, fp16 + loss scaling"),
    Part("zero-fp16", 120, 180, launcher=True, needs_cuda=True, what="Zero trainer, fp16 + loss scaling"),
]
BY_NAME = {p.name: p for p in PARTS}
BUDGET = {"gpu": 570, "smoke": 900}
"""Seconds for the whole check; a part that cannot get at least MIN_BOX of it is skipped."""
MIN_BOX = 15


# ------------------------------------------------------------------------------------------------------------
# The parent: one child process per part, time-boxed, then the JSON, the markdown and the table.


def one_line(text: str, limit: int = 300) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "")[:limit]


def last_error_line(log_file: Path) -> str:
    """The most telling line of a child's log: its last error line, else its last line."""
    try:
        text = log_file.read_text(encoding="utf-8", errors="replace")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    except OSError:
        return ""
    for ln in reversed(lines[-200:]):
        if re.search(r"error|Error|Traceback|Killed|out of memory", ln):
            return ln[:300]
    return lines[-1][:300] if lines else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def console_script(name: str) -> str | None:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def run_child(part: Part, args, work: Path, box: float) -> dict:
    """Run one part in its own process group, killed at the end of its time box; its result file, or why not."""
    result_file = work / "parts" / f"{part.name}.json"
    result_file.unlink(missing_ok=True)
    log_file = work / "logs" / f"{part.name}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + box
    cmd = [sys.executable, str(SCRIPT), "--run-part", part.name, "--workdir", str(work), "--mode", args.mode,
           "--deadline", f"{deadline:.0f}"]
    if part.launcher and (args.mode == "gpu" or part.launcher_smoke):
        launcher = console_script("deepspeed")
        if launcher is None:
            return {"status": "failed", "reason": "the deepspeed launcher is not installed (pip install -e .)"}
        cmd = [launcher, "--num_gpus", "1", "--master_port", str(free_port()), *cmd[1:]]
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    started = time.perf_counter()
    with open(log_file, "w", encoding="utf-8") as fh:
        # its own process group: the launcher, its rank and any worker go together at the end of the box
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=box)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            rc = stop_group(proc)
        except BaseException:  # Ctrl-C or SIGTERM of this process: take the part down with it
            stop_group(proc)
            raise
    seconds = time.perf_counter() - started
    result: dict = {}
    if result_file.is_file():
        with contextlib.suppress(json.JSONDecodeError, OSError):
            result = json.loads(result_file.read_text(encoding="utf-8"))
    if timed_out:
        result.update(status="failed", reason=f"timed out after {box:.0f} s (its time box); last line: "
                                              f"{last_error_line(log_file)}")
    elif not result:
        result = {"status": "failed", "reason": f"exit status {rc}, no result; {last_error_line(log_file)}"}
    elif result.get("status") == "running":
        result.update(status="failed", reason=f"exit status {rc} mid-part; {last_error_line(log_file)}")
    result["seconds"] = round(seconds, 1)
    result["time_box_s"] = round(box)
    result["log"] = f"logs/{part.name}.log"
    return result


def stop_group(proc: subprocess.Popen) -> int:
    """SIGTERM to the part's process group (a Zero rank saves and exits), SIGKILL 10 s later if still there."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


def environment(mode: str) -> dict:
    """Versions, and the device as far as the parent may look: it must not hold a CUDA context of its own
    (its memory would count in the LoRA part's device peak), so the setup child reports the GPU's details."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    info = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
            "mode": mode, "packages": {}}
    for pkg in ("transformers", "peft", "bitsandbytes", "deepspeed", "accelerate", "lm_eval", "flash_attn"):
        with contextlib.suppress(PackageNotFoundError):
            info["packages"][pkg] = version(pkg)
    info["device"] = ({"type": "cuda", "name": "CUDA GPU"} if torch.cuda.is_available()
                      else {"type": "cpu", "name": "CPU", "cores": os.cpu_count()})
    return info


def device_details() -> dict:
    """The GPU's name, memory and capability (called in a child process)."""
    import torch

    if not torch.cuda.is_available():
        return {"type": "cpu", "name": "CPU", "cores": os.cpu_count()}
    props = torch.cuda.get_device_properties(0)
    return {"type": "cuda", "name": props.name, "memory_bytes": int(props.total_memory),
            "capability": f"{props.major}.{props.minor}", "count": torch.cuda.device_count()}


def parse_boxes(values: list[str]) -> dict[str, int]:
    boxes = {}
    for v in values:
        name, _, secs = v.partition("=")
        if name not in BY_NAME or not secs.strip().isdigit() or int(secs) < 1:
            raise ValueError(f"--time-box {v!r}: expected PART=SECONDS with a part of {', '.join(BY_NAME)} "
                             "and whole seconds >= 1")
        boxes[name] = int(secs)
    return boxes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="runs/gpu_check", help="where gpu_check.json, gpu_check.md, logs/ go")
    p.add_argument("--smoke", action="store_true", help="tiny shapes even on a GPU (automatic without CUDA)")
    p.add_argument("--parts", help=f"comma-separated subset of: {', '.join(BY_NAME)} (setup always runs)")
    p.add_argument("--budget-s", type=float, help="seconds for the whole check (default 570 on a GPU, 900 smoke)")
    p.add_argument("--time-box", action="append", default=[], metavar="PART=SECONDS", help="one part's time box")
    p.add_argument("--workdir", help="scratch folder for corpus, tokenizer, runs (default: a temporary folder, "
                                     "in /dev/shm when it has room: the 1B checkpoint is ~18 GB)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    # the child side (internal)
    p.add_argument("--run-part", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    p.add_argument("--local_rank", "--local-rank", type=int, help=argparse.SUPPRESS)  # the deepspeed launcher's
    args = p.parse_args(argv)
    if args.run_part:
        return child_main(args)

    def bad(message: str) -> int:
        print(f"gpu_check: error: {message}", file=sys.stderr)
        return 2

    try:
        boxes = parse_boxes(args.time_box)
    except ValueError as e:
        return bad(str(e))
    chosen = [s.strip() for s in (args.parts or "").split(",") if s.strip()] or [x.name for x in PARTS]
    unknown = [c for c in chosen if c not in BY_NAME]
    if unknown:
        return bad(f"--parts: unknown part {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    if args.budget_s is not None and not (args.budget_s > 0 and math.isfinite(args.budget_s)):
        return bad(f"--budget-s {args.budget_s}: must be a number of seconds > 0")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        return bad(f"--output {out} is a file; give a folder")

    import torch

    cuda = torch.cuda.is_available()
    args.mode = "smoke" if args.smoke or not cuda else "gpu"
    budget = args.budget_s or BUDGET[args.mode]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s gpu_check: %(message)s", datefmt="%H:%M:%S")
    env = environment(args.mode)
    log.info("%s on %s%s; budget %.0f s; output %s", "full shapes" if args.mode == "gpu" else "smoke shapes",
             env["device"]["name"], "" if cuda else " (no CUDA GPU: tiny shapes, fp16 parts skipped)", budget, out)
    work = Path(args.workdir) if args.workdir else make_workdir(args.mode)
    work.mkdir(parents=True, exist_ok=True)
    for old in [*(out / "logs").glob("*.log"), *(out / "logs").glob("*.metrics.jsonl")]:
        old.unlink()  # our own files of an earlier check: not to be mistaken for this one's
    started, t0 = time.strftime("%Y-%m-%dT%H:%M:%S"), time.perf_counter()
    results: dict = {"schema": "persianllama.gpu_check/1", "mode": args.mode, "started": started,
                     "command": " ".join(["python benchmarks/gpu_check.py", *(sys.argv[1:] if argv is None else argv)]),
                     **env, "budget_s": budget,
                     "parts": {}}
    order = ["setup", *[x.name for x in PARTS if x.name in chosen and x.name != "setup"]]
    signal.signal(signal.SIGTERM, interrupt)  # as Ctrl-C: the running part is stopped, what was measured written
    interrupted = False
    try:
        for name in order:
            part = BY_NAME[name]
            left = budget - (time.perf_counter() - t0)
            box = min(boxes.get(name, part.box_gpu if args.mode == "gpu" else part.box_smoke), left)
            if name == "setup" and reusable_setup(work, args.mode):
                res = {**reusable_setup(work, args.mode), "reused": True, "seconds": 0.0}
            elif part.needs_cuda and not cuda:
                res = {"status": "skipped", "reason": "needs a CUDA GPU (fp16 has no CPU kernels or loss scaling)"}
            elif name != "setup" and results["parts"]["setup"]["status"] != "ok":
                res = {"status": "skipped", "reason": "setup failed"}
            elif box < min(MIN_BOX, boxes.get(name, MIN_BOX)):
                res = {"status": "skipped", "reason": f"out of time: {left:.0f} s of the {budget:.0f} s budget left"}
            else:
                log.info("%s: %s (time box %.0f s)", name, part.what, box)
                try:
                    res = run_child(part, args, work, box)
                except KeyboardInterrupt:
                    interrupted = True
                    results["parts"][name] = {"status": "failed", "reason": "interrupted (Ctrl-C or SIGTERM)"}
                    break
            results["parts"][name] = res
            if name == "setup" and isinstance(res.get("device"), dict):
                results["device"] = res["device"]
            log.info("%s: %s in %s s%s", name, res["status"], res.get("seconds", 0),
                     f" ({res['reason']})" if res.get("reason") else "")
            write_outputs(results, out, work, time.perf_counter() - t0)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    write_outputs(results, out, work, results["seconds"])
    print(console_table(results, out))
    if interrupted:
        return 130
    return 1 if any(r["status"] == "failed" for r in results["parts"].values()) else 0


def interrupt(signum, frame):
    raise KeyboardInterrupt


def reusable_setup(work: Path, mode: str) -> dict | None:
    """An earlier setup of this scratch folder for the same shapes (--workdir): its result, else None."""
    with contextlib.suppress(OSError, json.JSONDecodeError):
        prev = json.loads((work / "parts" / "setup.json").read_text(encoding="utf-8"))
        if prev.get("status") == "ok" and prev.get("mode") == mode and (work / "tokenizer/tokenizer.json").is_file():
            return prev
    return None


def make_workdir(mode: str) -> Path:
    shm = Path("/dev/shm")
    if mode == "gpu" and shm.is_dir():
        with contextlib.suppress(OSError):
            if shutil.disk_usage(shm).free > 48 * GIB:
                return Path(tempfile.mkdtemp(prefix="gpu_check-", dir=shm))
    return Path(tempfile.mkdtemp(prefix="gpu_check-"))


def write_outputs(results: dict, out: Path, work: Path, seconds: float) -> None:
    from persianllama.atomic import write_json, write_text

    results["seconds"] = round(seconds, 1)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for f in list((work / "logs").glob("*.log")) + list((work / "logs").glob("*.metrics.jsonl")):
        shutil.copyfile(f, logs / f.name)
    write_json(out / "gpu_check.json", results)
    try:
        text = markdown(results)
    except Exception as e:  # noqa: BLE001 - the JSON holds every number; the tables must not stop the check
        text = f"# GPU check\n\nThe tables could not be written ({type(e).__name__}: {e}); see gpu_check.json.\n"
    write_text(out / "gpu_check.md", text)


# ------------------------------------------------------------------------------------------------------------
# Reporting


def gib(x) -> str:
    return "n/a" if x is None else f"{x / GIB:.2f} GiB" if x >= 0.01 * GIB else f"{x / 1024**2:.1f} MiB"


def num(x, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def summary_line(name: str, r: dict) -> str:
    """One cell: the part's headline numbers."""
    if r.get("status") != "ok" and not r.get("points"):
        return r.get("reason", "")
    if name == "setup":
        return f"{r['documents']} docs ({r['corpus_bytes'] / 1e6:.1f} MB), tokenizer {r['tokenizer_vocab']} tokens"
    if name.startswith("zero-"):
        return (f"{r['tokens_per_s']:,.0f} tok/s, MFU {pct(r.get('mfu'))}, peak {gib(r.get('peak_memory_bytes'))} "
                f"({r.get('peak_memory_kind', '')}), {r.get('attention')}, {r.get('precision')} "
                f"ZeRO-{r.get('zero_stage')}, loss {r['loss_first']:.3f} -> {r['loss_last']:.3f}")
    if name == "lora-13b-8bit":
        cells = []
        for pt in r.get("points", []):
            tag = f"{pt['seq_len']}x{pt['micro_batch']}"
            if pt.get("status") != "ok":
                cells.append(f"{tag}: {pt.get('status')} ({pt.get('reason', '')})")
            elif pt["measured"].get("allocator_peak"):
                cells.append(f"{tag}: {gib(pt['measured']['allocator_peak'])} measured / "
                             f"{gib(pt['predicted']['allocator_peak'])} planned (x{pt['ratio']:.2f})")
            else:
                cells.append(f"{tag}: ran (no allocator on CPU)")
        return "; ".join(cells)
    if name == "eval-125m":
        cpu = f" (CPU fp32 {r['bpb_cpu']:.4f}, {100 * r['bpb_rel_diff']:+.2f}%)" if r.get("bpb_cpu") else ""
        return (f"bits/byte {r['bits_per_byte']:.4f}{cpu} vs uniform {r['uniform_bpb']:.2f}; parsinlu_mc acc "
                f"{r['mc_acc']:.3f} on {r['mc_n']} (chance {r['mc_chance']:.2f}); {r['device']} {r['dtype']}")
    if name.startswith("lora-"):
        err = f", plan error {100 * r['plan_error']:+.1f}%" if r.get("plan_error") is not None else ""
        return (f"{r['steps']} steps, loss {r['loss_first']:.3f} -> {r['loss_last']:.3f}, {r['precision']}"
                f"{', peak ' + gib(r['measured_peak_bytes']) if r.get('measured_peak_bytes') else ''}{err}")
    return ""


def safe_summary(name: str, r: dict) -> str:
    try:
        return summary_line(name, r)
    except Exception as e:  # noqa: BLE001 - a report cell must never stop the check
        return f"(see gpu_check.json: {type(e).__name__} {e})"


def console_table(results: dict, out: Path) -> str:
    dev = results.get("device", {}).get("name", "?")
    lines = [f"GPU check on {dev} ({results['mode']} shapes) in {results.get('seconds', 0):.0f} s -> "
             f"{out / 'gpu_check.json'}, {out / 'gpu_check.md'}",
             f"{'part':<15}{'status':<9}{'seconds':>8}  result"]
    for name, r in results["parts"].items():
        lines.append(f"{name:<15}{r['status']:<9}{r.get('seconds', 0):>8.1f}  {safe_summary(name, r)}")
    return "\n".join(lines)


def markdown(results: dict) -> str:
    dev = results.get("device", {})
    pk = results.get("packages", {})
    md = [f"# GPU check: {dev.get('name', '?')}", "",
          f"{results['mode']} shapes, started {results['started']}, {results.get('seconds', 0):.0f} s in all; "
          f"torch {results['torch']} (CUDA {results.get('cuda')}), "
          + ", ".join(f"{k} {v}" for k, v in pk.items()) + ".", "",
          f"Command: `{results.get('command', '')}`", "",
          "| part | status | seconds | result |", "|---|---|---|---|"]
    for name, r in results["parts"].items():
        md.append(f"| {name} | {r['status']} | {r.get('seconds', 0):.1f} | {safe_summary(name, r)} |")
    zero = {n: r for n, r in results["parts"].items() if n.startswith("zero-") and r.get("status") == "ok"}
    if zero:
        md += ["", "## Zero track (`deepspeed --num_gpus 1 scripts/pretrain.py`)", "",
               "| run | recipe | params | seq x micro | precision | attention | ZeRO | tokens/s | MFU "
               "| MFU (run's log) | peak memory | loss first -> last | steps |", "|---" * 13 + "|"]
        for n, r in zero.items():
            md.append(f"| {n} | `{r['recipe']}` | {num(r.get('params_m'), '.4g')}M | {r['seq_len']} x "
                      f"{r['micro_batch']} | {r['precision']} | {r['attention']} | {r['zero_stage']} | "
                      f"{r['tokens_per_s']:,.0f} | {pct(r.get('mfu'))} | {pct(r.get('mfu_run'))} | "
                      f"{gib(r.get('peak_memory_bytes'))} ({r.get('peak_memory_kind')}) | "
                      f"{r['loss_first']:.3f} -> {r['loss_last']:.3f} | {r['steps']} |")
        md += ["", "MFU: the run's own FLOPs per token (6N + 12 L h T) against the device's dense peak (the GPU's "
                   "datasheet bf16/fp16 figure; on a CPU an estimate), over the steady-state steps only (the first "
                   "steps carry set-up costs); \"run's log\" is the trainer's own running figure."]
    lora = results["parts"].get("lora-13b-8bit", {})
    if lora.get("points"):
        mem = lora.get("memory", {})
        md += ["", f"## 8-bit LoRA memory: measured against `persianllama plan` ({lora.get('shape', '')})", "",
               "| seq x micro-batch | status | planned allocator peak | measured | ratio "
               "| planned total (with margin) | device peak | ratio | tokens/s |", "|---" * 9 + "|"]
        for pt in lora["points"]:
            m, pr = pt.get("measured", {}), pt.get("predicted", {})
            both = m.get("device_peak") and pr.get("device_peak")
            dev_ratio = m["device_peak"] / pr["device_peak"] if both else None
            status = f"{pt.get('status')} ({pt['reason']})" if pt.get("reason") else pt.get("status")
            md.append(f"| {pt['seq_len']} x {pt['micro_batch']} | {status} | {gib(pr.get('allocator_peak'))} | "
                      f"{gib(m.get('allocator_peak'))} | {num(pt.get('ratio'), '.2f')} | "
                      f"{gib(pr.get('device_peak'))} | {gib(m.get('device_peak'))} | {num(dev_ratio, '.2f')} | "
                      f"{num(pt.get('tokens_per_s'), ',.0f')} |")
        static = mem.get("static") or {}
        if static and lora["points"][0].get("predicted"):
            pr = lora["points"][0]["predicted"]
            md += ["", f"Static parts ({mem.get('method')}):", "", "| part | planned | measured | ratio |",
                   "|---|---|---|---|"]
            for q in ("weights", "adapter", "gradients", "optimizer"):
                if static.get(q):
                    md.append(f"| {q} | {gib(pr[q])} | {gib(static[q])} | {static[q] / pr[q]:.3f} |")
        md += ["", "Ratio = measured / planned. `persianllama plan --calibrate gpu_check.json` prints the current "
                   "plan's error for every part."]
    md += ["", "## Details", ""]
    for name, r in results["parts"].items():
        where = f" (log: `{r['log']}`)" if r.get("log") else ""
        if r.get("status") != "ok" and r.get("reason"):
            md.append(f"- **{name}** {r['status']}: {r['reason']}{where}")
        else:
            md.append(f"- **{name}** {r['status']} in {r.get('seconds', 0):.1f} s{where}")
    return "\n".join(md) + "\n"


# ------------------------------------------------------------------------------------------------------------
# The child side: one part in this process.


@dataclass
class Context:
    work: Path
    mode: str
    deadline: float
    part: str

    @property
    def sizes(self) -> dict:
        return SIZES[self.mode]

    def left(self) -> float:
        return self.deadline - time.time()

    def save(self, payload: dict) -> None:
        from persianllama.atomic import write_json

        write_json(self.work / "parts" / f"{self.part}.json", payload)


def child_main(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", force=True)
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    ctx = Context(Path(args.workdir), args.mode, args.deadline or time.time() + 3600, args.run_part)
    fn = PART_FUNCTIONS[args.run_part]
    try:
        payload = fn(ctx)
        payload.setdefault("status", "ok")
    except Exception as e:  # noqa: BLE001 - reported as this part's result; the next part still runs
        traceback.print_exc()
        payload = {"status": "failed", "reason": f"{type(e).__name__}: {one_line(str(e)) or 'no message'}"}
        with contextlib.suppress(Exception):  # keep what an incremental part already measured
            earlier = json.loads((ctx.work / "parts" / f"{ctx.part}.json").read_text(encoding="utf-8"))
            payload = {**earlier, **payload}
    ctx.save(payload)
    return 0 if payload["status"] != "failed" else 1


def device_kind() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# --- setup ---------------------------------------------------------------------------------------------------


def sample_paragraphs() -> list[str]:
    """Persian paragraphs of the project's own sample text (corpora/sample/src), markup lines left out."""
    paras = []
    for f in sorted((ROOT / "corpora" / "sample" / "src").glob("*.txt")):
        if f.name == "noise.txt":
            continue
        for line in f.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if len(line) < 60 or line.startswith(("@@@", "{", "|", "!", "[", "<", "=", "*", "#")):
                continue
            letters = [c for c in line if c.isalpha()]
            if letters and sum("\u0600" <= c <= "\u06ff" for c in letters) / len(letters) > 0.8:
                paras.append(line)
    return paras


def part_setup(ctx: Context) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from persianllama.tokenizer.train import TokenizerTrainConfig, train

    sz = ctx.sizes
    paras = sample_paragraphs()
    rng = random.Random(1403)
    docs = ["\n".join(rng.choice(paras) for _ in range(rng.randint(3, 9))) for _ in range(sz["documents"])]
    corpus = ctx.work / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    (corpus / "data").mkdir(parents=True)
    per = (len(docs) + 3) // 4
    for s in range(4):
        part = docs[s * per:(s + 1) * per]
        pq.write_table(pa.table({"text": part, "id": [f"d{s}-{i}" for i in range(len(part))]}),
                       corpus / "data" / f"shard-{s:03d}.parquet")
    tok_dir = ctx.work / "tokenizer"
    shutil.rmtree(tok_dir, ignore_errors=True)
    trained = train(TokenizerTrainConfig(input=[str(corpus)], output=str(tok_dir), vocab_size=sz["tokenizer_vocab"],
                                         threads=0))
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    # the small base of the LoRA trainer parts (saved like any HF checkpoint)
    torch.manual_seed(0)
    small = LlamaConfig(**sz["small_base"], vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                        eos_token_id=tok.eos_token_id, tie_word_embeddings=False)
    base = ctx.work / "lora-base"
    shutil.rmtree(base, ignore_errors=True)
    LlamaForCausalLM(small).to(torch.bfloat16).save_pretrained(str(base))
    tok.save_pretrained(str(base))
    # the 13B-shaped base: its config.json and tokenizer only (the weights are made at random on the device)
    big = LlamaConfig(**sz["lora_base"], vocab_size=sz["lora_vocab"], bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, tie_word_embeddings=False, rms_norm_eps=1e-5)
    big_dir = ctx.work / "lora-13b-shape"
    shutil.rmtree(big_dir, ignore_errors=True)
    big.save_pretrained(str(big_dir))
    tok.save_pretrained(str(big_dir))
    return {"mode": ctx.mode, "device": device_details(), "documents": len(docs),
            "corpus_bytes": sum(len(d.encode()) for d in docs),
            "tokenizer_vocab": len(tok), "tokenizer_seconds": round(trained.seconds, 1),
            "small_base": sz["small_base"], "lora_shape": {**sz["lora_base"], "vocab_size": sz["lora_vocab"]}}


# --- Zero track ----------------------------------------------------------------------------------------------


class Lines(logging.Handler):
    """Keeps the run's own log lines (the model, attention and MFU lines)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def load_pretrain():
    spec = importlib.util.spec_from_file_location("pretrain_entry", ROOT / "scripts" / "pretrain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def zero_run(ctx: Context, name: str) -> dict:
    """`scripts/pretrain.py`'s `main` in this (launcher-started) process; numbers from its metrics.jsonl."""
    import resource

    import torch

    from persianllama.run.metrics import read_metrics

    recipe, steps, extra = ctx.sizes["zero"][name]
    out = ctx.work / "runs" / name
    shutil.rmtree(out, ignore_errors=True)
    settings = {"tokenizer": ctx.work / "tokenizer", "data.corpus": f"[{ctx.work / 'corpus'}]",
                "data.cache_dir": ctx.work / "cache", "out_dir": out, "train.max_steps": steps,
                "train.warmup_steps": 5, "log.log_interval": 10, "log.eval_interval": 0, "log.eval_docs": 8,
                "log.progress_bar": "false", "log.tensorboard": "false", **extra}
    argv = ["--config", str(ROOT / recipe), *[f"{k}={v}" for k, v in settings.items()]]
    cuda = torch.cuda.is_available()
    peaks = {"allocated": 0, "reserved": 0}

    def on_step(state) -> None:  # the training steps' peak, before the final validation and checkpoint
        if cuda:
            peaks["allocated"] = max(peaks["allocated"], torch.cuda.max_memory_allocated())
            peaks["reserved"] = max(peaks["reserved"], torch.cuda.max_memory_reserved())

    lines = Lines()
    logging.getLogger().addHandler(lines)
    pretrain = load_pretrain()
    rc = pretrain.main(argv, on_step=on_step)
    logging.getLogger().removeHandler(lines)
    if rc != 0:
        raise RuntimeError(f"scripts/pretrain.py exited with status {rc} (see its log)")
    metrics = out / "metrics.jsonl"
    shutil.copyfile(metrics, ctx.work / "logs" / f"{name}.metrics.jsonl")
    train, evals = read_metrics(metrics)
    if len(train) < 2:
        raise RuntimeError(f"{metrics}: {len(train)} training records")
    recs = [train[s] for s in sorted(train)]
    warm = min(5, len(recs) // 3) or 1
    steady = recs[warm:]
    tokens = sum(r["tokens_per_s"] * r["step_seconds"] for r in steady)
    tok_s = tokens / sum(r["step_seconds"] for r in steady)
    text = "\n".join(lines.lines)
    found = {"attention": re.search(r"attention (\S+), (fp32|bf16|fp16), ZeRO-(\d)", text),
             "mfu": re.search(r"MFU: ([\d.]+) MFLOP/token against a peak of (?:([\d.]+) TFLOP/s per rank|unknown) "
                              r"\((.*)\)", text),
             "params": re.search(r"model: ([\d.]+)M parameters", text),
             "batch": re.search(r"\(micro (\d+) x accumulation (\d+)", text)}
    mfu = None
    if found["mfu"] and found["mfu"].group(2):
        mfu = float(found["mfu"].group(1)) * 1e6 * tok_s / (float(found["mfu"].group(2)) * 1e12)
    seq = int(re.search(r"x (\d+) tokens = ", text).group(1)) if re.search(r"x (\d+) tokens = ", text) else None
    result = {
        "recipe": recipe, "steps": len(recs), "steady_steps": len(steady), "tokens_per_s": tok_s, "mfu": mfu,
        "mfu_run": recs[-1].get("mfu"),
        "step_seconds_median": sorted(r["step_seconds"] for r in steady)[len(steady) // 2],
        "attention": found["attention"].group(1) if found["attention"] else None,
        "precision": found["attention"].group(2) if found["attention"] else None,
        "zero_stage": int(found["attention"].group(3)) if found["attention"] else None,
        "params_m": float(found["params"].group(1)) if found["params"] else None,
        "micro_batch": int(found["batch"].group(1)) if found["batch"] else None, "seq_len": seq,
        "flops_per_token": float(found["mfu"].group(1)) * 1e6 if found["mfu"] else None,
        "peak_tflops": float(found["mfu"].group(2)) if found["mfu"] and found["mfu"].group(2) else None,
        "peak_source": found["mfu"].group(3) if found["mfu"] else None,
        "loss_first": recs[0]["loss"], "loss_last": recs[-1]["loss"],
        "validation_bits_per_byte": evals[max(evals)]["bits_per_byte"] if evals else None,
        "overrides": {k: str(v) for k, v in extra.items()},
    }
    if cuda:
        result.update(peak_memory_bytes=int(peaks["allocated"]), peak_reserved_bytes=int(peaks["reserved"]),
                      peak_memory_kind="torch.cuda.max_memory_allocated")
    else:
        result.update(peak_memory_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      peak_memory_kind="process max RSS")
    if not all(math.isfinite(r["loss"]) for r in recs):
        raise RuntimeError(f"non-finite loss in {metrics}")
    for state in sorted((out / "checkpoints").glob("step_*/trainer_state.json")):  # exact counts, by the run
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            counts = json.loads(state.read_text(encoding="utf-8"))["model_params"]
            result.update(params_m=counts["total"] / 1e6, params=counts)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # up to ~18 GB (1B) that nothing reads
    return result


def part_zero_125m(ctx: Context) -> dict:
    return zero_run(ctx, "zero-125m")


def part_zero_1b(ctx: Context) -> dict:
    return zero_run(ctx, "zero-1b")


def part_zero_fp16(ctx: Context) -> dict:
    r = zero_run(ctx, "zero-fp16")
    if r["precision"] != "fp16":
        raise RuntimeError(f"the run used {r['precision']}, not fp16")
    return r


# --- LoRA track ----------------------------------------------------------------------------------------------


def lora_config(ctx: Context, recipe: str, base: Path, out: Path, settings: dict):
    from persianllama import config as configlib
    from persianllama.lora.config import LoraConfig

    data = configlib.read_recipe(str(ROOT / recipe))
    flags = {"model.base": str(base), "model.tokenizer": str(base), "out_dir": str(out),
             "data.corpus": [str(ctx.work / "corpus")], "data.cache_dir": str(ctx.work / "cache"),
             "log.progress_bar": False, "log.tensorboard": False}
    data = configlib.merge(data, configlib.flags_to_settings(flags))
    over = configlib.parse_overrides([f"{k}={v}" for k, v in settings.items()])
    return configlib.from_dict(LoraConfig, configlib.merge(data, over))


def part_lora_memory(ctx: Context) -> dict:
    """8-bit LoRA steps on the 13B-shaped base at each (seq, micro-batch) point; memory part by part."""
    import dataclasses

    import torch
    from peft import get_peft_model
    from transformers import AutoConfig

    from persianllama.lora import calibrate as cal
    from persianllama.lora.cli import plan_for_config
    from persianllama.lora.model import peft_config, prepare, trainable
    from persianllama.lora.plan import estimate
    from persianllama.lora.preflight import plan_inputs, preflight
    from persianllama.lora.train import autocast, make_optimizer

    sz = ctx.sizes
    dev = device_kind()
    cuda = dev == "cuda"
    base = ctx.work / "lora-13b-shape"
    plan_device = {}
    if cuda:
        props = torch.cuda.get_device_properties(0)
        plan_device = {"plan.device_memory_gb": round(props.total_memory / GIB, 2), "plan.device_name": props.name}

    def cfg_for(seq: int, micro: int):
        return lora_config(ctx, "configs/lora_13b_8bit.yaml", base, ctx.work / "runs" / "lora-13b", {
            "lora.embeddings": "full", "train.device": dev, "train.seq_len": seq, "train.micro_batch_size": micro,
            "train.global_batch_size": micro, **plan_device})

    points = sz["lora_points"]
    setup = preflight(cfg_for(*points[0]))
    arch = AutoConfig.from_pretrained(str(base))
    lo, checkpointing = setup.cfg.lora, setup.cfg.model.gradient_checkpointing
    shape = (f"{arch.num_hidden_layers} layers, hidden {arch.hidden_size}, vocab {arch.vocab_size}, r={lo.r} on "
             f"{len(lo.target_modules)} projections, embeddings {setup.embeddings}, {setup.precision} autocast, "
             f"gradient checkpointing {'on' if checkpointing else 'off'}")
    payload: dict = {"status": "running", "shape": shape, "device": dev, "points": [],
                     "memory": {"method": "allocator" if cuda else "tensors", "static": {}, "points": []}}
    ctx.save(payload)

    def allocated() -> int:
        if cuda:
            torch.cuda.synchronize()
            return torch.cuda.memory_allocated()
        return 0

    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t_build = time.perf_counter()
    m0 = allocated()
    # model.build(setup), with the base made at random instead of loaded from a checkpoint
    model = cal.random_quantized_llama(arch, device=dev, dtype=setup.dtype, seed=setup.cfg.train.seed)
    model = prepare(model, setup)
    m1 = allocated()
    torch.manual_seed(setup.cfg.train.seed)
    net = get_peft_model(model, peft_config(setup))
    for p in net.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    m2 = allocated()
    named = trainable(net)
    params = [p for _, p in named]
    optimizer = make_optimizer(named, setup.cfg)
    net.train()
    payload["build_seconds"] = round(time.perf_counter() - t_build, 1)
    static = {"weights": m1 - m0, "adapter": m2 - m1} if cuda else {}
    tensors = {"weights": cal.frozen_bytes(net), "adapter": cal.trained_bytes(net)}
    vocab_tok = len(setup.tok)
    steps_done = 0
    for seq, micro in points:
        cfg = cfg_for(seq, micro)
        point_setup = dataclasses.replace(setup, cfg=cfg, batch=dataclasses.replace(setup.batch, micro=micro,
                                                                                     seq_len=seq))
        plan = plan_for_config(cfg)  # what `persianllama plan` prints for these settings
        trainer_plan = estimate(plan_inputs(point_setup))
        pt = {"seq_len": seq, "micro_batch": micro, "status": "running",
              "plan_inputs": plan.to_dict()["inputs"], "predicted": cal.predicted_parts(plan.inputs),
              "plan_fits": plan.fits, "trainer_plan_agrees": trainer_plan.allocator_peak == plan.allocator_peak,
              "measured": {}}
        payload["points"].append(pt)
        last = payload.get("last_point_seconds", 0) * (seq * micro) / max(1, payload.get("last_point_tokens", 1))
        if ctx.left() < max(10.0, 1.5 * last):
            pt.update(status="skipped", reason=f"time box: {ctx.left():.0f} s left")
            continue
        t_point = time.perf_counter()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        times, loss_val, oom = [], None, False
        try:
            for _ in range(sz["lora_steps_per_point"]):
                x = torch.randint(0, vocab_tok, (micro, seq), device=dev)
                t0 = time.perf_counter()
                before = allocated()
                with autocast(point_setup):
                    loss = net(input_ids=x, labels=x).loss
                loss.backward()
                if steps_done == 0:
                    tensors["gradients"] = cal.gradient_bytes(net)
                    if cuda:
                        static["gradients"] = allocated() - before
                torch.nn.utils.clip_grad_norm_(params, setup.cfg.train.grad_clip)
                before = allocated()
                optimizer.step()
                if steps_done == 0:
                    tensors["optimizer"] = cal.optimizer_bytes(optimizer)
                    if cuda:
                        static["optimizer"] = allocated() - before
                optimizer.zero_grad(set_to_none=True)
                loss_val = float(loss.detach())
                del loss
                if cuda:
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
                steps_done += 1
        except torch.cuda.OutOfMemoryError:
            oom = True
        if oom:  # out of the except block, so the traceback no longer holds the step's tensors
            loss = x = None  # noqa: F841 - drops the failed step's graph and input
            optimizer.zero_grad(set_to_none=True)
            gc.collect()
            torch.cuda.empty_cache()
            pt.update(status="failed", reason=f"out of memory (the plan predicted {plan.total / GIB:.1f} GiB)")
            ctx.save(payload)
            continue
        if loss_val is None or not math.isfinite(loss_val):
            pt.update(status="failed", reason=f"non-finite loss {loss_val}")
            continue
        measured: dict = {}
        if cuda:
            peak = torch.cuda.max_memory_allocated()
            measured = {"allocator_peak": int(peak),
                        "activations": int(peak - sum(static[q] for q in cal.STATIC_PARTS)),
                        "device_peak": int(torch.cuda.max_memory_reserved() + cal.device_used_outside_allocator())}
            pt["ratio"] = peak / pt["predicted"]["allocator_peak"]
        pt.update(status="ok", measured=measured, loss=loss_val, step_seconds=[round(t, 3) for t in times],
                  tokens_per_s=seq * micro / times[-1])
        payload["last_point_seconds"] = time.perf_counter() - t_point
        payload["last_point_tokens"] = seq * micro
        payload["memory"]["static"] = static if cuda else tensors
        payload["memory"]["static_tensors"] = tensors
        payload["memory"]["points"] = [{"seq_len": p["seq_len"], "micro_batch": p["micro_batch"],
                                        "status": p["status"], "plan_inputs": p["plan_inputs"],
                                        "measured": p["measured"]} for p in payload["points"] if p["status"] == "ok"]
        ctx.save(payload)
    ok = [p for p in payload["points"] if p["status"] == "ok"]
    payload["status"] = "ok" if ok and len(ok) == len(points) else "failed"
    if payload["status"] == "failed":
        payload["reason"] = "; ".join(f"{p['seq_len']}x{p['micro_batch']}: {p.get('reason', p['status'])}"
                                      for p in payload["points"] if p["status"] != "ok") or "no point ran"
    return payload


def lora_trainer_run(ctx: Context, name: str, settings: dict) -> dict:
    """`persianllama lora train` (train.run) on the small base, a few steps."""
    import json as _json

    from persianllama.lora.train import run

    out = ctx.work / "runs" / name
    shutil.rmtree(out, ignore_errors=True)
    cfg = lora_config(ctx, "configs/lora_13b_8bit.yaml", ctx.work / "lora-base", out, {
        **ctx.sizes["lora_smoke"], "train.warmup_steps": 1, "log.log_interval": 1, "log.eval_interval": 0,
        "log.eval_docs": 4, "log.eval_at_start": "false", "checkpoint.save_interval": 1000, "data.val_fraction": 0.01,
        **settings})
    summary = run(cfg)
    shutil.copyfile(out / "metrics.jsonl", ctx.work / "logs" / f"{name}.metrics.jsonl")
    from persianllama.run.metrics import read_metrics

    train_recs, _ = read_metrics(out / "metrics.jsonl")
    recs = [train_recs[s] for s in sorted(train_recs)]
    if not summary.get("finished") or not recs or not all(math.isfinite(r["loss"]) for r in recs):
        raise RuntimeError(f"the run did not finish with finite losses: {summary.get('last_loss')}")
    if not (out / "adapter" / "adapter_model.safetensors").is_file():
        raise RuntimeError("no adapter was written")
    result = {"steps": summary["step"], "loss_first": recs[0]["loss"], "loss_last": recs[-1]["loss"],
              "precision": summary["precision"], "quantization": cfg.model.quantization, "device": summary["device"],
              "validation_bits_per_byte": (summary.get("val") or {}).get("bits_per_byte"),
              "measured_peak_bytes": summary.get("measured_peak_bytes"), "plan_error": summary.get("plan_error"),
              "predicted_allocator_bytes": summary.get("memory_plan_allocator_bytes")}
    if summary.get("measured_peak_bytes"):
        plan = _json.loads((out / "memory_plan.json").read_text(encoding="utf-8"))
        result["memory"] = {"method": "allocator", "static": {}, "points": [
            {"status": "ok", "plan_inputs": plan["inputs"],
             "measured": {"allocator_peak": summary["measured_peak_bytes"]}}]}
    return result


def part_lora_4bit(ctx: Context) -> dict:
    return lora_trainer_run(ctx, "lora-4bit", {"model.quantization": "4bit"})


def part_lora_fp16(ctx: Context) -> dict:
    r = lora_trainer_run(ctx, "lora-fp16", {"model.quantization": "8bit", "model.dtype": "fp16",
                                            "train.precision": "fp16"})
    if r["precision"] != "fp16":
        raise RuntimeError(f"the run used {r['precision']}, not fp16")
    return r


# --- eval harness --------------------------------------------------------------------------------------------


def part_eval(ctx: Context) -> dict:
    """Bits per byte and ParsiNLU multiple choice through `persianllama.eval.runner.evaluate` on the device, and
    bits per byte again on the CPU in fp32: the two must agree."""
    import torch

    from persianllama.eval.config import EvalConfig
    from persianllama.eval.runner import evaluate

    model = ctx.work / "runs" / "zero-125m" / "hf"
    source = "zero-125m's exported model"
    if not (model / "config.json").is_file():  # zero-125m did not run or failed: a random model of its shape
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        tok = AutoTokenizer.from_pretrained(str(ctx.work / "tokenizer"))
        shape = ({"hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 12,
                  "num_key_value_heads": 12} if ctx.mode == "gpu" else dict(TINY_LLAMA))
        shape["max_position_embeddings"] = 2048
        model = ctx.work / "eval-model"
        torch.manual_seed(0)
        LlamaForCausalLM(LlamaConfig(**shape, vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                                     eos_token_id=tok.eos_token_id)).save_pretrained(str(model))
        tok.save_pretrained(str(model))
        source = "a random-init model of the 125M recipe's shape (zero-125m produced none)"
    tasks = ROOT / "corpora" / "sample" / "tasks"
    text = tasks / "ud_persian_seraji" / "fa_seraji-ud-test.conllu"
    dev = device_kind()
    common = {"model": str(model), "data_dir": str(tasks), "data": {"text": str(text)}, "batch_size": 8,
              "bootstrap_iters": 0, "max_length": 512}
    res = evaluate(EvalConfig(**common, tasks=["persian_bpb", "parsinlu_mc"], device=dev, dtype="auto",
                              output=str(ctx.work / "runs" / "eval" / dev)))
    bpb = res["results"]["persian_bpb"]
    details = bpb["bpb_details"]
    mc = res["results"]["parsinlu_mc"]
    info = res["persianllama"]["model_info"]
    vocab = info.get("embedding_rows") or info.get("tokenizer_size")  # the output layer's size
    out = {"model": source, "device": info.get("device", dev), "dtype": info.get("dtype"),
           "bits_per_byte": bpb["bits_per_byte,none"],
           "uniform_bpb": details["tokens"] * math.log2(vocab) / details["bytes"],
           "documents": details["documents"], "mc_acc": mc["acc,none"], "mc_acc_norm": mc.get("acc_norm,none"),
           "mc_n": mc.get("sample_len"), "mc_chance": 0.25,  # 4 candidates per question
           "seconds_by_stage": res["persianllama"]["seconds"]}
    if not math.isfinite(out["bits_per_byte"]) or not 0 <= out["mc_acc"] <= 1:
        raise RuntimeError(f"implausible scores: bits/byte {out['bits_per_byte']}, acc {out['mc_acc']}")
    if dev == "cuda":  # the same model on the CPU in fp32: the GPU's bf16 numbers must be close
        cpu = evaluate(EvalConfig(**common, tasks=["persian_bpb"], device="cpu", dtype="fp32",
                                  output=str(ctx.work / "runs" / "eval" / "cpu")))
        out["bpb_cpu"] = cpu["results"]["persian_bpb"]["bits_per_byte,none"]
        out["bpb_rel_diff"] = out["bits_per_byte"] / out["bpb_cpu"] - 1
        if abs(out["bpb_rel_diff"]) > 0.03:
            out.update(status="failed", reason=f"bits per byte on {dev} ({out['bits_per_byte']:.4f}) differs from "
                                               f"the CPU fp32 value ({out['bpb_cpu']:.4f}) by more than 3%")
    return out


PART_FUNCTIONS = {
    "setup": part_setup, "zero-125m": part_zero_125m, "zero-1b": part_zero_1b, "lora-13b-8bit": part_lora_memory,
    "eval-125m": part_eval, "lora-4bit": part_lora_4bit, "lora-fp16": part_lora_fp16, "zero-fp16": part_zero_fp16,
}


if __name__ == "__main__":
    sys.exit(main())
