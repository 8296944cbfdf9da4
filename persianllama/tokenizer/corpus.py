"""Reading a training corpus for the tokenizer: corpus-builder output, Parquet files, or text files.

A CORPUS argument is one of
- a directory: every ``**/*.parquet`` under it (the corpus builders' shards), skipping hidden
  directories such as ``DIR/.work``; a directory without Parquet shards falls back to its
  ``**/*.txt`` files;
- a ``.parquet`` file with a ``text`` column (the column name is a setting);
- any other file: UTF-8 text, one document per line (a whole-file document reads the same way:
  BPE statistics do not depend on where a document ends).

Everything streams: Parquet in record batches, text files line by line; nothing holds the corpus.

A text file that is not valid UTF-8 is refused before training, naming its file and line, as
``data pack`` does (``persianllama/data/sources.py``): the packer reads the same files and would
refuse them later, and a tokenizer trained on replacement characters is not the one the model
sees. Skipping is for raw dumps (``corpus build``); here the input is already a corpus.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from persianllama.data.sources import corpus_dir_files
from persianllama.errors import UserError

PARQUET_BATCH_ROWS = 1024
UTF8_CHECK_BLOCK = 1 << 24
# Characters read for the Persian-share check, spread over the files (each gets at least the minimum).
SAMPLE_CHARS = 4_000_000
SAMPLE_MIN_CHARS_PER_FILE = 20_000


@dataclass
class Corpus:
    """The files a list of CORPUS arguments names, in a stable order."""

    inputs: list[str]
    """The arguments as given (for the card)."""
    text_files: list[Path] = field(default_factory=list)
    parquet_files: list[Path] = field(default_factory=list)
    text_column: str = "text"

    @property
    def files(self) -> list[Path]:
        return self.parquet_files + self.text_files

    @property
    def bytes_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.files)

    def iter_documents(self) -> Iterator[str]:
        """Every non-empty document (a Parquet row, or a line of a text file), unnormalized."""
        for path in self.files:
            yield from self.iter_file(path)

    def iter_file(self, path: Path) -> Iterator[str]:
        """The non-empty documents of one of the corpus files; invalid UTF-8 is a UserError naming the line."""
        if path.suffix == ".parquet":
            for batch in iter_parquet_batches(path, self.text_column):
                yield from (t for t in batch if t)
            return
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as e:
                    raise UserError(_not_utf8(path, lineno, e)) from None
                if line.strip():
                    yield line

    def sample(self, max_chars: int | None = None) -> list[tuple[Path, str]]:
        """(file, text) from the start of every file, about `max_chars` (SAMPLE_CHARS) characters in all, so
        that each input is represented (a stray English file in a Persian corpus shows in its own share).
        With more files than SAMPLE_CHARS / SAMPLE_MIN_CHARS_PER_FILE (200), evenly spaced ones are read."""
        budget = max_chars or SAMPLE_CHARS
        files = self.files
        most = max(budget // SAMPLE_MIN_CHARS_PER_FILE, 1)
        if len(files) > most:  # thousands of shards: evenly spaced ones, not the first few
            files = [files[round(i * (len(files) - 1) / (most - 1))] for i in range(most)] if most > 1 else files[:1]
        per_file = max(budget // max(len(files), 1), SAMPLE_MIN_CHARS_PER_FILE)
        out = []
        for path in files:
            parts, got = [], 0
            for doc in self.iter_file(path):
                parts.append(doc)
                got += len(doc)
                if got >= per_file:
                    break
            out.append((path, "\n".join(parts)[:per_file]))
        return out

    def iter_batches(self, size: int = 1000) -> Iterator[list[str]]:
        batch: list[str] = []
        for doc in self.iter_documents():
            batch.append(doc)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch


def resolve(inputs: list[str] | list[Path], text_column: str = "text") -> Corpus:
    """Expand CORPUS arguments into files; a missing path or a corpus with no text is a UserError."""
    if not inputs:
        raise UserError("no corpus given: pass --input DIR_OR_FILE [...]")
    corpus = Corpus(inputs=[str(p) for p in inputs], text_column=text_column)
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = corpus_dir_files(path)
            if not found:
                raise UserError(f"{path}: no *.parquet shards or *.txt files in this directory")
            corpus.parquet_files += [p for p in found if p.suffix == ".parquet"]
            corpus.text_files += [p for p in found if p.suffix != ".parquet"]
        elif path.is_file():
            (corpus.parquet_files if path.suffix == ".parquet" else corpus.text_files).append(path)
        else:
            raise UserError(f"{path}: no such file or directory")
    for path in corpus.parquet_files:
        _check_parquet(path, text_column)
    for path in corpus.text_files:
        check_utf8(path)
    if corpus.bytes_on_disk == 0 or not any(True for _ in _first_document(corpus)):
        raise UserError(f"the corpus is empty: no text in {', '.join(corpus.inputs)}")
    return corpus


def _first_document(corpus: Corpus) -> Iterator[str]:
    for doc in corpus.iter_documents():
        yield doc
        return


def _check_parquet(path: Path, column: str) -> None:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception as e:  # pyarrow raises several types for a file that is not Parquet
        raise UserError(f"{path}: not a readable Parquet file ({e})") from e
    if column not in schema.names:
        raise UserError(
            f"{path}: no '{column}' column (columns: {', '.join(schema.names)}); set text_column=NAME"
        )
    kind = str(schema.field(column).type)
    if kind not in ("string", "large_string", "string_view"):
        raise UserError(f"{path}: column '{column}' holds {kind}, not text; set text_column=NAME to the text column")


def _not_utf8(path: Path, lineno: int, e: UnicodeDecodeError) -> str:
    return (f"{path} line {lineno} is not valid UTF-8 ({e.reason} at byte {e.start} of the line); convert the file "
            f"(e.g. `iconv -f WINDOWS-1256 -t UTF-8`, the usual legacy Persian encoding) or remove that line")


def check_utf8(path: Path) -> None:
    """Refuse a text file that is not UTF-8, naming the first bad line. Reads in large blocks (~150 MB/s
    here: ~1 min per 10 GB, small next to training on it)."""
    carry = b""
    lines_before = 0
    decoder = codecs.getdecoder("utf-8")
    with open(path, "rb") as f:
        while True:
            block = f.read(UTF8_CHECK_BLOCK)
            data = carry + block
            cut = len(data) if not block else data.rfind(b"\n") + 1  # decode whole lines only
            part, carry = data[:cut], data[cut:]
            try:
                decoder(part)
            except UnicodeDecodeError as e:
                line_start = part.rfind(b"\n", 0, e.start) + 1
                lineno = lines_before + part.count(b"\n", 0, e.start) + 1
                e.start -= line_start
                raise UserError(_not_utf8(path, lineno, e)) from None
            lines_before += part.count(b"\n")
            if not block:
                return


def iter_parquet_batches(path: Path, column: str) -> Iterator[list[str]]:
    """The `column` of a Parquet file as lists of strings, one record batch at a time."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as f:
        for batch in f.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=[column]):
            yield [t for t in batch.column(0).to_pylist() if t]


def describe_files(corpus: Corpus, limit: int = 20) -> list[str]:
    """One line per file for the card (name and size), the rest summed up."""
    lines = [f"{p} ({p.stat().st_size / 1e6:.2f} MB)" for p in corpus.files[:limit]]
    if len(corpus.files) > limit:
        rest = corpus.files[limit:]
        lines.append(f"... and {len(rest)} more files ({sum(p.stat().st_size for p in rest) / 1e6:.2f} MB)")
    return lines


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1
