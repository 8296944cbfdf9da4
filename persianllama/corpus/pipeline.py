"""`persianllama corpus build`: run the corpus pipeline as datatrove stages and publish the result.

Stages (each a datatrove executor; each task marks itself complete, so a rerun skips finished work):

1. clean    one task per input file (or HF dataset shard): read -> OSCAR metadata -> normalize ->
            boilerplate lines -> language/script -> quality -> jsonl.gz in DIR/.work/clean
2. exact    exact dedup on the normalized text (signature, find, filter) -> DIR/.work/exact
3. minhash  near dedup (signature, buckets, cluster) and the final filter + Parquet writer
4. publish  Parquet shards moved atomically into DIR/data, then stats.json, the data card and the plot

Everything intermediate lives in DIR/.work (a hidden folder, which `datasets` ignores when it
globs DIR/**/*.parquet). The recipe and the inputs' sizes are fingerprinted there: rerunning the
same command resumes; rerunning with other settings on the same DIR is refused with a clear message.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from typing import Any

from persianllama import atomic
from persianllama.config import to_dict
from persianllama.corpus.config import CorpusConfig, SourceConfig
from persianllama.errors import UserError

log = logging.getLogger(__name__)

WIKI_SUFFIXES = (".xml", ".xml.bz2", ".xml.gz", ".xml.xz", ".xml.zst")
OSCAR_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".jsonl.zstd", ".json", ".json.gz", ".json.zst")


def doc_text(doc) -> bytes:
    """Content getter for exact dedup: the normalized text, as bytes for datatrove's xxhash."""
    return doc.text.encode("utf-8")


class SourcePriority:
    """Exact-dedup priority: among identical documents the one from the earliest-listed source is kept
    (datatrove keeps the highest priority, 1..65535)."""

    def __init__(self, sources: list[str]):
        self.rank = {name: 65535 - i for i, name in enumerate(dict.fromkeys(sources))}

    def __call__(self, doc) -> int:
        return self.rank.get(doc.metadata.get("source"), 1)


# ----------------------------------------------------------------------------------------------
# Inputs


def expand_inputs(source: SourceConfig) -> list[dict[str, Any]]:
    """Work units of one source: one per file, or `hf_shards` per HF dataset. Missing or empty inputs
    are an error naming the path."""
    from persianllama.corpus.hf import looks_like_hf_dataset

    suffixes = WIKI_SUFFIXES if source.kind == "wikipedia" else OSCAR_SUFFIXES
    if not source.inputs:
        raise UserError(f"source {source.source!r} has no inputs (give --input PATH or sources[].inputs)")
    units: list[dict[str, Any]] = []
    for spec in source.inputs:
        if any(ch in spec for ch in "*?["):
            paths = sorted(glob.glob(spec, recursive=True))
            if not paths:
                raise UserError(f"no file matches {spec!r}")
        elif os.path.isdir(spec) and not _is_hf_dir(spec):
            paths = sorted(p for p in glob.glob(os.path.join(spec, "**", "*"), recursive=True)
                           if p.endswith(suffixes))
            if not paths:
                raise UserError(f"{spec}: no {source.kind} files ({', '.join(suffixes)}) in this directory")
        elif os.path.isfile(spec):
            paths = [spec]
        elif looks_like_hf_dataset(spec):
            for shard in range(source.hf_shards):
                units.append({"kind": source.kind, "path": spec, "source": source.source,
                              "hf": {"config": source.hf_config, "split": source.hf_split},
                              "shard": shard, "num_shards": source.hf_shards})
            continue
        else:
            raise UserError(f"input not found: {spec}")
        for path in paths:
            if os.path.getsize(path) == 0:
                raise UserError(f"input is empty: {path}")
            if not path.endswith(suffixes):
                raise UserError(f"{path}: not a {source.kind} input (expected one of {', '.join(suffixes)})")
            units.append({"kind": source.kind, "path": os.path.abspath(path), "source": source.source,
                          "hf": None})
    return units


def _is_hf_dir(path: str) -> bool:
    return os.path.exists(os.path.join(path, "dataset_info.json")) or os.path.exists(
        os.path.join(path, "README.md")) and bool(glob.glob(os.path.join(path, "**", "*.parquet"), recursive=True))


def fingerprint(config: CorpusConfig, units: list[dict[str, Any]]) -> str:
    """Settings + inputs (path, size, mtime) that decide the output; executor/progress do not."""
    settings = to_dict(config)
    for key in ("executor", "progress", "output", "free_space_factor"):
        settings.pop(key, None)
    files = []
    for u in units:
        if u["hf"] is None:
            st = os.stat(u["path"])
            files.append([u["path"], st.st_size, int(st.st_mtime)])
        else:
            files.append([u["path"], u["hf"], u["shard"], u["num_shards"]])
    blob = json.dumps({"settings": settings, "files": files}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# Output checks


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _tree_size(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def input_bytes(units: list[dict[str, Any]]) -> int:
    """Bytes of the local inputs (files; local HF dataset folders once each); hub datasets count 0."""
    total = 0
    for path in dict.fromkeys(u["path"] for u in units):
        if os.path.isfile(path):
            total += os.path.getsize(path)
        elif os.path.isdir(path):
            total += _tree_size(path)
    return total


def check_output(out: str, units: list[dict[str, Any]], factor: float) -> None:
    """Refuse, in one line and before any work, an --output that is a file, cannot be written, or sits on a
    filesystem with less free space than `factor` x the inputs' size (less what an earlier run of this
    build already wrote there)."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--output {out} is an existing file, not a directory; choose a directory path")
    parent = out
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UserError(f"--output {out}: {parent} is a file, so the directory cannot be created there")

    def unwritable(e: OSError) -> UserError:
        return UserError(f"--output {out} is not writable ({e.strerror or e}); choose another directory "
                         "or fix its permissions")

    try:  # a real write where the output will go (os.access is blind to read-only mounts, and root passes it)
        os.rmdir(tempfile.mkdtemp(dir=parent, prefix=".write-check-"))
    except OSError as e:
        raise unwritable(e) from None
    if factor > 0:
        # What a run of this build already wrote there counts towards it (a resume, or --fresh's leftovers).
        needed = factor * input_bytes(units) - sum(_tree_size(os.path.join(out, d)) for d in (".work", "data"))
        free = shutil.disk_usage(parent).free
        if free < needed:
            raise UserError(
                f"not enough free space for --output {out}: {_human(free)} free there, the build needs about "
                f"{_human(needed)} ({factor:g}x the inputs' {_human(input_bytes(units))}); free some space, choose "
                "another --output, or lower free_space_factor (0 turns this check off)")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise unwritable(e) from None


# ----------------------------------------------------------------------------------------------
# Executors


def _executor(config: CorpusConfig, pipeline: list, tasks: int, logging_dir: str, name: str,
              depends=None, workers: int | None = None):
    ex = config.executor
    if ex.kind == "slurm":
        from datatrove.executor import SlurmPipelineExecutor

        return SlurmPipelineExecutor(
            pipeline=pipeline, tasks=tasks, workers=workers or -1, time=ex.slurm_time,
            partition=ex.slurm_partition, cpus_per_task=ex.slurm_cpus_per_task, job_name=f"persianllama-{name}",
            logging_dir=logging_dir, depends=depends,
        )
    if ex.kind == "ray":
        import ray
        from datatrove.executor import RayPipelineExecutor

        if not ray.is_initialized():
            ray.init(address=ex.ray_address)
        return RayPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=workers or ex.workers,
                                   logging_dir=logging_dir, depends=depends)
    from datatrove.executor import LocalPipelineExecutor

    # fork (where available): workers inherit the quiet task logger and skip forkserver's re-imports.
    start = "fork" if sys.platform.startswith("linux") else "spawn"
    return LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=min(workers or ex.workers, tasks),
                                 logging_dir=logging_dir, depends=depends, start_method=start)


def build_stages(config: CorpusConfig, units: list[dict[str, Any]], work: str) -> list[tuple[str, Any]]:
    """The executors of the build, in order, as (name, executor)."""
    from datatrove.pipeline.dedup.exact_dedup import (
        ExactDedupConfig,
        ExactDedupFilter,
        ExactDedupSignature,
        ExactFindDedups,
    )
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter, ParquetWriter

    from persianllama.corpus import blocks
    from persianllama.text.words import PersianWordTokenizer

    rejects = os.path.join(work, "rejects")
    n_ex = config.examples_per_reason
    quality_by_source = {s.source: config.quality_for(s) for s in config.sources}
    boilerplate_sources = sorted({s.source for s in config.sources if config.removes_boilerplate(s)})
    n_files = len(units)
    stages: list[tuple[str, Any]] = []

    def rec(name, default_reason=None):
        return blocks.RejectRecorder(rejects, name, n_ex, default_reason)

    clean = [
        blocks.CorpusReader(units, os.path.join(work, "reports"), progress=config.progress),
        blocks.OscarMetadataFilter(config.oscar, exclusion_writer=rec("oscar_metadata")),
        blocks.NormalizeStep(config.normalizer),
        blocks.BoilerplateFilter(config.boilerplate, exclusion_writer=rec("boilerplate"), sources=boilerplate_sources),
        blocks.LanguageFilter(config.language, exclusion_writer=rec("language")),
        blocks.QualityFilter(config.quality, exclusion_writer=rec("quality"), by_source=quality_by_source),
        JsonlWriter(os.path.join(work, "clean"), output_filename="${rank}.jsonl.gz", compression="gzip"),
    ]
    stages.append(("clean", _executor(config, clean, n_files, os.path.join(work, "logs", "clean"), "clean")))
    current = os.path.join(work, "clean")

    def reader(folder):
        return JsonlReader(folder, glob_pattern="*.jsonl.gz", compression="gzip")

    final_filters: list = []
    if config.dedup.exact:
        exact_cfg = ExactDedupConfig(content_getter=doc_text,
                                     document_priority=SourcePriority([s.source for s in config.sources]))
        sigs, dups = os.path.join(work, "exact", "sigs"), os.path.join(work, "exact", "dups")
        stages.append(("exact-signatures", _executor(
            config, [reader(current), ExactDedupSignature(sigs, config=exact_cfg)], n_files,
            os.path.join(work, "logs", "exact-signatures"), "exact-sig")))
        stages.append(("exact-find", _executor(
            config, [ExactFindDedups(sigs, dups, config=exact_cfg)], 1,
            os.path.join(work, "logs", "exact-find"), "exact-find")))
        exact_filter = ExactDedupFilter(dups, config=exact_cfg,
                                        exclusion_writer=rec("exact_dedup", "exact_duplicate"))
        if config.dedup.near:
            # Exact duplicates are removed before MinHash so the two are counted apart.
            out = os.path.join(work, "exact", "out")
            stages.append(("exact-filter", _executor(
                config, [reader(current), exact_filter,
                         JsonlWriter(out, output_filename="${rank}.jsonl.gz", compression="gzip")],
                n_files, os.path.join(work, "logs", "exact-filter"), "exact-filter")))
            current = out
        else:
            final_filters.append(exact_filter)
    if config.dedup.near:
        d = config.dedup
        mh_cfg = MinhashConfig(n_grams=d.n_grams, num_buckets=d.num_buckets,
                               hashes_per_bucket=d.hashes_per_bucket, seed=d.seed)
        mh = os.path.join(work, "minhash")
        stages.append(("minhash-signatures", _executor(
            config, [reader(current), MinhashDedupSignature(os.path.join(mh, "sigs"), config=mh_cfg,
                                                            language=PersianWordTokenizer())],
            n_files, os.path.join(work, "logs", "minhash-signatures"), "mh-sig")))
        stages.append(("minhash-buckets", _executor(
            config, [MinhashDedupBuckets(os.path.join(mh, "sigs"), os.path.join(mh, "buckets"), config=mh_cfg)],
            d.num_buckets, os.path.join(work, "logs", "minhash-buckets"), "mh-buckets")))
        stages.append(("minhash-cluster", _executor(
            config, [MinhashDedupCluster(os.path.join(mh, "buckets"), os.path.join(mh, "remove"), config=mh_cfg,
                                         save_cluster_size=True)],
            1, os.path.join(work, "logs", "minhash-cluster"), "mh-cluster")))
        final_filters.append(MinhashDedupFilter(os.path.join(mh, "remove"), load_cluster_sizes=True,
                                                exclusion_writer=rec("near_dedup", "near_duplicate")))
    final = [
        reader(current), *final_filters,
        blocks.KeptRecorder(os.path.join(work, "kept"), n_ex),
        ParquetWriter(os.path.join(work, "final"), output_filename="${rank}.parquet", compression="zstd",
                      adapter=blocks.parquet_row, schema=blocks.parquet_schema(),
                      max_file_size=config.shard_size_mb * 2**20),
    ]
    stages.append(("write", _executor(config, final, n_files, os.path.join(work, "logs", "write"), "write")))
    return stages


# ----------------------------------------------------------------------------------------------
# Publish


def publish(work: str, out: str) -> list[str]:
    """Move finished Parquet shards into DIR/data (os.replace: atomic, and idempotent on rerun)."""
    data = os.path.join(out, "data")
    os.makedirs(data, exist_ok=True)
    for path in sorted(glob.glob(os.path.join(work, "final", "**", "*.parquet"), recursive=True)):
        os.replace(path, os.path.join(data, os.path.basename(path)))
    return sorted(glob.glob(os.path.join(data, "*.parquet")))


def _stage_done(executor) -> bool:
    return all(executor.is_rank_completed(r) for r in range(executor.world_size))


def build(config: CorpusConfig, fresh: bool = False) -> dict[str, Any]:
    """Run (or resume) the build; returns the stats written to DIR/stats.json."""
    if not config.output:
        raise UserError("no output directory (give --output DIR)")
    if not config.sources:
        raise UserError("no sources (give --source and --input, or a recipe with sources)")
    out = os.path.abspath(config.output)
    work = os.path.join(out, ".work")
    units = [u for s in config.sources for u in expand_inputs(s)]
    check_output(out, units, config.free_space_factor)
    fp = fingerprint(config, units)
    marker = os.path.join(work, "build.json")
    if fresh and os.path.exists(out):
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(os.path.join(out, "data"), ignore_errors=True)
    if os.path.exists(marker):
        previous = json.load(open(marker, encoding="utf-8"))
        if previous.get("fingerprint") != fp:
            raise UserError(
                f"{out} holds a build made with other inputs or settings (fingerprint {previous.get('fingerprint')} "
                f"vs {fp}); use --fresh to start over or choose another --output")
    elif os.path.isdir(os.path.join(out, "data")) and os.listdir(os.path.join(out, "data")):
        raise UserError(f"{out}/data already holds files from another build; use --fresh or another --output")
    try:
        return _run(config, units, out, work, marker, fp)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(f"no space left on the device holding {out} ({e.strerror}); free some space and run "
                            "the same command again: finished tasks are kept and the build resumes") from None
        raise


def _run(config: CorpusConfig, units: list[dict[str, Any]], out: str, work: str, marker: str,
         fp: str) -> dict[str, Any]:
    from persianllama.corpus.card import collect_stats, write_card

    atomic.write_json(marker, {"fingerprint": fp, "config": to_dict(config), "units": units,
                               "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    from persianllama.corpus import blocks  # noqa: F401 - quiets datatrove's per-task stderr logging

    t0 = time.time()
    stages = build_stages(config, units, work)
    for i, (name, executor) in enumerate(stages, 1):
        if config.executor.kind == "local" and _stage_done(executor):
            log.info("[%d/%d] %s: already complete, skipped", i, len(stages), name)
            continue
        log.info("[%d/%d] %s: %d task(s)", i, len(stages), name, executor.world_size)
        t = time.time()
        executor.run()
        if config.executor.kind == "local" and not _stage_done(executor):
            raise UserError(f"stage {name} did not complete; see the task logs in {executor.logging_dir.path}")
        log.info("[%d/%d] %s: done in %.1fs", i, len(stages), name, time.time() - t)
        if name == "clean" and not glob.glob(os.path.join(work, "clean", "*.jsonl.gz")):
            break  # nothing survived the filters (or nothing was readable): no dedup or write to do
    if config.executor.kind == "slurm":
        log.info("Slurm jobs submitted; run the same command again after they finish to publish the output")
        return {}

    shards = publish(work, out)
    stats = collect_stats(work, units, shards, seconds=time.time() - t0)
    stats["settings_by_source"] = config.settings_by_source()
    if stats["read"]["documents"] == 0:
        reasons = "; ".join(f"{d['file']} ({d['where']}): {d['reason']} {d['message']}"
                            for d in stats["read"]["broken_details"][:5]) or "no records in any input"
        raise UserError(f"could not read any document: {reasons}")
    atomic.write_json(os.path.join(out, "stats.json"), stats)
    write_card(out, work, stats, config)
    return stats
