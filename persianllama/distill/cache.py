"""The teacher's top-k log-probabilities for every training block, written once and read back by block index.

    CACHE/meta.json                      what it was written for (teacher, tokenizer, data, k, T), and its size
    CACHE/shard_00000.safetensors        indices int32 [n, L, k], logprobs fp32 [n, L, k], tail fp32 [n, L]

Per token that is k * 8 + 4 bytes (k = 32: 260 bytes), against 2 * V bytes for a bf16 full distribution
(V = 32,000: 64 KB). Each shard is written atomically and a finished shard is never written again, so an
interrupted fill continues where it stopped. The log-probabilities are at temperature T (the top-k set is the
same at any T, the tail mass is not), so a cache serves one temperature; the key includes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from persianllama.atomic import write_json
from persianllama.errors import UserError

log = logging.getLogger("persianllama.distill")

BLOCKS_PER_SHARD = 256


def cache_key(*, teacher: str, tokenizer: str, data_key: str, block_size: int, k: int, temperature: float) -> str:
    text = json.dumps([teacher, tokenizer, data_key, block_size, k, temperature])
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


class TopKCache:
    def __init__(self, root: str | Path, key: str, *, n_blocks: int, block_size: int, k: int):
        self.path = Path(root) / f"topk-{key}"
        self.key, self.n_blocks, self.block_size, self.k = key, n_blocks, block_size, k
        self._open: dict[int, dict] = {}

    def shard_file(self, s: int) -> Path:
        return self.path / f"shard_{s:05d}.safetensors"

    @property
    def n_shards(self) -> int:
        return -(-self.n_blocks // BLOCKS_PER_SHARD)

    def missing(self) -> list[int]:
        return [s for s in range(self.n_shards) if not self.shard_file(s).is_file()]

    def fill(self, data, teacher, temperature: float, vocab: int, batch_size: int, *, progress: bool = True) -> None:
        """Run the teacher over every training block not yet in the cache and write the missing shards."""
        import torch
        from safetensors.torch import save_file

        from persianllama.distill.losses import tempered_logprobs, topk_buckets

        missing = self.missing()
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.path / "meta.json", {"key": self.key, "n_blocks": self.n_blocks, "block_size": self.block_size,
                                             "k": self.k, "temperature": temperature, "blocks_per_shard": BLOCKS_PER_SHARD,
                                             "bytes_per_token": self.k * 8 + 4})
        if not missing:
            log.info("teacher cache complete: %s (%d shards)", self.path, self.n_shards)
            return
        log.info("teacher cache: writing %d of %d shards (top-%d at T=%g) to %s", len(missing), self.n_shards, self.k,
                 temperature, self.path)
        start, done = time.perf_counter(), 0
        for s in missing:
            lo, hi = s * BLOCKS_PER_SHARD, min(self.n_blocks, (s + 1) * BLOCKS_PER_SHARD)
            idx, val, tail = [], [], []
            for b in range(lo, hi, batch_size):
                x = torch.from_numpy(data.batch(np.arange(b, min(hi, b + batch_size))).astype(np.int64))
                logp = tempered_logprobs(teacher.logits(x)[..., :vocab], temperature)
                i, v, t = topk_buckets(logp, self.k)
                idx.append(i.to(torch.int32).cpu())
                val.append(v.cpu())
                tail.append(t.cpu())
                done += x.shape[0]
            tmp = self.shard_file(s).with_suffix(".tmp")
            save_file({"indices": torch.cat(idx), "logprobs": torch.cat(val), "tail": torch.cat(tail)}, str(tmp))
            os.replace(tmp, self.shard_file(s))
            if progress:
                rate = done / max(time.perf_counter() - start, 1e-9)
                log.info("teacher cache: shard %d/%d (%d blocks, %.1f blocks/s)", s + 1, self.n_shards, hi - lo, rate)

    def _shard(self, s: int) -> dict:
        if s not in self._open:
            from safetensors.torch import load_file

            f = self.shard_file(s)
            if not f.is_file():
                raise UserError(f"teacher cache {self.path} lacks {f.name}; run the same command again to fill it")
            self._open = {s: load_file(str(f))}  # one shard in memory at a time
        return self._open[s]

    def get(self, blocks) -> tuple:
        """(indices int64 [B, L, k], log-probs [B, L, k], log tail [B, L]) for the block numbers `blocks`."""
        import torch

        rows = [[], [], []]
        for b in (int(x) for x in blocks):
            shard = self._shard(b // BLOCKS_PER_SHARD)
            r = b % BLOCKS_PER_SHARD
            rows[0].append(shard["indices"][r])
            rows[1].append(shard["logprobs"][r])
            rows[2].append(shard["tail"][r])
        return torch.stack(rows[0]).long(), torch.stack(rows[1]), torch.stack(rows[2])
