"""The data settings every training track shares: where the text comes from and how it is packed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from persianllama.config import NonNegInt, Range
from persianllama.data.sources import TxtDocument


@dataclass
class DataConfig:
    """Where the text comes from and how it is packed (see `persianllama.data`)."""

    corpus: list[str] = field(default_factory=list)
    """Corpus directories (the corpus builder's Parquet shards), .parquet or .txt files."""
    cache_dir: str = "runs/cache/packed"
    """Packed-data cache, keyed by corpus + tokenizer + block size; reused by later runs and every track."""
    val_fraction: Annotated[float, Range(0, 1, hi_open=True)] = 0.005
    """Fraction of documents held out for validation (chosen by a hash of each document; at least one)."""
    workers: NonNegInt = 0
    """Packing processes; 0: one per available core."""
    text_column: str = "text"
    """Text column of the Parquet shards."""
    txt_document: TxtDocument = "blank_line"
    """How .txt files split into documents: at blank lines, one per line, or one per file."""
