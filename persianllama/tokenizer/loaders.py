"""Any tokenizer the report compares, behind one small interface.

Accepted: an HF tokenizer directory or hub id (loaded with ``AutoTokenizer``, exactly as a user would,
through :mod:`persianllama.hub`), a
``tokenizer.json`` file, a SentencePiece ``.model`` file, or a tiktoken rank file (LLaMA-3's
``tokenizer.model``, ``gpt2.tiktoken``). A ``.model`` file is tried as SentencePiece first, then
as tiktoken ranks, since both families use that name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from persianllama.errors import UserError


@dataclass
class Loaded:
    name: str
    path: str
    kind: str
    """'hf', 'sentencepiece' or 'tiktoken'."""
    vocab_size: int
    encode_batch: Callable[[list[str]], list[list[int]]]
    """Token ids of each text, without special tokens (BOS/EOS are not part of the text's cost)."""
    decode: Callable[[list[int]], str]
    byte_ids: frozenset[int] = field(default_factory=frozenset)
    """Ids that stand for a raw byte, not a whole character: SentencePiece/HF byte-fallback pieces
    (<0xNN>), or in a byte-level vocabulary the tokens whose bytes are not valid UTF-8 alone."""
    normalize: Callable[[str], str] | None = None
    """The tokenizer's own normalization; decoding can at best give back this of the input."""


def parse_spec(spec: str) -> tuple[str, Path]:
    """``NAME=PATH`` (or just PATH: the name is the file or directory name)."""
    if "=" in spec and not Path(spec).exists():
        name, path = spec.split("=", 1)
    else:
        path = spec
        name = Path(spec).stem if Path(spec).is_file() else Path(spec).name
    return name.strip(), Path(path.strip()).expanduser()


def load(spec: str, tiktoken_pattern: str = "auto") -> Loaded:
    from persianllama import hub
    from persianllama.tokenizer import spm, tiktoken_ranks

    name, path = parse_spec(spec)
    if not path.exists():
        raw = spec.split("=", 1)[1].strip() if "=" in spec and not Path(spec).exists() else spec.strip()
        if hub.hub_id(raw) is None:
            raise UserError(f"tokenizer {name}: {path} does not exist")
        return _from_hf_dir(name, raw)  # a hub id: AutoTokenizer, or one line saying why not
    if path.is_dir():
        hub.check_local(path, "tokenizer", f"tokenizer {name}: {path}")
        return _from_hf_dir(name, path)
    if path.suffix == ".json":
        from tokenizers import Tokenizer

        try:
            return _from_backend(name, path, "hf", Tokenizer.from_file(str(path)))
        except Exception as e:
            raise UserError(f"tokenizer {name}: {path} is not a tokenizers JSON file ({e})") from e
    if spm.is_sentencepiece(path):
        return _from_sentencepiece(name, path)
    if tiktoken_ranks.looks_like_ranks(path):
        return _from_backend(name, path, "tiktoken", tiktoken_ranks.hf_tokenizer(path, tiktoken_pattern))
    raise UserError(
        f"tokenizer {name}: {path} is not an HF tokenizer directory, a tokenizer.json, a SentencePiece model "
        "or a tiktoken rank file"
    )


def _from_hf_dir(name: str, path: Path | str) -> Loaded:
    """An HF tokenizer folder, or a hub id (through persianllama.hub: offline and missing ids are one line)."""
    from transformers import AutoTokenizer

    from persianllama import hub

    try:
        tok = hub.from_pretrained(AutoTokenizer.from_pretrained, str(path), "tokenizer")
    except UserError as e:
        raise UserError(f"tokenizer {name}: {str(e).removeprefix('tokenizer ')}") from None
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise UserError(f"tokenizer {name}: {path} loads as a slow (Python) tokenizer; the report needs a fast one")
    return _from_backend(name, path, "hf", backend)


def _is_byte_level(backend) -> bool:
    spec = json.loads(backend.to_str())
    return "ByteLevel" in json.dumps(spec.get("decoder")) or "ByteLevel" in json.dumps(spec.get("pre_tokenizer"))


def _byte_ids(backend) -> frozenset[int]:
    vocab = backend.get_vocab()
    fallback = {i for t, i in vocab.items() if len(t) == 6 and t.startswith("<0x") and t.endswith(">")}
    if fallback or not _is_byte_level(backend):
        return frozenset(fallback)
    from persianllama.tokenizer.tiktoken_ranks import bytes_to_unicode

    char_byte = {c: b for b, c in bytes_to_unicode().items()}
    partial = set()
    for token, i in vocab.items():
        if not all(c in char_byte for c in token):
            continue  # an added/special token, not a byte string
        try:
            bytes(char_byte[c] for c in token).decode("utf-8")
        except UnicodeDecodeError:
            partial.add(i)
    return frozenset(partial)


def _from_backend(name: str, path: Path, kind: str, backend) -> Loaded:
    def encode_batch(texts: list[str]) -> list[list[int]]:
        return [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]

    def decode(ids: list[int]) -> str:
        return backend.decode(ids, skip_special_tokens=False)

    normalizer = backend.normalizer
    normalize = None
    if normalizer is not None:
        def normalize(text: str) -> str:
            # SentencePiece-style pipelines put the dummy-prefix and "▁" steps in the normalizer;
            # the decoder undoes those, so compare against the rest only.
            return normalizer.normalize_str(text).replace("▁", " ").removeprefix(" ") \
                if _sp_style(backend) else normalizer.normalize_str(text)
    return Loaded(name, str(path), kind, backend.get_vocab_size(), encode_batch, decode, _byte_ids(backend),
                  normalize)


def _sp_style(backend) -> bool:
    spec = json.loads(backend.to_str())
    return "Prepend" in json.dumps(spec.get("normalizer"))


def _from_sentencepiece(name: str, path: Path) -> Loaded:
    import sentencepiece as sp

    proc = sp.SentencePieceProcessor(model_file=str(path))
    byte_ids = frozenset(i for i in range(proc.get_piece_size()) if proc.is_byte(i))
    normalize = None
    spec = proc.serialized_model_proto()
    from persianllama.tokenizer import spm

    proto = spm.load_proto(path)
    if proto.normalizer_spec.name not in ("identity", "") or proto.normalizer_spec.remove_extra_whitespaces:
        norm = sp.SentencePieceNormalizer(model_proto=spec, add_dummy_prefix=False, escape_whitespaces=False)
        normalize = norm.normalize
    return Loaded(
        name, str(path), "sentencepiece", proc.get_piece_size(),
        lambda texts: proc.encode(texts), lambda ids: proc.decode(ids), byte_ids, normalize,
    )
