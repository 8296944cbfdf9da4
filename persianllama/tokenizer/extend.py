"""``persianllama tokenizer extend``: append Persian pieces to a LLaMA SentencePiece tokenizer.

The base keeps every piece, id and score; the new pieces come after them, so a model's existing
embedding rows stay valid and only new rows are added (the LoRA track initialises them from
``new_tokens.json``). Sizes are read from the files, never assumed.

Which pieces, in which order ("by usefulness"):
1. characters of the Persian model the base lacks (without them every piece that contains them
   is unreachable: SentencePiece would fall back to bytes before any merge), most frequent first;
2. then the Persian model's multi-character pieces in its own order, which is its merge order,
   i.e. by how much each merge shortened the corpus. Any prefix of that order is closed under
   merging (each piece is two earlier pieces joined), so ``--max-new`` can cut it anywhere and
   every kept piece stays reachable; :func:`reachable` checks it anyway.

Scores: new pieces get scores just below the base's lowest regular score, falling one per piece.
SentencePiece then merges exactly as before wherever a base piece applies (English text is
unchanged) and the HF merge list (ranked by score, see ``spm.py``) agrees with it; score order
also equals id order, so even transformers' own conversion of ``tokenizer.model`` agrees.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from persianllama.config import Count
from persianllama.errors import UserError
from persianllama.tokenizer import spm

log = logging.getLogger(__name__)

NEW_TOKENS_FILE = "new_tokens.json"


@dataclass
class ExtendConfig:
    base: str = ""
    """The tokenizer to extend: a LLaMA-style SentencePiece ``tokenizer.model`` or an HF tokenizer directory
    that holds one."""
    persian: str = ""
    """The Persian SentencePiece BPE model: a directory from ``tokenizer train --backend sentencepiece`` or its
    ``tokenizer.model``."""
    output: str = ""
    """Directory for the extended tokenizer (tokenizer.model, HF files, new_tokens.json, tokenizer_card.md)."""
    max_new: Count | None = None
    """At most this many new pieces (most useful first); default: every Persian piece the base lacks."""
    persian_only: bool = True
    """Add only pieces with an Arabic-script character or ZWNJ. Latin pieces that the Persian corpus happened to
    hold ('reak', 'oft') would change how some English words are tokenized."""
    model_max_length: Count = 4096
    """Written to tokenizer_config.json (the base model's context length)."""


@dataclass
class ExtendResult:
    base_size: int
    new_size: int
    added: dict[int, str]
    unreachable: list[str]
    seconds: float


def _find_model(path: Path, what: str) -> Path:
    """A ``.model`` file, or the ``tokenizer.model`` inside a directory."""
    if path.is_dir():
        candidate = path / "tokenizer.model"
        if candidate.is_file():
            return candidate
        if what == "base" and (path / "tokenizer.json").is_file():
            raise UserError(
                f"{path}: this HF tokenizer directory has no tokenizer.model; extension needs the "
                "SentencePiece model of a LLaMA-style tokenizer (save the tokenizer with its tokenizer.model)"
            )
        if what == "persian" and (path / "tokenizer.json").is_file():
            raise UserError(
                f"{path}: a byte-level BPE tokenizer cannot be merged into a SentencePiece vocabulary; "
                "train the Persian model with `persianllama tokenizer train --backend sentencepiece`"
            )
        raise UserError(f"{path}: no tokenizer.model in this directory")
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    return path


def hf_added_tokens(directory: Path, proto) -> list[tuple[int, str, bool]]:
    """Tokens an HF directory adds after its tokenizer.model's pieces (e.g. a <pad> at id 32000).

    Their ids must survive the extension, so they are appended to the model first, at the same
    ids; a gap in their ids cannot be kept and is a UserError.
    """
    path = directory / "tokenizer.json"
    if not path.is_file():
        return []
    added = json.loads(path.read_text(encoding="utf-8")).get("added_tokens", [])
    size = len(proto.pieces)
    extra = sorted((t["id"], t["content"], bool(t.get("special"))) for t in added if t["id"] >= size)
    for expected, (token_id, content, _) in enumerate(extra, start=size):
        if token_id != expected:
            raise UserError(
                f"{path}: added token {content!r} has id {token_id}, but tokenizer.model ends at {size - 1} "
                f"and ids {expected}..{token_id - 1} are missing; cannot keep its id"
            )
    have = {p.piece for p in proto.pieces}
    return [t for t in extra if t[1] not in have]


# What a LLaMA-style tokenizer repository holds that extension reads (the weights are not fetched).
HUB_TOKENIZER_FILES = ["tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


def resolve_base(base: str) -> Path:
    """The base as a local path: the file or folder itself, or the hub snapshot of a hub id's tokenizer
    files (``meta-llama/Llama-2-7b-hf``); an unreachable id is one line (see persianllama.hub)."""
    from persianllama import hub

    if not str(base):
        raise UserError("--base is required")
    path = Path(base).expanduser()
    if path.exists() or hub.hub_id(str(base)) is None:
        return path
    return hub.local_dir(str(base), "tokenizer", allow_patterns=HUB_TOKENIZER_FILES)


def load_model(path: str | Path, what: str):
    """Load and check a BPE SentencePiece model given as a file or a directory."""
    if not str(path):
        raise UserError(f"--{what} is required")
    model_path = _find_model(Path(path).expanduser(), what)
    try:
        proto = spm.load_proto(model_path)
    except UserError:
        raise UserError(
            f"{model_path}: not a SentencePiece model; --{what} takes a LLaMA-style tokenizer.model "
            "or an HF tokenizer directory holding one"
        ) from None
    if proto.trainer_spec.model_type != spm.BPE_TYPE:
        raise UserError(f"{model_path}: a Unigram SentencePiece model; extension needs BPE models (LLaMA's kind)")
    return proto


def _regular_min_score(proto) -> float:
    """Lowest score among the base's regular pieces (LLaMA parks whitespace runs at -1e9; skip those)."""
    scores = [
        p.score for p in proto.pieces
        if p.type == spm.NORMAL and p.piece.strip(spm.SPACE) != ""
    ]
    return min(scores) if scores else 0.0


def is_persian_piece(piece: str) -> bool:
    """A piece with an Arabic-script character (letters, digits, punctuation, presentation forms) or ZWNJ."""
    return any(
        "\u0600" <= ch <= "\u06ff" or "\u0750" <= ch <= "\u077f" or "\ufb50" <= ch <= "\ufdff"
        or "\ufe70" <= ch <= "\ufeff" or ch == "\u200c" for ch in piece
    )


def candidates(base, persian, persian_only: bool = True) -> list[str]:
    """Persian pieces the base lacks, characters first, then in the Persian model's merge order."""
    have = {p.piece for p in base.pieces}
    new = [p for p in persian.pieces if p.type == spm.NORMAL and p.piece not in have
           and (not persian_only or is_persian_piece(p.piece))]
    chars = [p.piece for p in new if len(p.piece) == 1]
    longer = [p.piece for p in new if len(p.piece) > 1]
    return chars + longer


def reachable(pieces: list[str], vocab: set[str]) -> list[str]:
    """The pieces that SentencePiece can build: a character, or two buildable pieces joined."""
    ok: set[str] = {p for p in vocab if len(p) == 1}
    out = []
    for piece in sorted(set(pieces) | vocab, key=len):
        if len(piece) == 1 or any(piece[:i] in ok and piece[i:] in ok for i in range(1, len(piece))):
            ok.add(piece)
    for piece in pieces:
        if piece in ok:
            out.append(piece)
    return out


def extend_proto(base, persian, max_new: int | None = None, persian_only: bool = True):
    """The extended model proto, and the list of pieces dropped as unreachable."""
    if max_new is not None and max_new < 1:
        raise UserError(f"max_new must be at least 1 (got {max_new})")
    if not base.trainer_spec.byte_fallback:
        log.warning("the base has no byte fallback: characters outside its vocabulary encode as <unk>")
    new = candidates(base, persian, persian_only)
    if not new:
        raise UserError(
            f"the base tokenizer already contains all {sum(1 for p in persian.pieces if p.type == spm.NORMAL)} "
            "pieces of the Persian model; nothing to add"
        )
    if max_new is not None:
        new = new[:max_new]
    have = {p.piece for p in base.pieces if p.type in (spm.NORMAL, spm.USER_DEFINED)}
    kept = reachable(new, have | set(new))
    kept_set = set(kept)
    dropped = [p for p in new if p not in kept_set]
    out = copy.deepcopy(base)
    floor = _regular_min_score(base)
    for k, piece in enumerate(kept):
        entry = out.pieces.add()
        entry.piece = piece
        entry.score = float(floor - 1 - k)
        entry.type = spm.NORMAL
    out.trainer_spec.vocab_size = len(out.pieces)
    return out, dropped


def check_ids_unchanged(base, extended) -> None:
    """Raise if any base piece moved, changed type or changed score (a bug, not a user error)."""
    for i, p in enumerate(base.pieces):
        q = extended.pieces[i]
        if (p.piece, p.type, p.score) != (q.piece, q.type, q.score):
            raise AssertionError(f"id {i} changed: {p.piece!r} -> {q.piece!r}")
    seen = set()
    for p in extended.pieces:
        if p.piece in seen:
            raise AssertionError(f"duplicate piece {p.piece!r}")
        seen.add(p.piece)


def extend(config: ExtendConfig) -> ExtendResult:
    """Build the extended tokenizer and write every output file; returns what was added."""
    from persianllama import config as cfg
    from persianllama.cliargs import output_dir, writing

    started = time.perf_counter()
    config = cfg.from_dict(ExtendConfig, cfg.to_dict(config))  # the field rules, for callers of the API too
    output_dir(config.output)  # before the work: a file or an unwritable place is refused now
    base_path = resolve_base(config.base)
    base = load_model(base_path, "base")
    if base_path.is_dir():
        for _, content, special in hf_added_tokens(base_path, base):
            entry = base.pieces.add()
            entry.piece, entry.score = content, 0.0
            entry.type = spm.CONTROL if special else spm.USER_DEFINED
        base.trainer_spec.vocab_size = len(base.pieces)
    persian = load_model(config.persian, "persian")
    extended, dropped = extend_proto(base, persian, config.max_new, config.persian_only)
    check_ids_unchanged(base, extended)
    base_size = len(base.pieces)
    added = {i: extended.pieces[i].piece for i in range(base_size, len(extended.pieces))}
    out = Path(config.output)
    with writing(out, "the extended tokenizer"):
        spm.save_hf(extended, out, model_max_length=config.model_max_length)
        (out / NEW_TOKENS_FILE).write_text(
            json.dumps({str(i): p for i, p in added.items()}, ensure_ascii=False, indent=0) + "\n", encoding="utf-8"
        )
        result = ExtendResult(base_size, len(extended.pieces), added, dropped, time.perf_counter() - started)
        write_card(out, config, result, base, persian)
    log.info("extended %d -> %d pieces (%d new) in %s", base_size, result.new_size, len(added), out)
    return result


def write_card(out: Path, config: ExtendConfig, result: ExtendResult, base, persian) -> None:
    from persianllama.tokenizer.card import write_card as write

    sample = list(result.added.values())
    missing = candidates(base, persian, config.persian_only)
    write(out / "tokenizer_card.md", "Extended LLaMA tokenizer", [
        ("What", f"`{config.base}` with {len(result.added)} Persian pieces from `{config.persian}` appended"),
        ("Sizes", (f"base {result.base_size} pieces, extended {result.new_size} (ids {result.base_size}"
                   f"-{result.new_size - 1} are new; every base id, piece and score is unchanged)")),
        ("Persian model", (f"{len(persian.pieces)} pieces; {len(missing)} Persian pieces not in the base"
                           + (" (Latin pieces skipped)" if config.persian_only else ""))),
        ("Cap", f"--max-new {config.max_new}" if config.max_new else "none (every missing piece)"),
        ("Dropped as unreachable", str(len(result.unreachable))),
        ("New ids", f"`{NEW_TOKENS_FILE}` maps each new id to its piece (▁ marks a leading space)"),
        ("First new pieces", " ".join(f"`{p}`" for p in sample[:30])),
        ("Normalization", ("none inside the tokenizer (as LLaMA): normalize Persian text with "
                           "`persianllama.text.normalize.normalize` first, as the corpus builders do")),
        ("Files", ("`tokenizer.model` (SentencePiece), `tokenizer.json` + `tokenizer_config.json` (HF: "
                   "`AutoTokenizer.from_pretrained(DIR)`), identical tokens on Persian and English text")),
        ("Built in", f"{result.seconds:.1f} s"),
    ])
