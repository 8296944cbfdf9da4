"""This process's place in a launched run (deepspeed, torchrun, Slurm) or a world of one."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the run, from the launcher's environment (RANK, WORLD_SIZE, ...)."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    launched: bool
    """False when run as plain ``python scripts/pretrain.py`` (one process, env filled in by us)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dist_env(local_rank_arg: int | None = None) -> DistEnv:
    """Read the launcher's variables; without a launcher, set up a world of one process.

    The `deepspeed` launcher sets RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_SIZE, MASTER_ADDR/PORT (and
    passes ``--local_rank``); torchrun sets LOCAL_WORLD_SIZE. Plain ``python`` sets none of them,
    and DeepSpeed would then try MPI discovery (and fail without mpi4py), so we fill them in.
    """
    launched = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if not launched:
        os.environ.setdefault("RANK", "0")
        os.environ.setdefault("WORLD_SIZE", "1")
        os.environ.setdefault("LOCAL_RANK", str(local_rank_arg or 0))
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    elif "LOCAL_RANK" not in os.environ and local_rank_arg is not None:
        os.environ["LOCAL_RANK"] = str(local_rank_arg)
    world = int(os.environ["WORLD_SIZE"])
    local = os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("LOCAL_SIZE")
    local_world = int(local) if local else (world if launched else 1)
    return DistEnv(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world, local_world, launched)


def single_process() -> DistEnv:
    """The world of a one-device track (LoRA): rank 0 of 1."""
    return DistEnv(0, 0, 1, 1, False)
