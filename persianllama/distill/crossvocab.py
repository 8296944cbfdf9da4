"""Teacher inputs and aligned positions for a batch of student blocks, when teacher and student tokenize differently.

A packed student block holds pieces of documents separated by special tokens (BOS/EOS). Each piece is turned
back into its bytes (the student's byte table), cut to whole UTF-8 characters where the block boundary split one,
and encoded again by the teacher's own tokenizer, after the teacher's BOS: the teacher never reads student ids.
`persianllama.distill.align` then pairs the positions that end at the same byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from persianllama.distill.align import Pieces, aligned_positions


def _whole_chars(data: bytes) -> tuple[int, int]:
    """(bytes to drop at the start, bytes to keep) so that `data` is cut to whole UTF-8 characters."""
    lead = 0
    while lead < len(data) and (data[lead] & 0xC0) == 0x80:  # continuation bytes of a character begun earlier
        lead += 1
    end = len(data)
    back = end - 1
    while back >= lead and (data[back] & 0xC0) == 0x80:
        back -= 1
    if back >= lead:
        first = data[back]
        need = 1 if first < 0x80 else 2 if first >> 5 == 0b110 else 3 if first >> 4 == 0b1110 else 4
        if end - back < need:
            end = back  # the last character is cut off by the block's end
    return lead, end


@dataclass
class Batch:
    teacher_ids: list[list[int]] = field(default_factory=list)
    """One teacher sequence per document piece."""
    student_rows: list[np.ndarray] = field(default_factory=list)
    student_pos: list[np.ndarray] = field(default_factory=list)
    teacher_row: list[np.ndarray] = field(default_factory=list)
    teacher_pos: list[np.ndarray] = field(default_factory=list)
    skipped: int = 0
    """Pieces the teacher's tokenizer does not spell back (left out of the KD term, counted)."""

    @property
    def n_pairs(self) -> int:
        return int(sum(len(p) for p in self.student_pos))


def plan(student_ids: np.ndarray, student: Pieces, teacher_tok, teacher: Pieces, *, max_len: int | None = None) -> Batch:
    """The teacher sequences and the aligned (student row, position) <-> (teacher sequence, position) pairs."""
    out = Batch()
    bos = teacher_tok.bos_token_id
    prefix = [bos] if bos is not None else []
    for r, row in enumerate(np.asarray(student_ids)):
        lens = np.fromiter((len(student.table[int(t)]) for t in row), dtype=np.int64, count=len(row))
        start = 0
        while start < len(row):
            if lens[start] == 0:
                start += 1
                continue
            stop = start
            while stop < len(row) and lens[stop] > 0:
                stop += 1
            _add_piece(out, r, start, row[start:stop], lens[start:stop], student, teacher_tok, teacher, prefix, max_len)
            start = stop
    return out


def _add_piece(out: Batch, r: int, start: int, ids, lens, student: Pieces, teacher_tok, teacher: Pieces,
               prefix: list[int], max_len: int | None) -> None:
    raw = b"".join(student.table[int(t)] for t in ids)
    lead, end = _whole_chars(raw)
    text_bytes = raw[lead:end]
    if not text_bytes:
        return
    try:
        text = text_bytes.decode("utf-8")
    except UnicodeDecodeError:
        out.skipped += 1
        return
    s_ends = np.cumsum(lens) - lead
    t_ids = teacher_tok(text, add_special_tokens=False)["input_ids"]
    try:
        t_ends = teacher.ends(t_ids, text_bytes)
    except ValueError:
        out.skipped += 1
        return
    s_ends = np.where(s_ends > len(text_bytes), -1, s_ends)  # the cut-off last character: no boundary
    s_pos, t_pos = aligned_positions(s_ends, t_ends)
    t_seq = prefix + list(t_ids)
    t_pos = t_pos + len(prefix)
    if max_len is not None and len(t_seq) > max_len:
        keep = t_pos < max_len
        t_seq, s_pos, t_pos = t_seq[:max_len], s_pos[keep], t_pos[keep]
    if not len(s_pos):
        return
    out.teacher_ids.append(t_seq)
    out.student_rows.append(np.full(len(s_pos), r, dtype=np.int64))
    out.student_pos.append(s_pos + start)
    out.teacher_row.append(np.full(len(t_pos), len(out.teacher_ids) - 1, dtype=np.int64))
    out.teacher_pos.append(t_pos)


def teacher_logits_at(teacher, batch: Batch, pad_id: int, micro: int = 16):
    """The teacher's logits at the aligned positions, [pairs, V_teacher], in the order of `batch`'s pairs."""
    import torch

    rows = np.concatenate(batch.teacher_row)
    pos = np.concatenate(batch.teacher_pos)
    picked = []
    for lo in range(0, len(batch.teacher_ids), micro):
        seqs = batch.teacher_ids[lo:lo + micro]
        n = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), n), pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), n), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(s)] = 1
        logits = teacher.logits(ids, mask)
        sel = (rows >= lo) & (rows < lo + len(seqs))
        picked.append(logits[torch.as_tensor(rows[sel] - lo), torch.as_tensor(pos[sel])])
    return torch.cat(picked)
