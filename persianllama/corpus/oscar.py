"""OSCAR reader: jsonl, .jsonl.gz and .jsonl.zst shards in the 22.01 and 23.01 layouts.

23.01: ``{"content", "warc_headers", "metadata": {"identification", "harmful_pp", "tlsh",
"quality_warnings", "categories", "sentence_identifications"}}``.
22.01: the same without ``harmful_pp``/``tlsh``/``categories``; quality warnings are in
``metadata.annotation`` and include ``adult``, which we treat as a category.
The HF dataset ``oscar-corpus/OSCAR-2301`` has rows ``{"id", "text", "meta": {...}}`` with the
same metadata (see ``persianllama.corpus.hf``).

Faults never stop the file: a line that is not valid UTF-8 or not valid JSON, or a record whose
fields have the wrong type (``"metadata": [1]``, ``"warc_headers": 5``, a string ``identification``,
a number in ``categories``) is counted with its line number and skipped ('wrong_type' names the
field); a compressed stream cut short keeps every complete line before the cut. ``categories``,
``quality_warnings`` and ``annotation`` are lists of strings or null upstream (22.01 and 23.01); a
plain string is read as a one-item (or comma-separated) list, so ``"categories": "adult"`` is still
blocked.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from typing import Any

import orjson

from persianllama.corpus.records import RawDoc, ReadReport

CHUNK = 1 << 20


def _zstd_chunks(path: str) -> Iterator[bytes]:
    """Decompressed bytes of a .zst file, frame after frame; EOFError if the last frame is cut short.

    zstandard's stream_reader returns a silent end of data on a truncated frame, so the frames are
    decoded here with decompressobj, whose `eof` tells a finished frame from a cut one."""
    import zstandard

    dctx = zstandard.ZstdDecompressor()
    dobj = dctx.decompressobj()
    fed = False
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            while chunk:
                fed = True
                out = dobj.decompress(chunk)
                if out:
                    yield out
                if dobj.eof:  # frame finished: the rest belongs to the next frame
                    chunk = dobj.unused_data
                    dobj = dctx.decompressobj()
                    fed = False
                else:
                    chunk = b""
    if fed:
        raise EOFError("zstd stream ended inside a frame (file truncated)")


def _file_chunks(path: str) -> Iterator[bytes]:
    if path.endswith((".zst", ".zstd")):
        yield from _zstd_chunks(path)
        return
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as fh:
        # read1: hand over what has been decompressed so far, so a cut stream loses only its tail.
        while chunk := fh.read1(CHUNK):
            yield chunk


def _truncation_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [EOFError, zlib.error, gzip.BadGzipFile, OSError]
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def iter_lines(path: str, report: ReadReport) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) for every line; a stream cut short is recorded in `report`, not raised.
    The partial last line of a cut stream is still yielded (and then fails JSON parsing, counted)."""
    lineno = 0
    pending = b""
    try:
        for chunk in _file_chunks(path):
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                lineno += 1
                yield lineno, line
    except _truncation_errors() as e:
        report.bad(path, f"after line {lineno}", "truncated", f"{type(e).__name__}: {e}")
    if pending:
        yield lineno + 1, pending


class BadRecord(ValueError):
    """A record of the wrong shape; ``reason`` is its short name in the stats ('wrong_type')."""

    def __init__(self, message: str, reason: str = "wrong_type"):
        super().__init__(message)
        self.reason = reason


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _mapping(value: Any, name: str) -> dict[str, Any]:
    """An object field, or {} when absent/null."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRecord(f"{name}: expected an object or null, got {_kind(value)}")
    return value


def _string(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise BadRecord(f"{name}: expected a string or null, got {_kind(value)}")


def _number(value: Any, name: str) -> float | None:
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    raise BadRecord(f"{name}: expected a number or null, got {_kind(value)}")


def _labels(value: Any, name: str) -> list[str]:
    """A list of labels. Upstream writes a list of strings or null in both 22.01 and 23.01; a plain string
    is accepted too (one label, or several comma-separated), so a shard that flattened the list is still
    filtered rather than read as having no label."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        for i, v in enumerate(value):
            if not isinstance(v, str):
                raise BadRecord(f"{name}[{i}]: expected a string, got {_kind(v)}")
        return list(value)
    raise BadRecord(f"{name}: expected a list of strings, a string or null, got {_kind(value)}")


def parse_record(obj: dict[str, Any], path: str, lineno: int, source: str) -> RawDoc | None:
    """One OSCAR record (any layout) to a RawDoc; None if it has no text field. Every field read here
    is type-checked: a record of the wrong shape raises BadRecord naming the field."""
    if "content" in obj:  # 22.01 / 23.01 files
        text = obj["content"]
        meta = _mapping(obj.get("metadata"), "metadata")
        warc = _mapping(obj.get("warc_headers"), "warc_headers")
        where, warc_name = "metadata", "warc_headers"
    elif "text" in obj:  # HF OSCAR-2301 rows
        text = obj["text"]
        meta = _mapping(obj.get("meta"), "meta")
        warc = _mapping(meta.get("warc_headers"), "meta.warc_headers")
        where, warc_name = "meta", "meta.warc_headers"
    else:
        return None
    if not isinstance(text, str):
        raise BadRecord(f"{'content' if where == 'metadata' else 'text'}: expected a string, got {_kind(text)}")
    ident = _mapping(meta.get("identification"), f"{where}.identification")
    if meta.get("quality_warnings") is not None:
        warnings = _labels(meta["quality_warnings"], f"{where}.quality_warnings")
    else:
        warnings = _labels(meta.get("annotation"), f"{where}.annotation")  # 22.01 name
    categories = _labels(meta.get("categories"), f"{where}.categories")
    if "adult" in warnings:  # 22.01 marks UT1-adult documents as an annotation
        warnings.remove("adult")
        categories.append("adult")
    record_id = _string(warc.get("warc-record-id"), f"{warc_name}.warc-record-id")
    if not record_id:
        row_id = obj.get("id")
        if isinstance(row_id, bool) or not (row_id is None or isinstance(row_id, (str, int))):
            raise BadRecord(f"id: expected a string or an integer, got {_kind(row_id)}")
        record_id = row_id if row_id not in (None, "") else f"{os.path.basename(path)}:{lineno}"
    return RawDoc(
        text=text,
        id=f"{source}/{str(record_id).strip('<>').removeprefix('urn:uuid:')}",
        source=source,
        url=_string(warc.get("warc-target-uri"), f"{warc_name}.warc-target-uri"),
        meta={
            "lang": _string(ident.get("label"), f"{where}.identification.label"),
            "lang_prob": _number(ident.get("prob"), f"{where}.identification.prob"),
            "quality_warnings": warnings,
            "categories": categories,
            "harmful_pp": _number(meta.get("harmful_pp"), f"{where}.harmful_pp"),
        },
    )


def iter_oscar(path: str, report: ReadReport, *, source: str = "oscar") -> Iterator[RawDoc]:
    """Documents of one OSCAR shard, in file order."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"OSCAR input not found: {path}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"OSCAR input is empty: {path}")
    for lineno, line in iter_lines(path, report):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)  # validates UTF-8 too
        except orjson.JSONDecodeError as e:
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as ue:
                report.bad(path, f"line {lineno}", "invalid_utf8", str(ue))
            else:
                report.bad(path, f"line {lineno}", "invalid_json", str(e))
            continue
        if not isinstance(obj, dict):
            report.bad(path, f"line {lineno}", "not_an_object", f"a JSON {type(obj).__name__}")
            continue
        try:
            doc = parse_record(obj, path, lineno, source)
        except BadRecord as e:
            report.bad(path, f"line {lineno}", e.reason, str(e))
            continue
        if doc is None:
            report.bad(path, f"line {lineno}", "no_text_field", "neither 'content' nor 'text'")
            continue
        report.read += 1
        yield doc
