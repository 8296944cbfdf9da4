"""Zero-track checkpoints: a DeepSpeed engine's state in the run core's checkpoint folders.

``OUT/checkpoints/step_00001000/`` holds DeepSpeed's files (model, optimizer and scheduler states; one
shard per rank under ZeRO), ``rng_state_<rank>.safetensors`` (each rank's RNG states) and, written last by
rank 0 once every rank has finished, ``trainer_state.json`` with the manifest (`persianllama.run.checkpoint`).
DeepSpeed's ``.pt`` files are read with ``torch.load(weights_only=True)`` and an allow-list.
"""

from __future__ import annotations

import logging
from pathlib import Path

from persianllama.errors import UserError
from persianllama.run import checkpoint as core

log = logging.getLogger(__name__)


def check_stage(path: Path, state: dict, *, world_size: int, zero_stage: int) -> None:
    """Refuse a checkpoint whose shards this run (ranks, ZeRO stage) cannot load."""
    saved_world = int(state.get("world_size", world_size))
    saved_stage = int(state.get("zero_stage", zero_stage))
    if saved_stage != zero_stage:
        raise UserError(
            f"checkpoint {path} was written with ZeRO stage {saved_stage}, this run uses stage {zero_stage}; "
            "resume with the same ds_config, or export it and start a new run from it with model.init_from")
    if zero_stage >= 1 and saved_world != world_size:
        raise UserError(
            f"checkpoint {path} was written by {saved_world} ranks with ZeRO stage {saved_stage}, but this run has "
            f"{world_size}; ZeRO's optimizer shards need the same number of ranks (or export it and start a new "
            "run from it with model.init_from)")


class Checkpoints:
    """Saving and loading through a DeepSpeed engine; every rank calls `save` and `load` together."""

    def __init__(self, root: Path, *, rank: int, world_size: int, keep_last: int = 3):
        self.root = Path(root)
        self.rank = rank
        self.world_size = world_size
        self.keep_last = keep_last

    def _barrier(self) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()

    def save(self, engine, state: dict) -> Path:
        """Write checkpoint ``step_<state['step']>``; a no-op if that step is already complete."""
        step = int(state["step"])
        path = self.root / core.tag_for(step)
        if core.is_complete(path):
            return path
        if self.rank == 0:
            core.prepare(self.root, step)
        self._barrier()
        engine.save_checkpoint(str(self.root), tag=path.name, client_state={"trainer": state}, save_latest=False)
        core.save_rng(path / f"rng_state_{self.rank}.safetensors")
        self._barrier()
        if self.rank == 0:
            core.finalize(path, state)
            core.prune(self.root, self.keep_last)
        self._barrier()
        return path

    def load(self, engine, path: Path, *, zero_stage: int) -> dict:
        """Restore model, optimizer, scheduler and this rank's RNG from `path`; return the trainer state."""
        state = core.read_state(path)
        check_stage(path, state, world_size=self.world_size, zero_stage=zero_stage)
        core.use_safe_deepspeed_loading(engine)
        load_path, _ = engine.load_checkpoint(str(path.parent), tag=path.name, load_optimizer_states=True,
                                              load_lr_scheduler_states=True)
        if load_path is None:
            raise UserError(f"DeepSpeed could not load checkpoint {path}")
        rng = path / f"rng_state_{self.rank}.safetensors"
        if rng.is_file():
            core.load_rng(rng)
        else:
            log.warning("no RNG state for rank %d in %s; continuing with fresh RNG", self.rank, path)
        return state
