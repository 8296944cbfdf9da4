"""Readers for the real formats of the Persian eval data sets, from a local path or a hub id.

Every data set has a key (``parsinlu_entailment``, ``farstail``, ...). Its source is, in order:

1. an explicit path or hub id for that key (``--data farstail=PATH``; lm-eval ``--metadata
   '{"data": {"farstail": "PATH"}}'``);
2. ``DATA_DIR/<subdir>`` when a data root is given (``--data-dir``, metadata ``data_dir``, or
   ``$PERSIANLLAMA_EVAL_DATA``); the layout is the upstream repositories' (as in ../shared/data);
3. the data set's hub id, loaded with ``datasets.load_dataset`` (needs the network).

A local source is a directory holding the upstream split files, or one file (then it is the
evaluation split and there is no few-shot split). Each reader turns its format into plain records
(the fields the task YAMLs use). A file that cannot be read (missing, broken JSON/CSV, a missing
column) is a `UserError` naming the file and line; records the upstream release itself leaves
unlabeled (ParsiNLU entailment has a few ``-``/``xx`` labels) are skipped and counted.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from persianllama.errors import UserError

log = logging.getLogger("persianllama.eval")

DATA_ENV = "PERSIANLLAMA_EVAL_DATA"

# Labels -> choice index; the YAMLs' choice lists are in this order.
NLI_LABELS = {"e": 0, "entailment": 0, "c": 1, "contradiction": 1, "n": 2, "neutral": 2}
# ParsiNLU sentiment scale (create_t5_data.py upstream): -3 means no sentiment expressed.
SENTIMENT_LABELS = ["-3", "-2", "-1", "0", "1", "2", "3"]
SENTIMENT_NAMES = [
    "no sentiment expressed",
    "very negative",
    "negative",
    "neutral",
    "positive",
    "very positive",
    "mixed",
]


class RecordError(ValueError):
    """One record cannot be used; the reader adds the file and line."""


class SkipRecord(ValueError):
    """The record is valid in form but unusable (e.g. unlabeled); it is counted, not fatal."""


# --------------------------------------------------------------------------- raw file readers


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    if path.suffix in (".zst", ".zstd"):
        import zstandard

        return io.TextIOWrapper(
            zstandard.ZstdDecompressor().stream_reader(open(path, "rb")), encoding="utf-8"
        )
    return open(path, encoding="utf-8")


def _read_error(path: Path, where: str, message: str) -> UserError:
    return UserError(f"{path}{':' + where if where else ''}: {message}")


def read_jsonl(path: Path) -> Iterator[tuple[str, dict]]:
    """(line number, object) per non-empty line. ParsiNLU ships a few files whose lines are
    Python dict reprs (single quotes); those are read with `ast.literal_eval`."""
    try:
        with _open_text(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    try:
                        obj = ast.literal_eval(line.strip())
                    except (ValueError, SyntaxError):
                        raise _read_error(path, str(n), f"not valid JSON ({e.msg})") from None
                if not isinstance(obj, dict):
                    raise _read_error(path, str(n), f"expected a JSON object, got {type(obj).__name__}")
                yield str(n), obj
    except UnicodeDecodeError as e:
        raise _read_error(path, "", f"not UTF-8 text ({e})") from None


def read_delimited(path: Path, delimiter: str, required: list[str]) -> Iterator[tuple[str, dict]]:
    """Rows of a CSV/TSV file with a header as dicts. Quoted fields may hold the delimiter (FarsTail's
    test file has tabs inside quoted premises)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            try:
                header = next(reader)
            except StopIteration:
                raise _read_error(path, "", "empty file (expected a header line)") from None
            header = [h.strip().lstrip("\ufeff") for h in header]
            missing = [c for c in required if c not in header]
            if missing:
                sep = "tab" if delimiter == "\t" else repr(delimiter)
                raise _read_error(
                    path,
                    "1",
                    f"header {header} lacks column(s) {missing} "
                    f"(expected {sep}-separated columns {required})",
                )
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise _read_error(
                        path, str(reader.line_num), f"{len(row)} fields, header has {len(header)}"
                    )
                yield str(reader.line_num), dict(zip(header, row, strict=True))
    except UnicodeDecodeError as e:
        raise _read_error(path, "", f"not UTF-8 text ({e})") from None
    except csv.Error as e:
        raise _read_error(path, "", f"not valid CSV ({e})") from None


def read_squad_json(path: Path) -> Iterator[tuple[str, dict]]:
    """SQuAD (1.1/2.0) JSON: one flat row per question with its paragraph's context."""
    try:
        with _open_text(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise _read_error(path, f"{e.lineno}:{e.colno}", f"not valid JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise _read_error(path, "", f"not UTF-8 text ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise _read_error(path, "", 'not SQuAD JSON: expected {"data": [{"title", "paragraphs": [...]}]}')
    for a, article in enumerate(data["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise _read_error(path, f"data[{a}]", 'article has no "paragraphs" list')
        for p, para in enumerate(paragraphs):
            if not isinstance(para, dict) or "context" not in para or not isinstance(para.get("qas"), list):
                raise _read_error(path, f"data[{a}].paragraphs[{p}]", 'paragraph needs "context" and "qas"')
            for q, qa in enumerate(para["qas"]):
                yield (
                    f"data[{a}].paragraphs[{p}].qas[{q}]",
                    dict(qa, context=para["context"], title=article.get("title", "")),
                )


# --------------------------------------------------------------------------- record converters


def _get(row: dict, *names: str) -> Any:
    for name in names:
        if name in row and row[name] is not None:
            return row[name]
    raise RecordError(
        f"missing field {names[0]!r}"
        + (f" (or {', '.join(map(repr, names[1:]))})" if len(names) > 1 else "")
        + f"; has {sorted(row)}"
    )


def _text(row: dict, *names: str) -> str:
    value = _get(row, *names)
    if not isinstance(value, str):
        raise RecordError(f"field {names[0]!r} must be text, got {value!r}")
    return value.strip()


def multiple_choice_record(row: dict) -> dict:
    """ParsiNLU multiple-choice: question, candidates (4, some empty), answer '1'..'4', category."""
    candidates = _get(row, "candidates", "choices")
    if not isinstance(candidates, list) or not candidates:
        raise RecordError(f"'candidates' must be a non-empty list, got {candidates!r}")
    try:
        answer = int(str(_get(row, "answer", "label")).strip()) - 1
    except ValueError:
        raise RecordError(
            f"'answer' must be a number 1..{len(candidates)}, got {row.get('answer')!r}"
        ) from None
    if not 0 <= answer < len(candidates):
        raise RecordError(f"'answer' {answer + 1} is outside 1..{len(candidates)}")
    if not str(candidates[answer]).strip():
        raise SkipRecord("answer points to an empty candidate")
    # Empty candidates (24 of 1050 test questions have a blank 4th option) are not choices.
    keep = [i for i, c in enumerate(candidates) if str(c).strip()]
    return {
        "question": _text(row, "question"),
        "choices": [str(candidates[i]).strip() for i in keep],
        "label": keep.index(answer),
        "category": str(row.get("category") or ""),
    }


def subset_of(source: str) -> str:
    """ParsiNLU's origin of a pair: ``natural`` (written in Persian: entailment sources natural-wiki,
    natural-voa, natural-miras; QQP category natural) or ``translated`` (machine-translated and then
    edited: entailment translation-train/-dev, QQP category qqp, i.e. Quora Question Pairs);
    '' when the source says neither (FarsTail, hand-made files)."""
    s = source.strip().lower()
    if s.startswith("natural"):
        return "natural"
    if s.startswith(("translation", "translated", "qqp")):
        return "translated"
    return ""


def nli_record(row: dict) -> dict:
    """ParsiNLU entailment (sent1, sent2, label e/c/n) and FarsTail (premise, hypothesis, label)."""
    label = str(_get(row, "label")).strip().lower()
    if label not in NLI_LABELS:
        raise SkipRecord(f"label {label!r} is not one of e, c, n")
    source = str(row.get("source") or row.get("category") or "")
    return {
        "premise": _text(row, "premise", "sent1"),
        "hypothesis": _text(row, "hypothesis", "sent2"),
        "label": NLI_LABELS[label],
        "source": source,
        "subset": subset_of(source),
    }


def sentiment_record(row: dict) -> dict:
    """ParsiNLU aspect-based sentiment: review, question (about one aspect), aspect, label -3..3."""
    label = str(_get(row, "label")).strip()
    if label not in SENTIMENT_LABELS:
        raise SkipRecord(f"label {label!r} is not one of {SENTIMENT_LABELS}")
    return {
        "review": _text(row, "review"),
        "question": _text(row, "question"),
        "aspect": str(row.get("aspect") or "").strip(),
        "category": str(row.get("category") or "").strip(),
        "label": SENTIMENT_LABELS.index(label),
    }


def paraphrase_record(row: dict) -> dict:
    """ParsiNLU query paraphrasing (QQP): q1, q2, label 0/1, category."""
    label = str(_get(row, "label")).strip()
    if label not in ("0", "1"):
        raise SkipRecord(f"label {label!r} is not 0 or 1")
    category = str(row.get("category") or "")
    return {
        "q1": _text(row, "q1"),
        "q2": _text(row, "q2"),
        "label": int(label),
        "category": category,
        "subset": subset_of(category),
    }


def _answer_texts(answers: Any) -> list[str]:
    """ParsiNLU [[start, text], ...], SQuAD [{"text", "answer_start"}], or HF {"text": [...]}."""
    if isinstance(answers, dict):  # datasets' columnar form
        texts = answers.get("text", answers.get("answer_text", []))
        return [str(t).strip() for t in texts if str(t).strip()]
    if not isinstance(answers, list):
        raise RecordError(f"'answers' must be a list, got {type(answers).__name__}")
    out = []
    for a in answers:
        if isinstance(a, dict) and "text" in a:
            text = a["text"]
        elif isinstance(a, (list, tuple)) and len(a) == 2:
            text = a[1]
        else:
            raise RecordError(f"answer {a!r} is neither [start, text] nor {{'text': ...}}")
        if str(text).strip():
            out.append(str(text).strip())
    return out


def reading_comprehension_record(row: dict) -> dict:
    """ParsiNLU reading comprehension (jsonl: passage, question, answers [[start, text]]) or the
    same data as SQuAD JSON (context, qas)."""
    answers = _answer_texts(_get(row, "answers"))
    if not answers:
        raise SkipRecord("no answer text")
    return {
        "id": str(row.get("id") or row.get("url") or ""),
        "context": _text(row, "passage", "context"),
        "question": _text(row, "question"),
        "answers": answers,
    }


def squad2_record(row: dict) -> dict:
    """PersianQA / SQuAD 2.0 question: unanswerable when is_impossible or no answers."""
    answers = _answer_texts(row.get("answers") or [])
    impossible = row.get("is_impossible")
    if isinstance(impossible, str):
        impossible = impossible.strip().lower() in ("true", "1")
    impossible = bool(impossible) if impossible is not None else not answers
    if not impossible and not answers:
        raise RecordError("answerable question (is_impossible false) without any answer text")
    return {
        "id": str(_get(row, "id")),
        "title": str(row.get("title") or ""),
        "context": _text(row, "context"),
        "question": _text(row, "question"),
        "answers": [] if impossible else answers,
        "is_impossible": impossible,
    }


# --------------------------------------------------------------------------- data set registry


@dataclass(frozen=True)
class DatasetSpec:
    key: str
    subdir: str
    """Folder under the data root (the upstream repository layout, as in ../shared/data)."""
    files: dict[str, tuple[str, ...]]
    """Split -> candidate file names in that folder (first that exists wins)."""
    convert: Callable[[dict], dict]
    hub: str | None = None
    """Hub id used when no local source is configured."""
    hub_config: str | None = None
    hub_splits: dict[str, str] = field(default_factory=lambda: {"test": "test", "train": "train"})


def _reader_for(path: Path, spec: DatasetSpec) -> Iterator[tuple[str, dict]]:
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz")):
        return read_jsonl(path)
    if name.endswith(".json"):
        return read_squad_json(path)
    if name.endswith(".tsv") or (spec.key == "farstail" and name.endswith(".csv")):
        # FarsTail's *.csv files are tab-separated (see its PROVENANCE.txt).
        return read_delimited(path, "\t", ["premise", "hypothesis", "label"])
    if name.endswith(".csv"):
        return read_delimited(path, ",", ["sent1", "sent2", "label"])
    raise UserError(f"{path}: unsupported file type for {spec.key} (expected .jsonl, .json, .csv or .tsv)")


DATASETS: dict[str, DatasetSpec] = {
    s.key: s
    for s in [
        DatasetSpec(
            "parsinlu_multiple_choice",
            "parsinlu/data/multiple-choice",
            {"test": ("test.jsonl",), "train": ("train.jsonl",), "validation": ("valid.jsonl",)},
            multiple_choice_record,
            hub="persiannlp/parsinlu_multiple_choice",
        ),
        DatasetSpec(
            "parsinlu_entailment",
            "parsinlu/data/entailment",
            {"test": ("test.csv",), "train": ("train.csv",), "validation": ("dev.csv",)},
            nli_record,
            hub="persiannlp/parsinlu_entailment",
        ),
        # food_train.jsonl is not in every copy of the repository; dev stands in for few-shot examples.
        # No default hub id: the hub copy (persiannlp/parsinlu_sentiment) mixes both domains and its
        # split names could not be checked offline; --data parsinlu_sentiment_food=ID still works.
        DatasetSpec(
            "parsinlu_sentiment_food",
            "parsinlu/data/sentiment-analysis",
            {
                "test": ("food_test.jsonl",),
                "train": ("food_train.jsonl", "food_dev.jsonl"),
                "validation": ("food_dev.jsonl",),
            },
            sentiment_record,
        ),
        DatasetSpec(
            "parsinlu_sentiment_movie",
            "parsinlu/data/sentiment-analysis",
            {
                "test": ("movie_test.jsonl",),
                "train": ("movie_train.jsonl", "movie_dev.jsonl"),
                "validation": ("movie_dev.jsonl",),
            },
            sentiment_record,
        ),
        DatasetSpec(
            "parsinlu_qqp",
            "parsinlu/data/qqp",
            {"test": ("test.jsonl",), "train": ("train.jsonl",), "validation": ("dev.jsonl",)},
            paraphrase_record,
            hub="persiannlp/parsinlu_query_paraphrasing",
        ),
        DatasetSpec(
            "parsinlu_reading_comprehension",
            "parsinlu/data/reading_comprehension",
            {
                "test": ("eval.jsonl", "eval.json"),
                "train": ("train.jsonl", "train.json"),
                "validation": ("dev.jsonl", "dev.json"),
            },
            reading_comprehension_record,
            hub="persiannlp/parsinlu_reading_comprehension",
        ),
        DatasetSpec(
            "farstail",
            "farstail/data",
            {
                "test": ("Test-word.csv", "test.tsv", "test.csv"),
                "train": ("Train-word.csv", "train.tsv"),
                "validation": ("Val-word.csv", "dev.tsv"),
            },
            nli_record,
            hub=None,
        ),
        DatasetSpec(
            "persianqa",
            "persianqa/dataset",
            {"test": ("pqa_test.json",), "train": ("pqa_train.json",)},
            squad2_record,
            hub="SajjadAyoubi/persian_qa",
            hub_splits={"test": "validation", "train": "train"},
        ),
    ]
}


@dataclass
class LoadedSplit:
    records: list[dict]
    source: str
    """File path or hub id the records came from ('' when the split is absent)."""
    skipped: Counter = field(default_factory=Counter)
    """Reason -> number of rows left out (rows the upstream release leaves unlabeled, ...)."""
    skipped_by_category: dict[str, Counter] = field(default_factory=dict)
    """The same counts per the row's ``category`` field ('' when it has none), so a task that takes
    one category (parsinlu_mc_literature) reports only its own dropped rows."""

    def skipped_in(self, category: str | None = None) -> Counter:
        if category is None:
            return Counter(self.skipped)
        return Counter(self.skipped_by_category.get(category, Counter()))


def resolve_source(key: str, data: dict[str, str] | None = None, data_dir: str | None = None) -> str:
    """Where the data set `key` comes from: an explicit path/hub id, DATA_DIR/<subdir>, or its hub id."""
    spec = DATASETS.get(key)
    if spec is None:
        raise UserError(f"unknown data set {key!r}; known: {', '.join(sorted(DATASETS))}")
    if data and data.get(key):
        return str(data[key])
    root = data_dir or os.environ.get(DATA_ENV)
    if root:
        return str(Path(root) / spec.subdir)
    if spec.hub:
        return spec.hub
    raise UserError(
        f"no data for {key}: it has no hub copy; pass --data {key}=PATH "
        f"or --data-dir DIR (expects DIR/{spec.subdir}/)"
    )


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_id(source: str) -> bool:
    return not os.path.exists(source) and bool(_HUB_ID.match(source)) and not source.startswith((".", "/"))


def _convert_rows(
    rows: Iterator[tuple[str, dict]],
    convert: Callable[[dict], dict],
    where: str,
    skipped: Counter,
    by_category: dict[str, Counter] | None = None,
) -> list[dict]:
    out = []
    for loc, row in rows:
        try:
            out.append(convert(row))
        except SkipRecord as e:
            skipped[str(e)] += 1
            if by_category is not None:
                by_category.setdefault(str(row.get("category") or ""), Counter())[str(e)] += 1
        except RecordError as e:
            raise UserError(f"{where}:{loc}: {e}") from None
    return out


# Each task of a family (three ParsiNLU multiple-choice categories, cloze and chat variants) reads the
# same file, and lm-eval builds every task twice (the up-front check, then the run): read each file
# once per process. The key holds the file's size and mtime, so an edited file is read again.
_FILE_CACHE: dict[tuple, tuple[list[dict], Counter, dict[str, Counter]]] = {}


def _read_file(path: Path, spec: DatasetSpec) -> LoadedSplit:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, spec.key)
    if key not in _FILE_CACHE:
        skipped: Counter = Counter()
        by_category: dict[str, Counter] = {}
        records = _convert_rows(_reader_for(path, spec), spec.convert, str(path), skipped, by_category)
        if len(_FILE_CACHE) > 64:
            _FILE_CACHE.clear()
        _FILE_CACHE[key] = (records, skipped, by_category)
    records, skipped, by_category = _FILE_CACHE[key]
    # Callers get their own lists and dicts (the cached ones stay as read).
    return LoadedSplit(
        [dict(r) for r in records],
        str(path),
        Counter(skipped),
        {c: Counter(n) for c, n in by_category.items()},
    )


def _load_local_split(spec: DatasetSpec, source: Path, split: str) -> LoadedSplit:
    if source.is_file():
        if split != "test":
            return LoadedSplit([], "")
        path = source
    elif source.is_dir():
        path = next((source / f for f in spec.files.get(split, ()) if (source / f).is_file()), None)
        if path is None:
            if split == "test":
                wanted = " or ".join(spec.files["test"])
                raise UserError(
                    f"{source}: no {wanted} for {spec.key} (the evaluation split); "
                    f"point --data {spec.key}=... at the folder or file that holds it"
                )
            return LoadedSplit([], "")
    else:
        raise UserError(f"{source}: no such file or directory (data for {spec.key})")
    return _read_file(path, spec)


def _load_hub_split(spec: DatasetSpec, hub_id: str, split: str) -> LoadedSplit:
    import datasets

    hub_split = spec.hub_splits.get(split, split)
    errors = []
    # Older data sets on the hub are loading scripts, which datasets>=4 no longer runs; the hub's
    # automatic Parquet export (refs/convert/parquet) holds the same rows.
    for revision in (None, "refs/convert/parquet"):
        try:
            ds = datasets.load_dataset(hub_id, spec.hub_config, split=hub_split, revision=revision)
            break
        except ValueError as e:
            if split != "test" and "split" in str(e).lower():
                return LoadedSplit([], "")
            errors.append(f"{type(e).__name__}: {e}")
        except Exception as e:  # noqa: BLE001 - any hub/network failure becomes one clear message
            errors.append(f"{type(e).__name__}: {e}")
    else:
        raise UserError(
            f"could not load hub data set {hub_id!r} ({spec.key}, split {hub_split}): {errors[-1]} "
            f"- offline? pass a local copy with --data {spec.key}=PATH or --data-dir DIR"
        )
    # Class-label columns hold integers on the hub; our converters read the label names (e/c/n, -3..3).
    names = {col: feat.names for col, feat in ds.features.items() if isinstance(feat, datasets.ClassLabel)}

    def named(row: dict) -> dict:
        return {
            k: (names[k][v] if k in names and isinstance(v, int) and v >= 0 else v) for k, v in row.items()
        }

    skipped: Counter = Counter()
    by_category: dict[str, Counter] = {}
    rows = ((f"row {i}", named(dict(r))) for i, r in enumerate(ds))
    records = _convert_rows(rows, spec.convert, f"{hub_id}[{hub_split}]", skipped, by_category)
    return LoadedSplit(records, hub_id, skipped, by_category)


def load_split(
    key: str, split: str, data: dict[str, str] | None = None, data_dir: str | None = None
) -> LoadedSplit:
    """Records of one split of data set `key` (an absent non-test split gives no records)."""
    spec = DATASETS[key]
    source = resolve_source(key, data, data_dir)
    if is_hub_id(source):
        loaded = _load_hub_split(spec, source, split)
    else:
        loaded = _load_local_split(spec, Path(source).expanduser(), split)
    if split == "test" and not loaded.records:
        raise UserError(
            f"{loaded.source or source}: no usable records for {key}"
            + (f" (skipped: {dict(loaded.skipped)})" if loaded.skipped else "")
        )
    if loaded.skipped and (loaded.source, key) not in _WARNED:
        _WARNED.add((loaded.source, key))  # once per process; results.json and report.md count them too
        log.warning(
            "%s: skipped %d record(s) of %s: %s",
            loaded.source,
            sum(loaded.skipped.values()),
            key,
            dict(loaded.skipped),
        )
    return loaded


_WARNED: set[tuple[str, str]] = set()


# --------------------------------------------------------------------------- held-out text

TEXT_SUFFIXES = (".txt", ".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".parquet", ".conllu")


def read_text_documents(source: str | Path, limit: int | None = None) -> list[str]:
    """Documents of held-out text: a .txt file (documents separated by blank lines), corpus-builder
    output (.jsonl[.gz|.zst] or .parquet with a "text" field), CoNLL-U (each ``# text =`` sentence is a
    document), a directory of such files, or a hub id (its "text" column, split "test")."""
    source = str(source)
    if is_hub_id(source):
        import datasets

        try:
            ds = datasets.load_dataset(source, split="test")
        except Exception as e:  # noqa: BLE001
            raise UserError(f"could not load hub text data set {source!r}: {type(e).__name__}: {e}") from None
        if "text" not in ds.column_names:
            raise UserError(f"hub data set {source!r} has no 'text' column (has {ds.column_names})")
        docs = [t for t in ds["text"] if t and t.strip()]
        return docs[:limit] if limit else docs
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(TEXT_SUFFIXES))
        if not files:
            raise UserError(f"{path}: no text files ({', '.join(TEXT_SUFFIXES)}) in this directory")
    elif path.is_file():
        files = [path]
    else:
        raise UserError(f"{path}: no such file or directory (held-out text for bits-per-byte)")
    docs: list[str] = []
    for f in files:
        docs.extend(_read_text_file(f))
        if limit and len(docs) >= limit:
            break
    if not docs:
        raise UserError(f"{path}: no text found")
    return docs[:limit] if limit else docs


def _read_text_file(path: Path) -> list[str]:
    name = path.name.lower()
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path, columns=["text"])
        except Exception as e:  # noqa: BLE001
            raise UserError(f"{path}: cannot read a 'text' column from this Parquet file ({e})") from None
        return [t for t in table.column("text").to_pylist() if t and t.strip()]
    if name.endswith((".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz")):
        docs = []
        for n, obj in read_jsonl(path):
            if not isinstance(obj.get("text"), str):
                raise UserError(f'{path}:{n}: no "text" field (corpus-builder output has one per line)')
            if obj["text"].strip():
                docs.append(obj["text"])
        return docs
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e})") from None
    if name.endswith(".conllu"):
        docs = [
            line[len("# text = ") :].strip() for line in content.splitlines() if line.startswith("# text = ")
        ]
        if not docs:
            raise UserError(f"{path}: no '# text = ' lines (is this CoNLL-U?)")
        return docs
    return [d.strip() for d in re.split(r"\n\s*\n", content) if d.strip()]


DEFAULT_TEXT_FILES = (
    "ud_persian_seraji/fa_seraji-ud-test.conllu",
    "ud_persian_perdt/fa_perdt-ud-test.conllu",
)


def resolve_text_source(data: dict[str, str] | None = None, data_dir: str | None = None) -> list[str]:
    """Held-out text sources: --data text=PATH[,PATH...], else the UD Persian test sets under the
    data root."""
    if data and data.get("text"):
        return [s for s in str(data["text"]).split(",") if s]
    root = data_dir or os.environ.get(DATA_ENV)
    if root:
        return [str(Path(root) / f) for f in DEFAULT_TEXT_FILES]
    raise UserError(
        "no held-out text for bits-per-byte: pass --data text=PATH (a .txt/.jsonl/.parquet/"
        ".conllu file or folder) or --data-dir DIR (uses DIR/ud_persian_*/*-ud-test.conllu)"
    )


# --------------------------------------------------------------------------- parallel text (translation)

QURAN_SUBDIR = "parsinlu/data/translation/quran"
"""ParsiNLU's line-aligned Quran translations: ten Persian (fa.*.norm.txt) and one English
(en.yusufali.txt), 6236 verses each (PROVENANCE.txt says 6235 lines: the last one has no newline)."""
PRIMARY_FA = "makarem"
"""The Persian translation used as the source sentence of fa->en (Makarem Shirazi's, the most widely
read); every Persian translation is a reference of en->fa."""
TEST_EVERY = 10
"""In a folder of line-aligned files, line i is a test pair when i % TEST_EVERY == 0 (624 of the
6236 verses); the other lines are the few-shot pool. ParsiNLU's own split files for the Quran are
Git-LFS pointers in the snapshot, so the split is ours and stated here."""
PARALLEL_LANGS = ("fa", "en")


def resolve_parallel_source(data: dict[str, str] | None = None, data_dir: str | None = None) -> str:
    """Where the translation tasks' parallel text comes from: --data translation=PATH, else the ParsiNLU
    Quran folder under the data root."""
    if data and data.get("translation"):
        return str(data["translation"])
    root = data_dir or os.environ.get(DATA_ENV)
    if root:
        return str(Path(root) / QURAN_SUBDIR)
    raise UserError(
        "no parallel text for the translation tasks: pass --data translation=PATH (a folder of "
        "line-aligned fa.*.txt and en.*.txt files like ParsiNLU's data/translation/quran, or a .tsv/.jsonl "
        "file with fa and en fields) or --data-dir DIR (uses DIR/" + QURAN_SUBDIR + ")"
    )


def _refs(value: Any, field_name: str) -> list[str]:
    if isinstance(value, str):
        values = [value]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        values = value
    else:
        raise RecordError(f"field {field_name!r} must be text or a list of texts, got {value!r}")
    return [v.strip() for v in values if v.strip()]


def _parallel_rows(path: Path) -> Iterator[tuple[str, dict[str, list[str]]]]:
    """(location, {"fa": [...], "en": [...]}) of a .tsv (header naming fa and en columns; further
    columns fa_2, en_2, ... are more references) or a .jsonl ({"fa": text or [texts], "en": ...})."""
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz")):
        for n, obj in read_jsonl(path):
            try:
                yield n, {lang: _refs(obj.get(lang, ""), lang) for lang in PARALLEL_LANGS}
            except RecordError as e:
                raise UserError(f"{path}:{n}: {e}") from None
        return
    if name.endswith((".tsv", ".csv")):
        with open(path, encoding="utf-8") as f:
            head = f.readline().rstrip("\n").split("\t")
        header = [h.strip().lstrip("\ufeff") for h in head]
        if not all(lang in header for lang in PARALLEL_LANGS):
            raise UserError(
                f"{path}:1: header {header} needs tab-separated columns 'fa' and 'en' "
                "(more references as fa_2, en_2, ...)"
            )
        cols = {lang: [h for h in header if h == lang or h.startswith(lang + "_")] for lang in PARALLEL_LANGS}
        for n, row in read_delimited(path, "\t", list(PARALLEL_LANGS)):
            yield n, {lang: [row[c].strip() for c in cols[lang] if row[c].strip()] for lang in PARALLEL_LANGS}
        return
    raise UserError(f"{path}: unsupported parallel-text file (expected .tsv or .jsonl with fa and en)")


def _aligned_folder(folder: Path) -> tuple[list[dict], Counter, str]:
    """Line-aligned fa.*.txt / en.*.txt files (one sentence or verse per line)."""
    files = {lang: sorted(folder.glob(f"{lang}.*.txt")) for lang in PARALLEL_LANGS}
    for lang, found in files.items():
        if not found:
            raise UserError(
                f"{folder}: no {lang}.*.txt file; a parallel-text folder holds line-aligned fa.NAME.txt and "
                "en.NAME.txt files (or test.tsv / test.jsonl)"
            )
    primary = next((p for p in files["fa"] if p.name.split(".")[1] == PRIMARY_FA), files["fa"][0])
    files["fa"] = [primary] + [p for p in files["fa"] if p != primary]
    lines: dict[Path, list[str]] = {}
    for path in files["fa"] + files["en"]:
        try:
            # "\n" only: str.splitlines also breaks at U+2028, U+0085 ... inside a verse and would misalign
            text = path.read_text(encoding="utf-8")
            lines[path] = [ln.rstrip("\r") for ln in (text[:-1] if text.endswith("\n") else text).split("\n")]
        except UnicodeDecodeError as e:
            raise UserError(f"{path}: not UTF-8 text ({e})") from None
    counts = {p: len(v) for p, v in lines.items()}
    if len(set(counts.values())) != 1:
        shown = ", ".join(f"{p.name} {n}" for p, n in counts.items())
        raise UserError(f"{folder}: the files are not line-aligned (lines: {shown}); each needs one line per pair")
    pairs, skipped = [], Counter()
    for i in range(next(iter(counts.values()))):
        fa = [lines[p][i].strip() for p in files["fa"]]
        en = [lines[p][i].strip() for p in files["en"]]
        if not fa[0] or not any(en):
            skipped[f"empty line in {primary.name if not fa[0] else 'every en file'}"] += 1
            continue
        pairs.append({"id": str(i + 1), "line": i, "fa": [t for t in fa if t], "en": [t for t in en if t]})
    described = f"{primary.name} (+{len(files['fa']) - 1} more Persian) and {', '.join(p.name for p in files['en'])}"
    return pairs, skipped, described


def load_parallel(
    split: str, data: dict[str, str] | None = None, data_dir: str | None = None
) -> LoadedSplit:
    """Parallel pairs {"id", "fa": [texts], "en": [texts]} of one split ('test' or 'train'); the first
    text of each side is its source sentence, all of them are references. A folder of aligned files
    splits by line (`TEST_EVERY`); a folder with test.tsv/.jsonl (and train.*) uses those; a single
    file is the test split and has no few-shot pool."""
    source = Path(resolve_parallel_source(data, data_dir)).expanduser()
    if not source.exists():
        raise UserError(f"{source}: no such file or directory (parallel text for the translation tasks)")
    if source.is_dir():
        split_file = next(
            (source / f"{split}{ext}" for ext in (".tsv", ".jsonl") if (source / f"{split}{ext}").is_file()), None
        )
        if split_file is None and any((source / f"test{ext}").is_file() for ext in (".tsv", ".jsonl")):
            return LoadedSplit([], "")  # a split-file folder without this split
        if split_file is None:
            pairs, skipped, described = _aligned_folder(source)
            keep = [p for p in pairs if (p["line"] % TEST_EVERY == 0) == (split == "test")]
            for p in keep:
                p.pop("line")
            return LoadedSplit(keep, f"{source} ({described}; test = every {TEST_EVERY}th line)", skipped)
        path = split_file
    else:
        if split != "test":
            return LoadedSplit([], "")
        path = source
    pairs, skipped = [], Counter()
    for n, row in _parallel_rows(path):
        if not row["fa"] or not row["en"]:
            skipped["empty fa or en"] += 1
            continue
        pairs.append({"id": n, **row})
    if split == "test" and not pairs:
        raise UserError(f"{path}: no parallel pairs" + (f" (skipped: {dict(skipped)})" if skipped else ""))
    return LoadedSplit(pairs, str(path), skipped)
