"""Conversations packed into fixed-length rows without cross-talk, and the batches the model sees.

Several tokenized conversations share one row of `seq_len` tokens (first-fit, longest first). Inside a row
each conversation keeps its own position ids (restarting at 0) and a block-diagonal causal attention mask,
so a token attends only to earlier tokens of its own conversation: the logits, and so the loss, of a
packed row are those of its conversations run one by one (tests/sft/test_packing.py checks it to 1e-5).
Padding (label -100) attends only to padding.

The mask is a 4-D boolean mask for PyTorch SDPA (exact here) and an additive float mask for eager attention.
flash-attention-2 gets no mask: transformers reads conversation boundaries from the restarting position ids
(its varlen path), the same layout TRL calls padding-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE = -100


@dataclass
class Example:
    ids: list[int]
    labels: list[int]


@dataclass
class Packed:
    """Rows of examples: `rows[r]` lists the indices of the examples packed into row r, in order."""

    examples: list[Example]
    rows: list[list[int]]
    seq_len: int
    dropped: int = 0
    truncated: int = 0

    @property
    def tokens(self) -> int:
        return sum(len(e.ids) for e in self.examples)

    def fill(self) -> float:
        """Share of row positions that hold real tokens."""
        return self.tokens / max(1, len(self.rows) * self.seq_len)


def fit(examples: list[Example], seq_len: int, too_long: str) -> tuple[list[Example], int, int]:
    """Examples that fit a row: too long ones dropped or cut (counted); ones with no trained token dropped."""
    kept, dropped, truncated = [], 0, 0
    for e in examples:
        if len(e.ids) > seq_len:
            if too_long == "drop":
                dropped += 1
                continue
            e = Example(e.ids[:seq_len], e.labels[:seq_len])
            truncated += 1
        # The first token is never predicted by its own conversation; in a packed row its label would make the
        # previous conversation's last token predict it: cross-talk. So it is never a target.
        e = Example(e.ids, [IGNORE, *e.labels[1:]])
        if all(t == IGNORE for t in e.labels):  # nothing left to learn
            dropped += 1
            continue
        kept.append(e)
    return kept, dropped, truncated


def pack(examples: list[Example], seq_len: int, *, packing: bool = True, too_long: str = "drop") -> Packed:
    """First-fit decreasing: each example goes into the first row with room, longest first (deterministic)."""
    kept, dropped, truncated = fit(examples, seq_len, too_long)
    if not packing:
        return Packed(kept, [[i] for i in range(len(kept))], seq_len, dropped, truncated)
    order = sorted(range(len(kept)), key=lambda i: (-len(kept[i].ids), i))
    rows: list[list[int]] = []
    free: list[int] = []
    for i in order:
        n = len(kept[i].ids)
        for r, room in enumerate(free):
            if room >= n:
                rows[r].append(i)
                free[r] -= n
                break
        else:
            rows.append([i])
            free.append(seq_len - n)
    return Packed(kept, rows, seq_len, dropped, truncated)


def row_arrays(p: Packed, row: int, pad_id: int) -> tuple[np.ndarray, ...]:
    """(input ids, labels, position ids, segment ids) of one row; padding has segment -1."""
    T = p.seq_len
    ids = np.full(T, pad_id, dtype=np.int64)
    labels = np.full(T, IGNORE, dtype=np.int64)
    pos = np.zeros(T, dtype=np.int64)
    seg = np.full(T, -1, dtype=np.int64)
    at = 0
    for k, i in enumerate(p.rows[row]):
        e = p.examples[i]
        n = len(e.ids)
        ids[at:at + n] = e.ids
        labels[at:at + n] = e.labels
        pos[at:at + n] = np.arange(n)
        seg[at:at + n] = k
        at += n
    pos[at:] = np.arange(T - at)
    return ids, labels, pos, seg


def collate(p: Packed, rows: list[int] | np.ndarray, pad_id: int, attn: str = "sdpa") -> tuple[dict, int]:
    """The model's keyword inputs for these rows (CPU tensors) and the number of real tokens in them."""
    import torch

    parts = [row_arrays(p, int(r), pad_id) for r in rows]
    ids, labels, pos, seg = (torch.from_numpy(np.stack(x)) for x in zip(*parts))
    batch = {"input_ids": ids, "labels": labels, "position_ids": pos}
    if attn != "flash_attention_2":
        T = ids.shape[1]
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
        allowed = (seg[:, :, None] == seg[:, None, :]) & causal  # (B, T, T): same conversation, not the future
        mask = allowed[:, None]
        if attn == "eager":
            mask = torch.zeros(mask.shape, dtype=torch.float32).masked_fill(~mask, torch.finfo(torch.float32).min)
        batch["attention_mask"] = mask
    return batch, int((seg >= 0).sum())
