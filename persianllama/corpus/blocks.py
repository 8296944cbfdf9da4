"""The corpus builder's pipeline blocks, as datatrove steps.

Readers turn one input (a file, or one shard of an HF dataset) into Documents; formatters and
filters work on one Document at a time; recorders note what was kept and dropped (counts, a
length histogram, a few examples) into small per-task JSON files that the data card reads.
Every per-task file is written atomically when the task ends, so a resumed build never counts a
killed task twice.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from typing import Any

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.formatters.base import BaseFormatter

from persianllama import atomic
from persianllama.corpus.boilerplate import BoilerplateRemover
from persianllama.corpus.config import BoilerplateConfig, LanguageConfig, OscarMetaConfig, QualityConfig
from persianllama.corpus.language import language_reason
from persianllama.corpus.quality import QualityChecker
from persianllama.corpus.records import RawDoc, ReadReport
from persianllama.text.normalize import NormalizerConfig, PersianNormalizer
from persianllama.text.words import count_words


def _install_quiet_task_logger() -> None:
    """datatrove's task logger prints every task's INFO log (and a stats table) to stderr, drowning our
    progress bars; keep its full log in the task log file and only warnings on stderr. Installed when
    this module is imported, which is also how worker processes (forkserver/spawn) get it: they unpickle
    the pipeline's steps, and so import this module. PERSIANLLAMA_DATATROVE_LOGS=1 keeps datatrove's own."""
    if os.environ.get("PERSIANLLAMA_DATATROVE_LOGS"):
        return
    import sys

    import datatrove.executor.base as executor_base
    from datatrove.utils.logging import logger

    def _not_noise(record) -> bool:
        # "No .remove file" only means that this task's documents had no near duplicate. A task's exception
        # (with its traceback) stays in the task log: the build reports it in one line, or re-raises it.
        return "No .remove file" not in record["message"] and record["exception"] is None

    def add_task_logger(logging_dir, rank: int, local_rank: int = 0, node_rank: int = -1):
        logger.remove()
        logfile = logging_dir.open(f"logs/task_{rank:05d}.log", "w")
        fmt = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{function}:{line} - {message}"
        logger.add(sys.stderr, level="WARNING", format="datatrove {level}: {message}", colorize=False,
                   filter=_not_noise)
        logger.add(logfile, level="DEBUG", format=fmt, colorize=False)
        logger.info(f"Launching pipeline for {rank=}")
        return logfile

    def close_task_logger(logfile):
        logger.complete()
        logger.remove()
        logger.add(sys.stderr, level="WARNING", format="datatrove {level}: {message}", colorize=False,
                   filter=_not_noise)
        logfile.close()

    executor_base.add_task_logger = add_task_logger
    executor_base.close_task_logger = close_task_logger


_install_quiet_task_logger()


# Length histogram buckets: powers of two of characters (bucket k holds lengths in [2^k, 2^(k+1))).
def length_bucket(n_chars: int) -> int:
    return int(math.log2(n_chars)) if n_chars > 0 else 0


def to_document(raw: RawDoc) -> Document:
    meta: dict[str, Any] = {"source": raw.source, "title": raw.title, "url": raw.url}
    meta.update(raw.meta)
    return Document(text=raw.text, id=raw.id, metadata=meta)


class CorpusReader(PipelineStep):
    """Reads work unit number `rank`: {'kind', 'path', 'source', 'hf': {...} or None, 'shard', 'num_shards'}."""

    name = "📖 Persian corpus reader"
    type = "📖 - READER"

    def __init__(self, units: list[dict[str, Any]], reports_dir: str, progress: bool = True):
        super().__init__()
        self.units = units
        self.reports_dir = reports_dir
        self.progress = progress

    def _docs(self, unit: dict[str, Any], report: ReadReport):
        kind, path, source = unit["kind"], unit["path"], unit["source"]
        if unit.get("hf") is not None:
            from persianllama.corpus.hf import iter_hf

            return iter_hf(path, report, kind=kind, source=source, config=unit["hf"].get("config"),
                           split=unit["hf"].get("split", "train"), shard=unit.get("shard", 0),
                           num_shards=unit.get("num_shards", 1))
        if kind == "wikipedia":
            from persianllama.corpus.wikipedia import iter_wikipedia

            return iter_wikipedia(path, report, source=source)
        from persianllama.corpus.oscar import iter_oscar

        return iter_oscar(path, report, source=source)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        unit = self.units[rank]
        report = ReadReport()
        docs = self._docs(unit, report)
        if self.progress:
            from tqdm import tqdm

            docs = tqdm(docs, desc=f"read {os.path.basename(unit['path'].rstrip('/'))}", unit=" docs",
                        mininterval=1.0, leave=False)
        for raw in docs:
            self.stat_update("read")
            yield to_document(raw)
        for reason, n in report.skipped.items():
            self.stat_update(f"skipped_{reason}", value=n)
        for reason, n in report.broken.items():
            self.stat_update(f"broken_{reason}", value=n)
        atomic.write_json(os.path.join(self.reports_dir, f"{rank:05d}.json"),
                          {"unit": unit, **report.to_dict()})


class RejectRecorder:
    """An `exclusion_writer` for datatrove filters: counts dropped documents per reason, their length
    histogram and the first few examples, saved per task to `dir/<name>/<rank>.json`."""

    def __init__(self, directory: str, name: str, examples: int = 3, default_reason: str | None = None):
        self.directory = directory
        self.name = name
        self.examples = examples
        self.default_reason = default_reason
        self._reset()

    def _reset(self):
        self.rank: int | None = None
        self.counts: Counter = Counter()
        self.chars: Counter = Counter()
        self.hist: Counter = Counter()
        self.samples: dict[str, list[dict[str, Any]]] = {}

    def __enter__(self):
        self._reset()
        return self

    def write(self, doc: Document, rank: int = 0, **kwargs):
        self.rank = rank
        reason = doc.metadata.get("filter_reason") or self.default_reason or self.name
        self.counts[reason] += 1
        self.chars[reason] += len(doc.text)
        self.hist[length_bucket(len(doc.text))] += 1
        samples = self.samples.setdefault(reason, [])
        if len(samples) < self.examples:
            samples.append({"id": doc.id, "source": doc.metadata.get("source"), "text": doc.text[:600]})

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None and self.rank is not None:
            atomic.write_json(os.path.join(self.directory, self.name, f"{self.rank:05d}.json"), {
                "counts": dict(self.counts), "chars": dict(self.chars),
                "length_hist": {str(k): v for k, v in sorted(self.hist.items())}, "examples": self.samples,
            })
        return False


class OscarMetadataFilter(BaseFilter):
    """Uses OSCAR's own labels: UT1 categories, quality warnings and (23.01) harmful-content perplexity."""

    name = "🏷 OSCAR metadata"

    def __init__(self, config: OscarMetaConfig, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.blocked = frozenset(config.blocked_categories)
        self.warnings = frozenset(config.drop_quality_warnings)
        self.max_harmful_pp = config.max_harmful_pp

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        meta = doc.metadata
        for cat in meta.get("categories") or ():
            if cat in self.blocked:
                return False, f"oscar_category_{cat}"
        for warning in meta.get("quality_warnings") or ():
            if warning in self.warnings:
                return False, f"oscar_warning_{warning}"
        pp = meta.get("harmful_pp")
        if self.max_harmful_pp is not None and isinstance(pp, (int, float)) and pp < self.max_harmful_pp:
            return False, "oscar_harmful_pp"
        return True


class NormalizeStep(BaseFormatter):
    name = "🔤 Persian normalizer"

    def __init__(self, config: NormalizerConfig):
        super().__init__()
        self.config = config
        self._normalizer: PersianNormalizer | None = None

    def format(self, text: str) -> str:
        if self._normalizer is None:  # built in the worker: the pipeline is pickled to each task
            self._normalizer = PersianNormalizer(self.config)
        return self._normalizer.normalize(text).strip()


class BoilerplateFilter(BaseFilter):
    """Removes boilerplate lines from the documents of `sources` (None: every document); drops a document
    only if nothing is left."""

    name = "🧹 Boilerplate lines"

    def __init__(self, config: BoilerplateConfig, exclusion_writer=None, sources: list[str] | None = None):
        super().__init__(exclusion_writer)
        self.config = config
        self.sources = None if sources is None else frozenset(sources)
        self._remover: BoilerplateRemover | None = None

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if not self.config.enabled or (self.sources is not None and doc.metadata.get("source") not in self.sources):
            return True
        if self._remover is None:
            self._remover = BoilerplateRemover(self.config)
        doc.text, removed = self._remover.clean(doc.text)
        if removed:
            self.stat_update("boilerplate_lines_removed", value=removed)
        return True if doc.text.strip() else (False, "boilerplate_only")


class LanguageFilter(BaseFilter):
    name = "🌐 Persian language/script"

    def __init__(self, config: LanguageConfig, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.config = config

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        reason = language_reason(doc.text, self.config)
        return True if reason is None else (False, reason)


class QualityFilter(BaseFilter):
    """Quality checks with `config`, or with `by_source[source]` for the sources it names (None there:
    that source is not checked); `skip_sources` are not checked either."""

    name = "🥇 Persian quality"

    def __init__(self, config: QualityConfig, skip_sources: list[str] | None = None, exclusion_writer=None,
                 by_source: dict[str, QualityConfig | None] | None = None):
        super().__init__(exclusion_writer)
        self.config = config
        self.by_source = dict(by_source or {})
        self.by_source.update({s: None for s in skip_sources or ()})
        self._checkers: dict[str | None, QualityChecker | None] = {}

    def _checker(self, source: str | None) -> QualityChecker | None:
        if source not in self._checkers:  # built in the worker: the pipeline is pickled to each task
            config = self.by_source.get(source, self.config)
            self._checkers[source] = None if config is None else QualityChecker(config)
        return self._checkers[source]

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        checker = self._checker(doc.metadata.get("source"))
        if checker is None:
            return True
        reason = checker.check(doc.text)
        return True if reason is None else (False, reason)


class KeptRecorder(PipelineStep):
    """Counts what reaches the output (documents, characters, words, per source), a length histogram and
    a few examples; passes every document on unchanged."""

    name = "📊 Kept documents"
    type = "📊 - STATS"

    def __init__(self, directory: str, examples: int = 3):
        super().__init__()
        self.directory = directory
        self.examples = examples

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        docs = chars = words = 0
        per_source: Counter = Counter()
        hist: Counter = Counter()
        samples: list[dict[str, Any]] = []
        for doc in data:
            n_words = count_words(doc.text)
            doc.metadata["n_words"] = n_words
            docs += 1
            chars += len(doc.text)
            words += n_words
            per_source[doc.metadata.get("source")] += 1
            hist[length_bucket(len(doc.text))] += 1
            if len(samples) < self.examples:
                samples.append({"id": doc.id, "source": doc.metadata.get("source"), "text": doc.text[:600]})
            yield doc
        atomic.write_json(os.path.join(self.directory, f"{rank:05d}.json"), {
            "documents": docs, "chars": chars, "words": words, "per_source": dict(per_source),
            "length_hist": {str(k): v for k, v in sorted(hist.items())}, "examples": samples,
        })


def parquet_row(self, doc: Document) -> dict[str, Any]:
    """Flat output schema (OSCAR's nested, sometimes-null metadata would break Parquet's schema)."""
    meta = doc.metadata
    return {
        "text": doc.text,
        "id": doc.id,
        "source": meta.get("source") or "",
        "title": meta.get("title"),
        "url": meta.get("url"),
        "n_words": int(meta.get("n_words") or 0),
        "dup_cluster_size": int(meta.get("minhash_cluster_size") or 1),
    }


def parquet_schema():
    import pyarrow as pa

    return pa.schema([
        ("text", pa.string()), ("id", pa.string()), ("source", pa.string()), ("title", pa.string()),
        ("url", pa.string()), ("n_words", pa.int32()), ("dup_cluster_size", pa.int32()),
    ])
