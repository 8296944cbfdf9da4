"""tiktoken rank files (``base64-token rank`` per line: LLaMA-3's tokenizer.model, gpt2.tiktoken) as HF tokenizers.

No `tiktoken` install needed: the ranks become a byte-level `tokenizers` BPE whose merges are
recovered from the ranks (every split of a token into two tokens, ranked by the token's rank),
with the split pattern of the family the file belongs to. Encoding then matches tiktoken's
(checked against tiktoken on real text, see tests/tokenizer/test_report.py).
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

from persianllama.errors import UserError

PATTERNS = {
    # GPT-2, Whisper: 50k ranks.
    "gpt2": r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    # cl100k_base, LLaMA-3, Qwen: 100k+ ranks.
    "cl100k": (
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
        r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
    ),
}
_LINE = re.compile(rb"^[A-Za-z0-9+/]+=*\s+\d+\s*$")


def looks_like_ranks(path: Path) -> bool:
    """True for a file whose first lines are ``base64 rank``."""
    try:
        with open(path, "rb") as f:
            head = [f.readline() for _ in range(3)]
    except OSError:
        return False
    head = [h for h in head if h.strip()]
    return bool(head) and all(_LINE.match(h) for h in head)


def load_ranks(path: Path) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                token, rank = line.split()
                ranks[base64.b64decode(token, validate=True)] = int(rank)
            except (ValueError, binascii.Error) as e:
                raise UserError(f"{path}:{number}: not a tiktoken rank line ({e})") from None
    if not ranks:
        raise UserError(f"{path}: empty tiktoken rank file")
    return ranks


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte (what `pre_tokenizers.ByteLevel` maps to)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars)))


def hf_tokenizer(path: Path, pattern: str = "auto"):
    """A byte-level `tokenizers.Tokenizer` equivalent to tiktoken with this rank file."""
    from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE

    ranks = load_ranks(path)
    if pattern == "auto":
        pattern = "gpt2" if len(ranks) < 60_000 else "cl100k"
    if pattern not in PATTERNS:
        raise UserError(f"unknown tiktoken pattern {pattern!r}; one of: auto, {', '.join(PATTERNS)}")
    byte_char = bytes_to_unicode()

    def text(b: bytes) -> str:
        return "".join(byte_char[x] for x in b)

    vocab = {text(tok): rank for tok, rank in ranks.items()}
    # tiktoken merges the adjacent pair whose concatenation has the lowest rank, whichever two parts
    # it came from; so every split of a token into two tokens is a merge, ranked by the token.
    # (One merge per token, as transformers' converter derives, misses paths: 2 of 2,693 real texts
    # encoded differently from tiktoken with LLaMA-3's ranks.)
    merges = []
    for tok, _rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        splits = [(ranks[tok[:i]], ranks[tok[i:]], i) for i in range(1, len(tok))
                  if tok[:i] in ranks and tok[i:] in ranks]
        merges += [(text(tok[:i]), text(tok[i:])) for _, _, i in sorted(splits)]
    tokenizer = Tokenizer(BPE(vocab=vocab, merges=merges, ignore_merges=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PATTERNS[pattern]), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer
