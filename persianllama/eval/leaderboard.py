"""One number per task and per task family, the way the Persian leaderboards summarize a model.

Each task has a main metric and a family (our YAMLs say so in their ``metadata``: ``main_metric``,
``family``; lm-eval's built-in Persian tasks in `builtin.BUILTIN_TASKS`). A family's score is the
mean of the main metric of its tasks that ran (a group counts once, with its own aggregate, not its
subtasks), shown in percent (chrF is already 0-100). The overall average is the mean of the family
scores, leaving out language modelling (bits per byte, lower is better) and the generation sanity
check (Persian-script share), which are shown but not averaged.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

from persianllama.eval.builtin import BUILTIN_TASKS

# Fallback when a task names no main metric, in order of preference.
MAIN_METRICS = ("bits_per_byte", "acc", "f1", "exact_match", "chrf", "persian_share")
LOWER_IS_BETTER = {"bits_per_byte", "word_perplexity", "byte_perplexity", "no_answer"}
NOT_AVERAGED = {"language modelling", "generation"}
FAMILY_ORDER = [
    "multiple-choice QA",
    "reading comprehension",
    "NLI",
    "paraphrase",
    "sentiment",
    "translation",
    "commonsense",
    "idioms",
    "language modelling",
    "generation",
]


def metric_value(metrics: dict[str, Any], name: str) -> tuple[Any, Any]:
    """(value, stderr) of metric `name` under the "none" filter, else under the first filter that has it."""
    if f"{name},none" in metrics:
        return metrics[f"{name},none"], metrics.get(f"{name}_stderr,none")
    for key, value in metrics.items():
        metric, _, flt = key.partition(",")
        if metric == name and flt:
            return value, metrics.get(f"{name}_stderr,{flt}")
    return None, None


def _metadata(results: dict[str, Any], task: str) -> dict[str, Any]:
    meta = ((results.get("configs") or {}).get(task) or {}).get("metadata") or {}
    if not (isinstance(meta, dict) and meta.get("main_metric")):
        meta = _our_yaml_metadata().get(task, {})  # results.json written before tasks said so themselves
    return meta if isinstance(meta, dict) else {}


@functools.cache
def _our_yaml_metadata() -> dict[str, dict[str, Any]]:
    """{task: metadata} of the task YAMLs in persianllama/eval/tasks (main_metric, family, class_names)."""
    try:
        from lm_eval.tasks._yaml_loader import load_yaml
    except ImportError:  # pragma: no cover
        return {}
    out = {}
    for path in sorted((Path(__file__).resolve().parent / "tasks").glob("*.yaml")):
        try:
            cfg = load_yaml(path, resolve_func=False, recursive=True)
        except Exception:  # noqa: BLE001 - a template without `task` or an unreadable file: no metadata
            continue
        if isinstance(cfg.get("task"), str) and isinstance(cfg.get("metadata"), dict):
            out[cfg["task"]] = cfg["metadata"]
    return out


def _leaves(results: dict[str, Any], task: str) -> list[str]:
    children = (results.get("group_subtasks") or {}).get(task)
    if not children:
        return [task]
    return [leaf for child in children for leaf in _leaves(results, child)]


def task_info(results: dict[str, Any], task: str) -> tuple[str | None, str | None]:
    """(main metric, family) of a task or group, or (None, None) when nothing says."""
    if task in BUILTIN_TASKS:
        b = BUILTIN_TASKS[task]
        return b.main_metric, b.family
    if task == "persian_bpb":  # computed outside lm-eval, so it has no config in results.json
        return "bits_per_byte", "language modelling"
    for leaf in _leaves(results, task):
        meta = _metadata(results, leaf)
        if meta.get("main_metric"):
            return meta["main_metric"], meta.get("family")
        for name, b in BUILTIN_TASKS.items():  # a subtask of a built-in group
            if leaf.startswith(name):
                return b.main_metric, b.family
    metrics = (results.get("results") or {}).get(task) or {}
    for name in MAIN_METRICS:
        if metric_value(metrics, name)[0] is not None:
            return name, None
    return None, None


def main_metric(results: dict[str, Any], task: str) -> str | None:
    metric, _ = task_info(results, task)
    metrics = (results.get("results") or {}).get(task) or {}
    if metric and metric_value(metrics, metric)[0] is not None:
        return metric
    for name in MAIN_METRICS:
        if metric_value(metrics, name)[0] is not None:
            return name
    return None


def top_level_tasks(results: dict[str, Any]) -> list[str]:
    """Tasks that are not a subtask of another task in this run, in the run's order."""
    names = list(results.get("results") or {})
    subtasks = results.get("group_subtasks") or {}
    children = {c for cs in subtasks.values() for c in cs}
    out = []
    for name in names:
        if name in children:
            continue
        if name in subtasks and main_metric(results, name) is None:
            # a group without its own score (persian_nlu, persian_chat): its members count instead
            out += [c for c in _expand_scoreless(results, name) if c not in out]
        elif name not in out:
            out.append(name)
    return out


def _expand_scoreless(results: dict[str, Any], group: str) -> list[str]:
    out = []
    for child in (results.get("group_subtasks") or {}).get(group, []):
        if child in (results.get("group_subtasks") or {}) and main_metric(results, child) is None:
            out += _expand_scoreless(results, child)
        else:
            out.append(child)
    return out


def _percent(metric: str, value: float) -> float:
    return value if metric in ("chrf", "bleu") else 100.0 * value


def _task_scores(results: dict[str, Any], kind: str | None) -> list[tuple[str, str, float | None]]:
    """(task, family, score or None) per top-level task of a run: its main metric, or with `kind`
    ("majority"/"chance") that baseline's score on the same metric (None when it has none)."""
    out = []
    baselines = (results.get("persianllama") or {}).get("baselines") or {}
    for task in top_level_tasks(results):
        _, family = task_info(results, task)
        metric = main_metric(results, task)
        if metric is None:
            continue
        if kind is None:
            value, _ = metric_value((results.get("results") or {}).get(task) or {}, metric)
        else:
            value = ((baselines.get(task) or {}).get(kind) or {}).get(metric)
        ok = isinstance(value, (int, float)) and math.isfinite(value)
        score = (value if metric == "bits_per_byte" else _percent(metric, value)) if ok else None
        out.append((task, family or "other", score))
    return out


def _families(scores: list[tuple[str, str, float | None]], complete: bool) -> dict[str, dict[str, Any]]:
    fams: dict[str, list[tuple[str, float | None]]] = {}
    for task, family, score in scores:
        fams.setdefault(family, []).append((task, score))
    out = {}
    for family in sorted(fams, key=lambda f: (FAMILY_ORDER.index(f) if f in FAMILY_ORDER else 99, f)):
        values = [v for _, v in fams[family] if v is not None]
        if not values or (complete and len(values) != len(fams[family])):
            continue
        out[family] = {
            "score": sum(values) / len(values),
            "tasks": [t for t, _ in fams[family]],
            "lower_is_better": family == "language modelling",
        }
    return out


def family_scores(results: dict[str, Any], baseline: str | None = None) -> dict[str, dict[str, Any]]:
    """{family: {"score", "tasks", "lower_is_better"}} for one run; with `baseline` ("majority" or
    "chance") the same from that baseline's scores, for families whose every task has one."""
    return _families(_task_scores(results, baseline), complete=baseline is not None)


def average(families: dict[str, dict[str, Any]], over: list[str] | None = None) -> float | None:
    """Mean family score (families in NOT_AVERAGED left out); with `over`, only if the row has every
    one of those families (so rows are averaged over the same families)."""
    names = [n for n in (over if over is not None else families) if n not in NOT_AVERAGED]
    if not names or any(n not in families for n in names):
        return None
    return sum(families[n]["score"] for n in names) / len(names)


def leaderboard_rows(runs: list[tuple[str, dict[str, Any]]]) -> tuple[list[str], list[dict[str, Any]]]:
    """(family columns, rows) for runs [(label, results)]: one row per run, then the majority-class and
    chance rows (each task's baseline from the first run that has that task). The average covers the
    same families in every row, or is left out."""
    rows = []
    columns: list[str] = []
    for label, results in runs:
        fams = family_scores(results)
        columns += [f for f in fams if f not in columns]
        rows.append({"label": label, "families": fams})
    columns.sort(key=lambda f: (FAMILY_ORDER.index(f) if f in FAMILY_ORDER else 99, f))
    for kind, name in (("majority", "majority class"), ("chance", "chance (uniform guess)")):
        seen: set[str] = set()
        scores = []
        for _, results in runs:
            for task, family, score in _task_scores(results, kind):
                if task not in seen:
                    seen.add(task)
                    scores.append((task, family, score))
        fams = _families(scores, complete=True)
        if fams:
            rows.append({"label": name, "families": fams, "baseline": True})
    for row in rows:
        row["average"] = average(row["families"], columns)
    return columns, rows
