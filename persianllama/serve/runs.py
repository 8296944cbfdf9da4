"""Run folders under the ``--runs`` roots: what each one is, what the page shows of it, and the one way a file
is read from it.

A folder is recognised by what it holds (first match wins):

=========  =============================================================
train      ``metrics.jsonl`` (any track: Zero, LoRA, SFT, distillation)
corpus     ``stats.json`` and ``data/`` (a corpus build; its data card is ``README.md``)
eval       ``results.json`` with ``"results"`` (``persianllama evaluate``)
compare    ``results.json`` with ``"runs"`` and ``"table"`` (``evaluate --compare``)
fertility  ``report.json`` with ``"tokenizers"`` (``tokenizer report``)
adapter    ``adapter_config.json`` (a PEFT adapter)
model      ``config.json`` and weights (an HF model folder)
tokenizer  ``tokenizer.json`` or ``tokenizer.model``
report     ``report.md`` or ``README.md`` only (the quickstart's report)
=========  =============================================================

Run ids are ``ROOT:SUB:FOLDER`` (the root's folder name, then the path below it), so that one URL segment
names a run. Files are served only through :func:`safe_file`: a relative path below the run folder, without
``..`` or empty parts, that still lies inside the run folder once symlinks are resolved.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

SKIP_DIRS = {"checkpoints", "tensorboard", "cache", "logs", "samples", "__pycache__", "wandb", "node_modules"}
MAX_DEPTH = 5
MAX_DIRS = 5000
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
CARDS = {
    "corpus": ("README.md",),
    "train": ("hf/README.md", "adapter/README.md", "README.md"),
    "eval": ("report.md",),
    "compare": ("report.md",),
    "fertility": ("report.md",),
    "tokenizer": ("tokenizer_card.md", "README.md"),
    "model": ("README.md",),
    "adapter": ("README.md",),
    "report": ("report.md", "README.md"),
}
TEXT_PREVIEW_CHARS = 1500
MAX_PAGE = 100
MAX_CHART_POINTS = 2000
LIVE_SECONDS = 120


class Refused(Exception):
    """A request the library will not answer: `status` is the HTTP status, the message says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Run:
    id: str
    kind: str
    path: Path
    """The folder, resolved."""
    root: Path
    rel: str
    """Posix path below the root ("" for the root itself)."""
    parent: str | None = None
    children: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.rel or self.path.name

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "title": self.title, "path": str(self.path), "parent": self.parent,
                "children": list(self.children), "track": track(self) if self.kind == "train" else None}


def _read_json(path: Path, limit: int = 50 << 20) -> Any:
    try:
        if path.stat().st_size > limit:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def classify(d: Path) -> str | None:
    """The kind of run folder `d` is (see the module's table), or None."""
    f = d.joinpath
    if f("metrics.jsonl").is_file():
        return "train"
    if f("stats.json").is_file() and f("data").is_dir():
        return "corpus"
    if f("results.json").is_file():
        data = _read_json(f("results.json"))
        if isinstance(data, dict) and isinstance(data.get("results"), dict):
            return "eval"
        if isinstance(data, dict) and isinstance(data.get("table"), list):
            return "compare"
    if f("report.json").is_file():
        data = _read_json(f("report.json"))
        if isinstance(data, dict) and isinstance(data.get("tokenizers"), list):
            return "fertility"
    if f("adapter_config.json").is_file():
        return "adapter"
    if f("config.json").is_file() and any(f(w).is_file() for w in WEIGHTS):
        return "model"
    if f("tokenizer.json").is_file() or f("tokenizer.model").is_file():
        return "tokenizer"
    if f("report.md").is_file() or f("README.md").is_file():
        return "report"
    return None


def track(run: Run) -> str:
    """Which training track wrote a train run, from what it holds."""
    p = run.path
    if (p / "adapter").is_dir() or (p / "memory_plan.json").is_file():
        return "LoRA"
    if (p / "distill_summary.json").is_file() or _has_teacher(p / "config.yaml"):
        return "Distillation"  # the Zero track's run with a teacher (persianllama distill)
    if (p / "ds_config.json").is_file():
        return "Zero"
    return p.name


def _has_teacher(config: Path) -> bool:
    if not config.is_file() or config.stat().st_size > 1 << 20:
        return False
    import yaml

    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and isinstance(data.get("kd"), dict)


def root_names(roots: list[Path]) -> list[str]:
    names: list[str] = []
    for r in roots:
        name = re.sub(r"[^\w.-]", "_", r.name) or "runs"
        base, n = name, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


def scan(roots: list[Path]) -> dict[str, Run]:
    """Every run folder under the roots, by id, parents before children. Symlinked folders are not followed;
    hidden folders, checkpoints, caches, logs and a corpus's data/ are not searched."""
    runs: dict[str, Run] = {}
    budget = [MAX_DIRS]
    for root, name in zip(roots, root_names(roots)):
        root = root.resolve()
        _walk(root, root, name, [], None, runs, budget)
    return runs


def _walk(d: Path, root: Path, root_name: str, parts: list[str], parent: str | None, runs: dict[str, Run],
          budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        return
    kind = classify(d)
    here = parent
    if kind:
        rid = ":".join([root_name, *parts])
        runs[rid] = Run(rid, kind, d, root, "/".join(parts), parent)
        if parent:
            runs[parent].children.append(rid)
        here = rid
    if len(parts) >= MAX_DEPTH or kind in ("model", "adapter", "tokenizer"):
        return
    try:
        entries = sorted(os.scandir(d), key=lambda e: e.name)
    except OSError:
        return
    for e in entries:
        if (e.name.startswith(".") or e.name in SKIP_DIRS or e.name.startswith("step_")
                or (kind == "corpus" and e.name == "data")):
            continue
        try:
            if not e.is_dir(follow_symlinks=False):
                continue
        except OSError:
            continue
        _walk(Path(e.path), root, root_name, [*parts, e.name], here, runs, budget)


# --- files -------------------------------------------------------------------------------------------------


def safe_file(base: Path, rel: str) -> Path:
    """The file `rel` below `base`, or Refused: an absolute path, a ``..`` or empty part, a backslash, a NUL,
    or a path whose real location (symlinks resolved) is outside `base` is refused (403); a missing file is 404."""
    if not rel or "\x00" in rel or "\\" in rel:
        raise Refused(403, "refused: not a relative path below the run folder")
    if rel.startswith("/") or PurePosixPath(rel).is_absolute() or re.match(r"^[A-Za-z]:", rel):
        raise Refused(403, "refused: absolute paths are not served")
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise Refused(403, "refused: '..', '.' and empty path parts are not served")
    real_base = base.resolve()
    try:
        real = (real_base / rel).resolve(strict=True)
    except (OSError, RuntimeError):
        raise Refused(404, f"no file {rel} in this run") from None
    if not real.is_relative_to(real_base):
        raise Refused(403, "refused: the path leads outside the run folder")
    if not real.is_file():
        raise Refused(404, f"no file {rel} in this run")
    return real


IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp"}


def media_type(path: Path) -> str:
    """Images as themselves; everything else as plain text (never HTML or SVG from a run folder: a run folder
    is data, and must not be able to run script in the page's origin)."""
    return IMAGE_TYPES.get(path.suffix.lower(), "text/plain; charset=utf-8")


# --- cards (Markdown) ----------------------------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.S)


def _markdown():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render_markdown(text: str, run_id: str, card_dir: str) -> str:
    """A card as HTML: raw HTML in it escaped, its YAML front matter dropped, relative links and images pointed
    at this run's file API, images from elsewhere (the page is offline) shown as their alt text, and table
    alignment as classes (the page's CSP allows no inline styles)."""
    md = _markdown()
    tokens = md.parse(_FRONT_MATTER.sub("", text))
    prefix = f"/api/runs/{quote(run_id, safe=':')}/files/"

    def local(target: str) -> str | None:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith(("/", "#")):
            return None
        path = target.split("#", 1)[0].split("?", 1)[0]
        joined = posixpath.normpath(posixpath.join(card_dir, path)) if path else ""
        if not joined or joined.startswith(".."):
            return ""
        return prefix + quote(joined)

    def fix(tok_list):
        for tok in tok_list:
            if tok.type in ("td_open", "th_open") and tok.attrs.get("style"):
                align = tok.attrs.pop("style").split(":")[-1].strip()
                tok.attrs["class"] = f"al-{align}"
            elif tok.type == "link_open":
                href = str(tok.attrs.get("href", ""))
                url = local(href)
                if url:
                    tok.attrs["href"] = url
                elif url == "":
                    tok.attrs.pop("href", None)
                elif not href.startswith("#"):
                    tok.attrs.update({"target": "_blank", "rel": "noopener noreferrer"})
            elif tok.type == "image":
                url = local(str(tok.attrs.get("src", "")))
                if url:
                    tok.attrs["src"] = url
                    tok.attrs["loading"] = "lazy"
                else:  # not in the run folder: show the alt text instead of fetching
                    tok.type, tok.tag, tok.content, tok.attrs = "text", "", tok.content or "[image]", {}
                    tok.children = None
            if tok.children:
                fix(tok.children)

    fix(tokens)
    return md.renderer.render(tokens, md.options, {})


def card(run: Run) -> dict[str, str] | None:
    for name in CARDS.get(run.kind, ()):
        path = run.path / name
        if path.is_file() and path.stat().st_size < (4 << 20):
            text = path.read_text(encoding="utf-8", errors="replace")
            return {"file": name, "html": render_markdown(text, run.id, posixpath.dirname(name))}
    return None


# --- what the page shows of a run ---------------------------------------------------------------------------


def detail(run: Run) -> dict[str, Any]:
    """Everything the run view draws: the card, images, and the kind's own table or chart data."""
    out = run.public()
    out["card"] = card(run)
    out["images"] = sorted(p.name for p in run.path.iterdir() if p.suffix.lower() in IMAGE_TYPES and p.is_file())
    out["metrics"] = (run.path / "metrics.jsonl").is_file()
    if run.kind == "train":
        from persianllama.run.metrics import summarize

        out["summary"] = summarize(run.path / "metrics.jsonl")
    elif run.kind == "corpus":
        stats = _read_json(run.path / "stats.json") or {}
        out["corpus"] = {"read": stats.get("read", {}).get("documents"), "kept": stats.get("kept"),
                         "dropped": stats.get("dropped", {}), "dropped_total": stats.get("dropped_total"),
                         "rows": sum(n for _, n in _shards(run)), "rejects": len(_rejects(run))}
    elif run.kind == "eval":
        from persianllama.eval.report import summary_rows

        results = _read_json(run.path / "results.json") or {}
        out["eval"] = {"label": (results.get("persianllama") or {}).get("label") or run.path.name,
                       "rows": _finite(summary_rows(results))}
    elif run.kind == "compare":
        data = _read_json(run.path / "results.json") or {}
        out["compare"] = {"labels": [r.get("label") for r in data.get("runs", [])], "table": _finite(data["table"])}
    elif run.kind == "fertility":
        data = _read_json(run.path / "report.json") or {}
        keep = ("name", "kind", "vocab_size", "tokens_per_word", "chars_per_token", "byte_fallback_rate")
        out["fertility"] = {"texts": data.get("texts"), "words": data.get("words"),
                            "tokenizers": [{k: t.get(k) for k in keep} for t in data.get("tokenizers", [])]}
    return out


def _finite(obj: Any) -> Any:
    """JSON has no NaN/inf: such numbers (and lm-eval's "N/A" stderr) become null."""
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if obj == "N/A":
        return None
    return obj


def metrics(run: Run) -> dict[str, Any]:
    """A train run's records for the loss chart: training points (at most MAX_CHART_POINTS, evenly thinned,
    the last one kept), every validation and event record, and whether the file is still being written."""
    from persianllama.run.metrics import read_records

    path = run.path / "metrics.jsonl"
    if not path.is_file():
        raise Refused(404, f"run {run.id} has no metrics.jsonl")
    st = path.stat()
    train, evals, events = [], [], []
    for r in read_records(path):
        if r["kind"] == "train":
            train.append({k: r.get(k) for k in ("step", "loss", "lr", "grad_norm", "tokens_per_s")})
        elif r["kind"] == "eval":
            evals.append({k: r.get(k) for k in ("step", "loss", "bits_per_byte")})
        else:
            events.append({"step": r["step"], "event": r.get("event")})
    if len(train) > MAX_CHART_POINTS:
        stride = -(-len(train) // MAX_CHART_POINTS)
        train = train[::stride] + ([train[-1]] if (len(train) - 1) % stride else [])
    return _finite({"train": train, "eval": evals, "events": events, "steps": train[-1]["step"] if train else 0,
                    "mtime": st.st_mtime, "live": time.time() - st.st_mtime < LIVE_SECONDS})


def metrics_etag(run: Run) -> str:
    st = (run.path / "metrics.jsonl").stat()
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


# --- corpus rows ---------------------------------------------------------------------------------------------

_SHARD_CACHE: dict[tuple[str, int], int] = {}


def _shards(run: Run) -> list[tuple[Path, int]]:
    import pyarrow.parquet as pq

    out = []
    for shard in sorted((run.path / "data").glob("*.parquet")):
        key = (str(shard), shard.stat().st_mtime_ns)
        if key not in _SHARD_CACHE:
            _SHARD_CACHE[key] = pq.ParquetFile(shard).metadata.num_rows
        out.append((shard, _SHARD_CACHE[key]))
    return out


def _rejects(run: Run) -> list[dict[str, Any]]:
    """Dropped documents the build kept as examples (``.work/rejects/FILTER/*.json``), with filter and reason."""
    out = []
    for f in sorted((run.path / ".work" / "rejects").glob("*/*.json")):
        data = _read_json(f)
        if not isinstance(data, dict):
            continue
        for reason, docs in sorted((data.get("examples") or {}).items()):
            for doc in docs if isinstance(docs, list) else []:
                if isinstance(doc, dict):
                    out.append({"filter": f.parent.name, "reason": reason, "id": doc.get("id"),
                                "source": doc.get("source"), "text": str(doc.get("text", ""))})
    return out


def _preview(text: str) -> dict[str, Any]:
    return {"text": text[:TEXT_PREVIEW_CHARS], "text_chars": len(text)}


def rows(run: Run, offset: int = 0, limit: int = 20, view: str = "kept") -> dict[str, Any]:
    """One page of a corpus: kept rows (from its Parquet shards, reading only the row groups needed) or dropped
    examples with their filter and reason; with the drop reasons of the data card (stats.json)."""
    import pyarrow.parquet as pq

    if run.kind != "corpus":
        raise Refused(404, f"run {run.id} is not a corpus")
    if view not in ("kept", "dropped"):
        raise Refused(400, "view must be 'kept' or 'dropped'")
    offset, limit = max(0, offset), max(1, min(MAX_PAGE, limit))
    stats = _read_json(run.path / "stats.json") or {}
    page: list[dict[str, Any]] = []
    if view == "dropped":
        rejects = _rejects(run)
        total = len(rejects)
        for r in rejects[offset:offset + limit]:
            page.append({**{k: v for k, v in r.items() if k != "text"}, **_preview(r["text"])})
    else:
        shards = _shards(run)
        total = sum(n for _, n in shards)
        skip = offset
        for shard, n in shards:
            if len(page) >= limit:
                break
            if skip >= n:
                skip -= n
                continue
            pf = pq.ParquetFile(shard)
            for g in range(pf.metadata.num_row_groups):
                g_rows = pf.metadata.row_group(g).num_rows
                if skip >= g_rows:
                    skip -= g_rows
                    continue
                for rec in pf.read_row_group(g).slice(skip, limit - len(page)).to_pylist():
                    text = str(rec.pop("text", ""))
                    page.append({k: v for k, v in rec.items() if isinstance(v, (str, int, float, type(None)))}
                                | _preview(text))
                skip = 0
                if len(page) >= limit:
                    break
    return {"view": view, "offset": offset, "limit": limit, "total": total, "rows": page,
            "dropped": stats.get("dropped", {}), "dropped_total": stats.get("dropped_total")}
