"""Reading packed data: memory-mapped blocks, held-out texts, and a resumable block order.

`PackedData` opens a cache folder written by `persianllama.data.packing`; nothing is loaded into memory
until a block is read. `BlockOrder` maps a *global sample index* (how many sequences all ranks have
consumed so far) to a block, through a seeded permutation per epoch. A training loop that records
only "samples consumed" can therefore resume exactly where it stopped, even with another number of
ranks, as long as the global batch stays the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from persianllama.errors import UserError


class PackedData:
    """A packed cache folder (see `persianllama.data.packing`)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        meta_file = self.path / "meta.json"
        if not meta_file.is_file():
            raise UserError(f"{self.path} is not a packed-data folder (no meta.json; was packing cut off?)")
        self.meta: dict[str, Any] = json.loads(meta_file.read_text(encoding="utf-8"))
        self.built = False
        """True when `pack` built this cache in the current call (False: reused)."""
        self._tokens: np.memmap | None = None

    # sizes
    @property
    def block_size(self) -> int:
        return int(self.meta["block_size"])

    @property
    def n_blocks(self) -> int:
        return int(self.meta["n_blocks"])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.meta["dtype"])

    def __len__(self) -> int:
        return self.n_blocks

    def __repr__(self) -> str:
        return (f"PackedData({self.path}, {self.n_blocks} blocks x {self.block_size}, "
                f"{self.meta['val_docs']} validation docs)")

    # training tokens
    @property
    def tokens(self) -> np.memmap:
        """The whole training token stream (read-only memory map)."""
        if self._tokens is None:
            if self.meta["train_tokens"] == 0:
                self._tokens = np.zeros(0, dtype=self.dtype)  # type: ignore[assignment]
            else:
                self._tokens = np.memmap(self.path / "train.bin", dtype=self.dtype, mode="r")
        return self._tokens

    def blocks(self) -> np.ndarray:
        """All blocks as an ``(n_blocks, block_size)`` view of the memory map."""
        n = self.n_blocks * self.block_size
        return self.tokens[:n].reshape(self.n_blocks, self.block_size)

    def block(self, i: int) -> np.ndarray:
        b = self.block_size
        return np.asarray(self.tokens[i * b:(i + 1) * b])

    def batch(self, indices) -> np.ndarray:
        """Blocks `indices` stacked into an ``(len(indices), block_size)`` int64 array."""
        b = self.block_size
        toks = self.tokens
        return np.stack([toks[i * b:(i + 1) * b] for i in indices]).astype(np.int64)

    # held-out data
    def val_texts(self, limit: int | None = None) -> list[str]:
        """Raw text of the held-out documents, in corpus order (first `limit`)."""
        out: list[str] = []
        with open(self.path / "val.jsonl", encoding="utf-8") as fh:
            for line in fh:
                if limit is not None and len(out) >= limit:
                    break
                out.append(json.loads(line)["text"])
        return out

    def val_tokens(self) -> np.ndarray:
        """The held-out documents' tokens (each followed by EOS), as one stream."""
        if self.meta["val_tokens"] == 0:
            return np.zeros(0, dtype=self.dtype)
        return np.memmap(self.path / "val.bin", dtype=self.dtype, mode="r")

    def torch_dataset(self):
        """A map-style ``torch.utils.data.Dataset`` of ``{"input_ids", "labels"}`` blocks (HF Trainer-ready)."""
        import torch

        data = self

        class _Blocks(torch.utils.data.Dataset):
            def __len__(self) -> int:
                return data.n_blocks

            def __getitem__(self, i: int) -> dict:
                ids = torch.from_numpy(data.block(i).astype(np.int64))
                return {"input_ids": ids, "labels": ids.clone()}

        return _Blocks()


class BlockOrder:
    """Global sample index -> block index: every block once per epoch, in a seeded random order."""

    def __init__(self, n_blocks: int, seed: int):
        if n_blocks <= 0:
            raise UserError("no training blocks: the packed corpus is shorter than one block")
        self.n_blocks = n_blocks
        self.seed = seed
        self._epoch = -1
        self._perm: np.ndarray | None = None

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, epoch])
            dtype = np.uint32 if self.n_blocks < 2**32 else np.uint64
            self._perm = rng.permutation(self.n_blocks).astype(dtype)
            self._epoch = epoch
        assert self._perm is not None
        return self._perm

    def epoch_of(self, sample: int) -> float:
        return sample / self.n_blocks

    def blocks(self, start: int, count: int) -> np.ndarray:
        """Blocks for global samples ``start .. start+count-1`` (may cross an epoch boundary)."""
        out = np.empty(count, dtype=np.int64)
        for k in range(count):
            g = start + k
            out[k] = self.permutation(g // self.n_blocks)[g % self.n_blocks]
        return out

    def micro_batch(self, samples_before_step: int, micro_step: int, rank: int, micro_batch_size: int,
                    world_size: int) -> np.ndarray:
        """The blocks one rank trains on in one micro step of an optimizer step.

        An optimizer step consumes ``micro_batch_size * world_size * accumulation`` samples from
        ``samples_before_step``; micro step ``m`` of rank ``r`` takes its contiguous slice.
        """
        start = samples_before_step + (micro_step * world_size + rank) * micro_batch_size
        return self.blocks(start, micro_batch_size)
