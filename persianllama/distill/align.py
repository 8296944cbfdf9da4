"""Which teacher position predicts the same thing as which student position, when the two tokenizers differ.

Both models read the same normalized text. A student position that ends at byte b and a teacher position that
ends at byte b have read the same prefix, so their next-token distributions answer the same question ("what comes
after these bytes?") over different vocabularies: those pairs are aligned. Between two shared boundaries each
side has a span of one or more tokens (a word one tokenizer keeps whole and the other splits, a character one of
them spells in byte-fallback pieces): the span is merged, and only its last position is compared.

Bytes are read from each tokenizer's own vocabulary, not from its offsets: a byte-level BPE piece maps back
through GPT-2's byte alphabet, a SentencePiece piece is UTF-8 with "▁" for a space, and a byte-fallback piece
``<0xE2>`` is that one byte. Special tokens (BOS, EOS) are zero bytes. A SentencePiece "dummy prefix" (the space
the tokenizer adds before the first word) is recognised and not counted as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from persianllama.errors import UserError

_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable alphabet for the 256 bytes, reversed (the byte-level BPE pre-tokenizer's mapping)."""
    from persianllama.tokenizer.tiktoken_ranks import bytes_to_unicode

    return {c: b for b, c in bytes_to_unicode().items()}


def _is_byte_level(tokenizer) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    import json

    spec = json.loads(backend.to_str())

    def has(node) -> bool:
        if isinstance(node, dict):
            return node.get("type") == "ByteLevel" or any(has(v) for v in node.values())
        if isinstance(node, list):
            return any(has(v) for v in node)
        return False

    return has(spec.get("pre_tokenizer")) or has(spec.get("decoder"))


def token_bytes(tokenizer) -> list[bytes]:
    """The bytes each token id stands for in running text (b"" for special tokens)."""
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    special = set(tokenizer.all_special_ids)
    out: list[bytes] = []
    if _is_byte_level(tokenizer):
        dec = _byte_decoder()
        for i, piece in enumerate(vocab):
            if i in special or piece is None:
                out.append(b"")
            elif all(ch in dec for ch in piece):
                out.append(bytes(dec[ch] for ch in piece))
            else:  # an added token stored as plain text
                out.append(piece.encode("utf-8"))
        return out
    for i, piece in enumerate(vocab):
        if i in special or piece is None:
            out.append(b"")
            continue
        m = _BYTE_PIECE.match(piece)
        out.append(bytes([int(m.group(1), 16)]) if m else piece.replace("\u2581", " ").encode("utf-8"))
    return out


@dataclass
class Pieces:
    """A tokenizer's byte table, to place its tokens on the text's bytes."""

    table: list[bytes]

    @classmethod
    def of(cls, tokenizer) -> Pieces:
        return cls(token_bytes(tokenizer))

    def ends(self, ids, text: bytes) -> np.ndarray:
        """End byte offset of each token of `ids` in `text` (special tokens end where the previous one did).

        Raises ValueError when the tokens do not spell `text` (a tokenizer that changes text: normalization,
        unknown characters); a leading dummy-prefix space is allowed."""
        lens = np.fromiter((len(self.table[int(i)]) for i in ids), dtype=np.int64, count=len(ids))
        ends = np.cumsum(lens)
        spelled = b"".join(self.table[int(i)] for i in ids)
        if spelled == text:
            return ends
        if spelled == b" " + text:  # SentencePiece's dummy prefix: the first piece carries one extra space
            return np.maximum(ends - 1, 0)
        raise ValueError("tokens do not spell the text")


def aligned_positions(student_ends: np.ndarray, teacher_ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(student positions, teacher positions) whose tokens end at the same byte, one pair per shared boundary.

    Where several tokens end at a boundary (a zero-byte special token after a piece), the last of them is used:
    it has read everything up to the boundary."""
    s_last: dict[int, int] = {}
    for i, e in enumerate(student_ends.tolist()):
        if e > 0:
            s_last[e] = i
    t_last: dict[int, int] = {}
    for j, e in enumerate(teacher_ends.tolist()):
        if e > 0:
            t_last[e] = j
    shared = sorted(s_last.keys() & t_last.keys())
    return (np.array([s_last[b] for b in shared], dtype=np.int64),
            np.array([t_last[b] for b in shared], dtype=np.int64))


def shared_pieces(student: Pieces, teacher: Pieces) -> tuple[np.ndarray, np.ndarray]:
    """(student ids, teacher ids) of the non-special pieces that are the same bytes in both vocabularies."""
    index = {b: j for j, b in enumerate(teacher.table) if b}
    pairs = [(i, index[b]) for i, b in enumerate(student.table) if b and b in index]
    if not pairs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    s, t = zip(*pairs)
    return np.array(s, dtype=np.int64), np.array(t, dtype=np.int64)


def check_round_trip(tokenizer, texts: list[str], name: str) -> None:
    """Refuse a tokenizer whose tokens do not spell the (already normalized) text: the byte alignment needs it."""
    pieces = Pieces.of(tokenizer)
    for n, text in enumerate(texts):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        try:
            pieces.ends(ids, text.encode("utf-8"))
        except ValueError:
            spelled = b"".join(pieces.table[i] for i in ids).decode("utf-8", errors="replace")
            at = next((k for k, (a, b) in enumerate(zip(spelled, text)) if a != b), min(len(spelled), len(text)))
            raise UserError(
                f"the {name} tokenizer changes the text it reads (document {n}, character {at}: "
                f"{text[max(0, at - 10):at + 10]!r} comes back as {spelled[max(0, at - 10):at + 10]!r}), so its "
                "tokens cannot be aligned by bytes; normalize the corpus once upstream (`persianllama corpus` does) "
                "or use a tokenizer without a normalizer") from None
