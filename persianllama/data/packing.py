"""Tokenize a corpus once and pack it into fixed-length blocks, cached on disk.

Every document becomes ``tokenizer(text)`` (BOS included when the tokenizer adds one) followed by
EOS (unless the tokenizer appends EOS itself); the documents are laid end to end in one token stream, and block ``i`` is the stream's tokens
``[i*block_size, (i+1)*block_size)``. No padding: only the stream's last ``< block_size`` tokens are
left out. A held-out validation split is taken *by document* before packing, from a hash of each
document's text, so it is stable across reruns, independent of corpus order and worker count, and
an exact duplicate never sits on both sides.

The result lives in ``cache_dir/<name>/``, where the name carries a key over the corpus files
(name, size, mtime), the tokenizer (its full serialization and EOS id) and the block size::

    train.bin   the training token stream, raw little-endian uint16 (uint32 for vocabularies > 65535)
    val.bin     the validation documents' tokens, same layout
    val.jsonl   the validation documents' raw text, one {"text": ...} per line (for bits-per-byte)
    meta.json   sizes, counts and provenance; written last, so its presence marks a complete cache

A cache is built in a temporary folder and renamed into place, so a run cut off mid-build leaves no
folder that a later run could mistake for a finished one, and two ranks or nodes building the same
key at once both end up with one good copy.

Why it is faster than ``datasets.map(tokenize)`` + ``group_texts``: the Rust tokenizer's
``encode_batch_fast`` (no offsets) is called directly, token ids go straight from the encoder into
numpy and onto disk instead of through Python lists and Arrow tables twice, and grouping is a
reshape of a memory map instead of a Python concatenation of lists.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from persianllama.data.packed import PackedData
from persianllama.data.sources import (
    Piece,
    TxtDocument,
    corpus_fingerprint,
    describe_inputs,
    find_corpus_files,
    iter_piece,
    plan_pieces,
)
from persianllama.errors import UserError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SAMPLE_DOCS = 16  # documents used to check that the fast path tokenizes exactly like the tokenizer


@dataclass(frozen=True)
class PackSettings:
    """Everything that decides the cache's content (and so its key), besides corpus and tokenizer."""

    block_size: int
    val_fraction: float = 0.005
    text_column: str = "text"
    txt_document: TxtDocument = "blank_line"


def doc_hash(text: str) -> int:
    """64-bit hash of a document's text; the validation split takes the documents below a threshold."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def val_threshold(val_fraction: float) -> int:
    """The document-hash bound below which a document is held out for validation."""
    return int(val_fraction * 2**64)


def is_held_out(text: str, val_fraction: float) -> bool:
    """Whether the packer holds this document out for validation (the same rule as `pack`)."""
    threshold = val_threshold(val_fraction)
    return bool(threshold) and doc_hash(text) < threshold


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 65535 else np.dtype(np.uint32)


def load_tokenizer(tokenizer: Any):
    """An HF tokenizer from a directory (or the object itself); a clear error if it cannot pack."""
    if isinstance(tokenizer, (str, Path)):
        path = Path(tokenizer)
        if not path.is_dir():
            raise UserError(f"tokenizer directory not found: {path}")
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path))
        except Exception as e:  # transformers raises many types for a broken directory
            raise UserError(f"cannot load a tokenizer from {path}: {e}") from e
    if tokenizer.eos_token_id is None:
        raise UserError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '')} has no EOS token; "
            "the packer puts EOS between documents"
        )
    return tokenizer


def tokenizer_fingerprint(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else repr(tokenizer.get_vocab())
    extra = json.dumps({"eos": tokenizer.eos_token_id, "bos": tokenizer.bos_token_id, "len": len(tokenizer)})
    return hashlib.sha256((body + extra).encode("utf-8")).hexdigest()


def cache_key(files: list[Path], tokenizer, settings: PackSettings) -> str:
    payload = {
        "format": FORMAT_VERSION,
        "corpus": corpus_fingerprint(files),
        "tokenizer": tokenizer_fingerprint(tokenizer),
        **asdict(settings),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _from_config(corpus, kwargs: dict) -> tuple[Any, dict]:
    """`pack(data_config, tok, block_size=...)`: the corpus and the packing settings from a `DataConfig`."""
    from persianllama.data.config import DataConfig

    if not isinstance(corpus, DataConfig):
        return corpus, kwargs
    d = corpus
    settings = {"cache_dir": d.cache_dir, "val_fraction": d.val_fraction, "text_column": d.text_column,
                "txt_document": d.txt_document, "workers": d.workers}
    return d.corpus, {**settings, **kwargs}


def cache_path(corpus, tokenizer, *, block_size: int, cache_dir: str | Path = "runs/cache/packed",
               val_fraction: float = 0.005, text_column: str = "text",
               txt_document: TxtDocument = "blank_line", workers: int = 0) -> Path:
    """Where `pack` keeps (or would keep) this corpus + tokenizer + block size; nothing is read or built.
    `corpus` may be a `DataConfig`, whose settings then fill the keywords not given."""
    if not isinstance(corpus, (str, Path, list, tuple)):
        corpus, kw = _from_config(corpus, {"block_size": block_size})
        return cache_path(corpus, tokenizer, **kw)
    files = find_corpus_files(corpus)
    tokenizer = load_tokenizer(tokenizer)
    settings = PackSettings(block_size, val_fraction, text_column, txt_document)
    return Path(cache_dir) / f"{describe_inputs(corpus)}-b{block_size}-{cache_key(files, tokenizer, settings)}"


# --- the per-piece work (runs in worker processes, or in-process) -------------------------------

_WORKER: dict[str, Any] = {}


def _backend_encoder(tokenizer_json: str) -> Callable[[list[str]], list[list[int]]]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json)
    tok.no_truncation()
    tok.no_padding()
    return lambda texts: [e.ids for e in tok.encode_batch_fast(texts, add_special_tokens=True)]


def _init_worker(tokenizer_json: str, config: dict, single_thread: bool = True) -> None:
    if single_thread:  # one process per core: the Rust tokenizer's own thread pool would only oversubscribe
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _WORKER["encode"] = _backend_encoder(tokenizer_json)
    _WORKER.update(config)


def _tokenize_piece(job: tuple[int, Piece, str]) -> dict:
    """Tokenize one piece: training tokens to `out_path`, validation documents returned."""
    index, piece, out_path = job
    encode, eos_list = _WORKER["encode"], _WORKER["eos_after_doc"]
    dtype, threshold = np.dtype(_WORKER["dtype"]), _WORKER["threshold"]
    docs = tokens = 0
    val: list[tuple[int, str, np.ndarray]] = []
    candidate = None  # the training document with the smallest hash: the fallback validation doc
    with open(out_path, "wb") as fh:
        for texts in iter_piece(piece, text_column=_WORKER["text_column"],
                                txt_document=_WORKER["txt_document"]):
            ids = encode(texts)
            keep: list[list[int]] = []
            for text, doc_ids in zip(texts, ids):
                h = doc_hash(text) if threshold else 0
                if h < threshold:
                    val.append((h, text, np.asarray(doc_ids + eos_list, dtype=dtype)))
                    continue
                if threshold and (candidate is None or h < candidate[0]):
                    offset = tokens + sum(len(k) + len(eos_list) for k in keep)
                    candidate = (h, text, offset, len(doc_ids) + len(eos_list))
                keep.append(doc_ids)
            if not keep:
                continue
            n = sum(len(k) for k in keep) + len(keep) * len(eos_list)
            flat = np.fromiter(chain.from_iterable(chain.from_iterable((k, eos_list) for k in keep)),
                               dtype=dtype, count=n)
            fh.write(flat.tobytes())
            docs += len(keep)
            tokens += n
    return {"index": index, "path": out_path, "docs": docs, "tokens": tokens, "val": val,
            "candidate": candidate}


# --- the driver ------------------------------------------------------------------------------------


def _check_fast_path(tokenizer, tokenizer_json: str, pieces: list[Piece], settings: PackSettings) -> bool:
    """Does the raw Rust tokenizer give exactly ``tokenizer(text)``'s ids? (BOS handling can differ.)"""
    sample: list[str] = []
    for piece in pieces:
        for batch in iter_piece(piece, text_column=settings.text_column,
                                txt_document=settings.txt_document, batch_docs=SAMPLE_DOCS):
            sample.extend(batch)
            break
        if len(sample) >= SAMPLE_DOCS:
            break
    if not sample:
        return True
    sample = [s[:2000] for s in sample[:SAMPLE_DOCS]]
    fast = _backend_encoder(tokenizer_json)(sample)
    slow = tokenizer(sample, add_special_tokens=True)["input_ids"]
    return [list(x) for x in fast] == [list(x) for x in slow]


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def pack(corpus, tokenizer, *, block_size: int, cache_dir: str | Path = "runs/cache/packed",
         val_fraction: float = 0.005, workers: int = 0, text_column: str = "text",
         txt_document: TxtDocument = "blank_line", progress: bool = True) -> PackedData:
    """Packed blocks for `corpus` (directories, .parquet and .txt files) under `tokenizer` (a directory
    or an HF tokenizer): opened from the cache when present, built there otherwise.

    `workers`: processes (0: one per available core; 1: in this process, where the Rust tokenizer
    still uses every core). The returned `PackedData` has ``built=True`` when it was built now.
    `corpus` may be a `DataConfig` (`pack(cfg.data, tokenizer, block_size=cfg.train.seq_len)`), whose settings
    then fill the keywords not given.
    """
    if not isinstance(corpus, (str, Path, list, tuple)):
        corpus, kw = _from_config(corpus, {"block_size": block_size, "progress": progress})
        return pack(corpus, tokenizer, **kw)
    if block_size < 2:
        raise UserError(f"block size must be at least 2 tokens, got {block_size}")
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"val_fraction must be in [0, 1), got {val_fraction}")
    files = find_corpus_files(corpus)
    tokenizer = load_tokenizer(tokenizer)
    settings = PackSettings(block_size, val_fraction, text_column, txt_document)
    key = cache_key(files, tokenizer, settings)
    name = f"{describe_inputs(corpus)}-b{block_size}-{key}"
    final = Path(cache_dir) / name
    if (final / "meta.json").is_file():
        log.info("packed data found in cache: %s", final)
        return PackedData(final)

    pieces = plan_pieces(files, text_column)
    vocab = len(tokenizer)
    dtype = token_dtype(vocab)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    tokenizer_json = backend.to_str() if backend is not None else ""
    fast = bool(tokenizer_json) and _check_fast_path(tokenizer, tokenizer_json, pieces, settings)
    workers = workers or default_workers()
    workers = max(1, min(workers, len(pieces))) if fast else 1
    # EOS closes every document, unless the tokenizer already appends it itself.
    ends_with_eos = tokenizer("ا")["input_ids"][-1:] == [tokenizer.eos_token_id]
    config = {
        "eos_after_doc": [] if ends_with_eos else [int(tokenizer.eos_token_id)],
        "dtype": dtype.str,
        "threshold": val_threshold(val_fraction),
        "text_column": text_column,
        "txt_document": txt_document,
    }
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(cache_dir) / f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    tmp.mkdir()
    log.info("packing %d file(s) in %d piece(s) with %d worker(s) into %s", len(files), len(pieces), workers, final)
    start = time.perf_counter()
    try:
        jobs = [(i, p, str(tmp / f"piece-{i:06d}.bin")) for i, p in enumerate(pieces)]
        results = _run_pieces(jobs, tokenizer_json, tokenizer, config, workers, fast, progress)
        meta = _assemble(tmp, results, settings, dtype, vocab, tokenizer, files, key)
        meta["seconds"] = round(time.perf_counter() - start, 3)
        meta["tokens_per_s"] = round((meta["train_tokens"] + meta["val_tokens"]) / max(meta["seconds"], 1e-9), 1)
        meta["workers"] = workers
        meta["fast_path"] = fast
        _write_json(tmp / "meta.json", meta)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "meta.json").is_file():
                raise
            log.info("another process finished the same cache first; using it")
            shutil.rmtree(tmp, ignore_errors=True)
            return PackedData(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    data = PackedData(final)
    data.built = True
    log.info(
        "packed %s train tokens (%d blocks of %d) and %d validation documents in %.1fs (%.0f tokens/s)",
        f"{meta['train_tokens']:,}", meta["n_blocks"], block_size, meta["val_docs"], meta["seconds"],
        meta["tokens_per_s"],
    )
    return data


def _run_pieces(jobs, tokenizer_json, tokenizer, config, workers, fast, progress) -> list[dict]:
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="packing", unit="piece", disable=not progress or None, leave=False)
    results: list[dict] = []
    try:
        if workers == 1:
            if fast:
                _init_worker(tokenizer_json, config, single_thread=False)  # the Rust side uses every core
            else:
                log.warning("the tokenizer's Python side changes its output (e.g. BOS handling); "
                            "packing with it directly, in one process (slower)")
                _WORKER.update(config)
                _WORKER["encode"] = lambda texts: tokenizer(texts, add_special_tokens=True)["input_ids"]
            for job in jobs:
                results.append(_tokenize_piece(job))
                bar.update(1)
        else:
            # fork: spawn would re-run the caller's main script in every worker. The workers touch
            # neither torch nor CUDA; the Rust tokenizer is told to stay single-threaded in them.
            from concurrent.futures import ProcessPoolExecutor

            methods = mp.get_all_start_methods()
            ctx = mp.get_context("fork" if "fork" in methods else "spawn")
            saved = os.environ.get("TOKENIZERS_PARALLELISM")
            os.environ["TOKENIZERS_PARALLELISM"] = "false"  # also silences tokenizers' fork warning
            try:
                with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                         initargs=(tokenizer_json, config)) as pool:
                    for res in pool.map(_tokenize_piece, jobs):
                        results.append(res)
                        bar.update(1)
            finally:
                if saved is None:
                    os.environ.pop("TOKENIZERS_PARALLELISM", None)
                else:
                    os.environ["TOKENIZERS_PARALLELISM"] = saved
    finally:
        bar.close()
        _WORKER.clear()
    return results


def _assemble(tmp: Path, results: list[dict], settings: PackSettings, dtype: np.dtype, vocab: int,
              tokenizer, files: list[Path], key: str) -> dict:
    """Concatenate the pieces into train.bin (dropping the fallback validation doc), write val files."""
    val = [v for r in results for v in r["val"]]
    skip: tuple[int, int, int] | None = None  # (piece index, offset, length) moved to validation
    total_docs = sum(r["docs"] for r in results) + len(val)
    if settings.val_fraction > 0 and not val and total_docs >= 2:
        # Too small a corpus for the fraction to pick anything: hold out the lowest-hash document.
        best = min((r for r in results if r["candidate"]), key=lambda r: r["candidate"][0])
        h, text, offset, length = best["candidate"]
        tokens = np.fromfile(best["path"], dtype=dtype, count=length, offset=offset * dtype.itemsize)
        val.append((h, text, tokens))
        skip = (best["index"], offset, length)
    train_tokens = sum(r["tokens"] for r in results) - (skip[2] if skip else 0)
    if train_tokens <= 0:
        raise UserError(f"the corpus ({len(files)} file(s)) has no text to train on")
    out = np.memmap(tmp / "train.bin", dtype=dtype, mode="w+", shape=(train_tokens,))
    pos = 0
    for r in results:
        if r["tokens"] == 0:
            os.remove(r["path"])
            continue
        src = np.memmap(r["path"], dtype=dtype, mode="r")
        spans = [(0, len(src))]
        if skip and skip[0] == r["index"]:
            spans = [(0, skip[1]), (skip[1] + skip[2], len(src))]
        for a, b in spans:
            for c in range(a, b, 1 << 24):  # copy in 16M-token chunks: bounded memory
                d = min(b, c + (1 << 24))
                out[pos:pos + d - c] = src[c:d]
                pos += d - c
        del src
        os.remove(r["path"])
    out.flush()
    del out
    val_tokens = np.concatenate([v[2] for v in val]) if val else np.zeros(0, dtype=dtype)
    val_tokens.astype(dtype).tofile(tmp / "val.bin")
    with open(tmp / "val.jsonl", "w", encoding="utf-8") as fh:
        for h, text, _ in val:
            fh.write(json.dumps({"text": text, "hash": f"{h:016x}"}, ensure_ascii=False) + "\n")
    n_blocks = train_tokens // settings.block_size
    return {
        "format": FORMAT_VERSION,
        "key": key,
        **asdict(settings),
        "dtype": dtype.str,
        "vocab_size": vocab,
        "eos_token_id": int(tokenizer.eos_token_id),
        "bos_token_id": None if tokenizer.bos_token_id is None else int(tokenizer.bos_token_id),
        "tokenizer": str(getattr(tokenizer, "name_or_path", "")),
        "corpus": [str(f) for f in files],
        "train_docs": total_docs - len(val),
        "train_tokens": int(train_tokens),
        "n_blocks": int(n_blocks),
        "dropped_tail_tokens": int(train_tokens - n_blocks * settings.block_size),
        "val_docs": len(val),
        "val_tokens": int(val_tokens.size),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
