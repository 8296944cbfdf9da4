"""Hugging Face datasets as corpus inputs: `wikimedia/wikipedia` (config like `20231101.fa`) and
`oscar-corpus/OSCAR-2301` (`text`/`meta` rows), by hub id or local path.

A local directory saved with `Dataset.save_to_disk` is read with `load_from_disk`; any other local
directory or a hub id goes through `load_dataset` (hub ids stream, so nothing is held in memory and
a large dataset is not copied to the cache first). Loading scripts are not supported by datasets
>= 4 and `trust_remote_code` is never passed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from persianllama.corpus.oscar import BadRecord, parse_record
from persianllama.corpus.records import RawDoc, ReadReport
from persianllama.errors import UserError


def looks_like_hf_dataset(path: str) -> bool:
    """A hub id ('owner/name') that is not a local path, or a local directory holding a dataset."""
    if os.path.isdir(path):
        return True
    return not os.path.exists(path) and path.count("/") == 1 and not path.startswith((".", "/"))


def _load(path: str, config: str | None, split: str):
    import datasets

    if os.path.isdir(path) and os.path.exists(os.path.join(path, "dataset_info.json")) and os.path.exists(
        os.path.join(path, "state.json")
    ):
        ds = datasets.load_from_disk(path)
        return ds[split] if isinstance(ds, datasets.DatasetDict) else ds
    streaming = not os.path.exists(path)
    try:
        return datasets.load_dataset(path, config, split=split, streaming=streaming)
    except Exception as e:  # datasets raises many types; the user needs the path and the reason
        raise UserError(f"could not load HF dataset {path!r} (config={config!r}, split={split!r}): {e}") from e


def iter_hf(path: str, report: ReadReport, *, kind: str, source: str, config: str | None = None,
            split: str = "train", shard: int = 0, num_shards: int = 1) -> Iterator[RawDoc]:
    ds = _load(path, config, split)
    if num_shards > 1:
        ds = ds.shard(num_shards=num_shards, index=shard)
    for i, row in enumerate(ds):
        if kind == "wikipedia":
            text, title, url = row.get("text"), row.get("title"), row.get("url")
            if not isinstance(text, str):
                report.bad(path, f"row {i}", "no_text_field", "row has no string 'text'")
                continue
            if not all(v is None or isinstance(v, str) for v in (title, url)):
                report.bad(path, f"row {i}", "wrong_type", "title and url must be strings or null")
                continue
            doc = RawDoc(text=text, id=f"{source}/{row.get('id', i)}", source=source, title=title, url=url)
        else:
            try:
                doc = parse_record(row, path, i, source)
            except BadRecord as e:
                report.bad(path, f"row {i}", e.reason, str(e))
                continue
            if doc is None:
                report.bad(path, f"row {i}", "no_text_field", "row has neither 'text' nor 'content'")
                continue
        report.read += 1
        yield doc
