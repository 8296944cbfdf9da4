"""stats.json and the data card (DIR/README.md + DIR/lengths.png) of a corpus build.

Everything is read back from the per-task JSON files the pipeline blocks wrote in DIR/.work, so
the numbers are the same whether the build ran in one go or was interrupted and resumed.
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections import Counter
from typing import Any

from persianllama import atomic
from persianllama.config import to_dict
from persianllama.corpus.config import CorpusConfig

FILTER_ORDER = ["oscar_metadata", "boilerplate", "language", "quality", "exact_dedup", "near_dedup"]


def _read_all(pattern: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted(glob.glob(pattern)):
        with open(path, encoding="utf-8") as fh:
            out.append(json.load(fh))
    return out


def collect_stats(work: str, units: list[dict[str, Any]], shards: list[str], seconds: float) -> dict[str, Any]:
    reports = _read_all(os.path.join(work, "reports", "*.json"))
    read_docs = sum(r["read"] for r in reports)
    skipped: Counter = Counter()
    broken: Counter = Counter()
    details: list[dict[str, Any]] = []
    for r in reports:
        skipped.update(r["skipped"])
        broken.update(r["broken"])
        details.extend(r["broken_details"])
    dropped: dict[str, dict[str, int]] = {}
    dropped_total = 0
    for name in FILTER_ORDER:
        counts: Counter = Counter()
        for rec in _read_all(os.path.join(work, "rejects", name, "*.json")):
            counts.update(rec["counts"])
        if counts:
            dropped[name] = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
            dropped_total += sum(counts.values())
    kept = _read_all(os.path.join(work, "kept", "*.json"))
    per_source: Counter = Counter()
    for k in kept:
        per_source.update(k["per_source"])
    return {
        "inputs": [u["path"] for u in units],
        "read": {
            "documents": read_docs,
            "skipped_by_reader": dict(sorted(skipped.items())),
            "broken_records": sum(broken.values()),
            "broken_by_reason": dict(sorted(broken.items())),
            "broken_details": details,
        },
        "dropped": dropped,
        "dropped_total": dropped_total,
        "kept": {
            "documents": sum(k["documents"] for k in kept),
            "characters": sum(k["chars"] for k in kept),
            "words": sum(k["words"] for k in kept),
            "per_source": dict(sorted(per_source.items())),
        },
        "shards": [os.path.relpath(s, os.path.dirname(os.path.dirname(s))) for s in shards],
        "seconds": round(seconds, 1),
    }


def _hist(records: list[dict[str, Any]]) -> Counter:
    h: Counter = Counter()
    for r in records:
        h.update({int(k): v for k, v in r["length_hist"].items()})
    return h


def plot_lengths(work: str, path: str) -> None:
    """Histogram of document lengths (characters, log2 buckets): kept vs dropped by each filter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept = _hist(_read_all(os.path.join(work, "kept", "*.json")))
    series = [("kept", kept)]
    for name in FILTER_ORDER:
        h = _hist(_read_all(os.path.join(work, "rejects", name, "*.json")))
        if h:
            series.append((f"dropped: {name}", h))
    buckets = sorted({b for _, h in series for b in h}) or [0]
    xs = list(range(min(buckets), max(buckets) + 1))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / len(series)
    for i, (label, h) in enumerate(series):
        ax.bar([x + i * width for x in xs], [h.get(x, 0) for x in xs], width=width, label=label)
    ax.set_xticks([x + 0.4 - width / 2 for x in xs])
    ax.set_xticklabels([f"{2 ** x}" for x in xs], rotation=45, fontsize=8)
    ax.set_xlabel("document length (characters, lower bound of log2 bucket)")
    ax.set_ylabel("documents")
    ax.set_title("Document lengths: kept vs dropped")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _quote(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return (text[:limit] + " …") if len(text) > limit else text


def write_card(out: str, work: str, stats: dict[str, Any], config: CorpusConfig) -> None:
    plot_lengths(work, os.path.join(out, "lengths.png"))
    r, k = stats["read"], stats["kept"]
    lines = [
        "---",
        "language: [fa]",
        "task_categories: [text-generation]",
        "configs:",
        "- config_name: default",
        "  data_files: data/*.parquet",
        "---",
        "",
        "# Persian corpus (built with `persianllama corpus build`)",
        "",
        f"Built {time.strftime('%Y-%m-%d %H:%M')} in {stats['seconds']} s from "
        f"{len(stats['inputs'])} input(s): " + ", ".join(f"`{os.path.basename(p.rstrip('/'))}`" for p in stats["inputs"]),
        "",
        "Load it with `datasets.load_dataset(\"parquet\", data_files=\"DIR/data/*.parquet\")` "
        "(columns: text, id, source, title, url, n_words, dup_cluster_size).",
        "",
        "## Numbers",
        "",
        "| | documents |",
        "|---|---:|",
        f"| read | {r['documents']:,} |",
    ]
    for reason, n in r["skipped_by_reader"].items():
        lines.append(f"| skipped by the reader: {reason} | {n:,} |")
    lines.append(f"| broken records (not readable) | {r['broken_records']:,} |")
    for name, counts in stats["dropped"].items():
        lines.append(f"| dropped by {name} | {sum(counts.values()):,} |")
    lines += [
        f"| **kept** | **{k['documents']:,}** |",
        "",
        f"Kept: {k['documents']:,} documents, {k['words']:,} words, {k['characters']:,} characters"
        + (" (" + ", ".join(f"{s}: {n:,}" for s, n in k["per_source"].items()) + ")" if k["per_source"] else "")
        + ".",
        "",
        "![Document lengths, kept vs dropped](lengths.png)",
        "",
        "## Filters by source",
        "",
        "Each source is filtered by its profile: 'web' (boilerplate lines removed, the `quality` section) or "
        "'curated' (no web-only rules, the `quality_curated` section). What this build applied (every setting: "
        "`stats.json` under `settings_by_source`, and the recipe below):",
        "",
        "| source | kind | profile | boilerplate lines removed | quality settings | min words | FineWeb line rules |",
        "|---|---|---|---|---|---:|---|",
    ]
    for name, s in stats.get("settings_by_source", {}).items():
        q = s["quality"]
        lines.append(
            f"| {name} | {s['kind']} | {s['profile']} | {'yes' if s['boilerplate_removal'] else 'no'} | "
            + (f"`{s['quality_section']}` | {q['min_words']} | {'on' if q['fineweb_line_rules'] else 'off'} |"
               if q is not None else "off | | |"))
    lines += [
        "",
        "## Dropped, by filter and reason",
        "",
        "| filter | reason | documents |",
        "|---|---|---:|",
    ]
    for name, counts in stats["dropped"].items():
        for reason, n in counts.items():
            lines.append(f"| {name} | {reason} | {n:,} |")
    if r["broken_details"]:
        lines += ["", "## Broken records", "", "| file | where | reason | message |", "|---|---|---|---|"]
        for d in r["broken_details"][:50]:
            lines.append(f"| `{os.path.basename(d['file'])}` | {d['where']} | {d['reason']} | "
                         f"{d['message'][:120].replace('|', '/')} |")
    lines += ["", "## Examples of kept documents", ""]
    for rec in _read_all(os.path.join(work, "kept", "*.json")):
        for ex in rec["examples"][: config.examples_per_reason]:
            lines.append(f"- `{ex['id']}`: {_quote(ex['text'])}")
    lines += ["", "## Examples of dropped documents", ""]
    for name in FILTER_ORDER:
        samples: dict[str, list] = {}
        for rec in _read_all(os.path.join(work, "rejects", name, "*.json")):
            for reason, exs in rec["examples"].items():
                samples.setdefault(reason, []).extend(exs)
        for reason, exs in sorted(samples.items()):
            lines.append(f"**{name} / {reason}**")
            lines.append("")
            for ex in exs[: config.examples_per_reason]:
                lines.append(f"- `{ex['id']}`: {_quote(ex['text'])}")
            lines.append("")
    lines += ["## Recipe", "", "```yaml"]
    import yaml

    lines.append(yaml.safe_dump(to_dict(config), allow_unicode=True, sort_keys=False).rstrip())
    lines += ["```", ""]
    atomic.write_text(os.path.join(out, "README.md"), "\n".join(lines))
