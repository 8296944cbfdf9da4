"""Batch arithmetic: global batch = micro batch x accumulation x ranks, derived or refused."""

from __future__ import annotations

from dataclasses import dataclass

from persianllama.errors import UserError


@dataclass(frozen=True)
class Batch:
    micro: int
    accum: int
    world: int
    seq_len: int

    @property
    def global_batch(self) -> int:
        """Sequences per optimizer step over all ranks."""
        return self.micro * self.accum * self.world

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch * self.seq_len


def batch_arithmetic(train, world_size: int) -> Batch:
    """Derive what is unset, refuse what does not multiply out. `train` is any `TrainSettings`
    (ranges of the single fields were checked when the settings were loaded)."""
    micro = train.micro_batch_size
    per_micro_step = micro * world_size
    if train.global_batch_size is None:
        return Batch(micro, train.grad_accum_steps or 1, world_size, train.seq_len)
    g = train.global_batch_size
    if g % per_micro_step:
        raise UserError(
            f"train.global_batch_size={g} is not a multiple of micro_batch_size {micro} x world size "
            f"{world_size} = {per_micro_step}; pick a global batch that is, or change micro_batch_size")
    accum = g // per_micro_step
    if train.grad_accum_steps is not None and train.grad_accum_steps != accum:
        raise UserError(
            f"train.global_batch_size={g} needs grad_accum_steps={accum} with micro_batch_size {micro} "
            f"on {world_size} rank(s), but train.grad_accum_steps={train.grad_accum_steps}; set only one of them")
    return Batch(micro, accum, world_size, train.seq_len)


def check_enough_data(n_blocks: int, batch: Batch, train_tokens: int) -> None:
    if n_blocks < batch.global_batch:
        raise UserError(
            f"not enough data for one optimizer step: the packed corpus has {n_blocks} blocks of "
            f"{batch.seq_len} tokens ({train_tokens:,} tokens) but one step takes {batch.global_batch} "
            f"sequences (micro {batch.micro} x accumulation {batch.accum} x {batch.world} rank(s)); add text, or "
            "lower train.micro_batch_size, grad_accum_steps or seq_len")
