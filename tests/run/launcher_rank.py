"""A stand-in training rank for tests/run/test_launcher_signal.py.

It follows its launcher (`follow_launcher`, or with ``--follow-parents`` the parent and grandparent
whatever they are), turns SIGTERM into a flag, and runs "steps" until the flag is set. With
``--dist`` it initialises DeepSpeed's distributed backend (gloo) and, like the Zero track's loop,
all-reduces the flag after every step so that all ranks stop after the same step. Then it writes
its "saved" marker (where a checkpoint would be saved) and exits 128 + the signal number.

Everything it does goes to ``OUT/rank<RANK>.jsonl``, one JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from persianllama.run.launcher import Launcher, LauncherWatch, follow_launcher

parser = argparse.ArgumentParser()
parser.add_argument("--local_rank", type=int, default=None)  # the deepspeed launcher adds it
parser.add_argument("--out", required=True)
parser.add_argument("--dist", action="store_true")
parser.add_argument("--follow-parents", action="store_true")
parser.add_argument("--no-follow", action="store_true", help="do not follow the launcher (shows the problem)")
parser.add_argument("--step-seconds", type=float, default=0.2)
parser.add_argument("--max-steps", type=int, default=3000)
args = parser.parse_args()

rank = int(os.environ.get("RANK", "0"))
record = Path(args.out) / f"rank{rank}.jsonl"


def note(event: str, **fields) -> None:
    with record.open("a") as f:
        f.write(json.dumps({"event": event, "time": time.time(), **fields}) + "\n")


signals: list[int] = []
signal.signal(signal.SIGTERM, lambda signum, frame: signals.append(signum))
if args.follow_parents:
    import psutil

    parent = os.getppid()
    watch = LauncherWatch([Launcher(parent, "parent"), Launcher(psutil.Process(parent).ppid(), "grandparent")],
                          interval=0.2).start()
elif not args.no_follow:
    watch = follow_launcher()
else:
    watch = None
note("start", pid=os.getpid(), ppid=os.getppid(),
     chain=[[c.pid, c.kind] for c in watch.chain] if watch else [])

if args.dist:
    import deepspeed
    import torch
    import torch.distributed as dist

    deepspeed.init_distributed(dist_backend="gloo")
    note("dist", world=dist.get_world_size())

step = 0
stop = False
while not stop and step < args.max_steps:
    step += 1
    time.sleep(args.step_seconds)
    if args.dist:
        flag = torch.tensor([float(bool(signals))])
        dist.all_reduce(flag)  # any rank signalled -> every rank stops after this same step
        stop = flag.item() > 0
    else:
        stop = bool(signals)
    note("step", step=step)

gone = watch.gone if watch else None
note("stop", step=step, signalled=bool(signals), gone=gone.kind if gone else None)
note("saved", step=step)  # where the training loop saves its checkpoint
if args.dist:
    dist.barrier()
    dist.destroy_process_group()
# Stopped by the flag: 128 + our own signal, or SIGTERM's when another rank was signalled (as the Zero track).
code = 128 + (signals[0] if signals else signal.SIGTERM) if stop else 0
note("exit", code=code)
sys.exit(code)
