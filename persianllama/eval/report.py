"""results.json, samples/, report.md and chart.png for one run, and the same side by side for
several runs (``persianllama evaluate --compare DIR...``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from persianllama.errors import UserError
from persianllama.eval import leaderboard as L

# The one number per task that the summary table and the chart show: the task's own main metric
# (its YAML's metadata), else the first of these it has.
MAIN_METRICS = L.MAIN_METRICS
LOWER_IS_BETTER = L.LOWER_IS_BETTER
PERCENT_METRICS = {"chrf", "bleu"}


def _json_default(obj: Any) -> Any:
    try:
        from lm_eval.utils import handle_non_serializable

        return handle_non_serializable(obj)
    except ImportError:  # pragma: no cover
        return str(obj)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def dump_json(obj: Any, path: Path) -> None:
    text = json.dumps(obj, ensure_ascii=False, indent=1, default=_json_default)
    # A second pass through plain data turns NaN/inf (lm-eval's empty-subset metrics) into null.
    path.write_text(json.dumps(_finite(json.loads(text)), ensure_ascii=False, indent=1), encoding="utf-8")


def metric_rows(metrics: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(metric, value, stderr) for lm-eval's "metric,filter" keys of one task."""
    rows = []
    for key, value in metrics.items():
        if "," not in key or "_stderr," in key:
            continue
        name, flt = key.split(",", 1)
        stderr = metrics.get(f"{name}_stderr,{flt}")
        label = name if flt == "none" else f"{name} ({flt})"
        rows.append((label, value, stderr))
    return rows


def main_metric(metrics: dict[str, Any]) -> str | None:
    """The first of MAIN_METRICS that `metrics` holds (for a task whose configuration says nothing)."""
    for name in MAIN_METRICS:
        if L.metric_value(metrics, name)[0] is not None:
            return name
    return None


def _fmt(value: Any, stderr: Any = None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, (int, float)):
        text = f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
        if isinstance(stderr, (int, float)) and math.isfinite(stderr):
            text += f" ± {stderr:.4f}"
        return text
    return str(value)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ⏎ ")


def _task_tree(results: dict[str, Any]) -> list[tuple[str, int]]:
    """(task, depth) with each group right before its subtasks; bits-per-byte first, generation last."""
    names = list(results.get("results", {}))
    subtasks = results.get("group_subtasks", {}) or {}
    children = {c for cs in subtasks.values() for c in cs}
    for group in subtasks:  # groups without metrics of their own (persian_nlu) are still nodes
        if group not in names:
            names.append(group)
    rank = {"persian_bpb": 0, "persian_generation": 2}
    top = sorted((n for n in names if n not in children), key=lambda n: (rank.get(n, 1), names.index(n)))
    out: list[tuple[str, int]] = []

    def visit(name: str, depth: int) -> None:
        out.append((name, depth))
        for child in subtasks.get(name, []):
            visit(child, depth + 1)

    for name in top:
        visit(name, 0)
    return out


def _task_order(results: dict[str, Any]) -> list[str]:
    return [name for name, _ in _task_tree(results) if name in results.get("results", {})]


def _n_examples(results: dict[str, Any], task: str) -> int | None:
    n = (results.get("n-samples", {}).get(task) or {}).get("effective")
    if n is None and task in (results.get("group_subtasks") or {}):
        parts = [_n_examples(results, c) for c in results["group_subtasks"][task]]
        n = sum(p for p in parts if p) or None
    return n


def _baseline(results: dict[str, Any], task: str, kind: str, metric: str) -> Any:
    base = ((results.get("persianllama") or {}).get("baselines") or {}).get(task) or {}
    return (base.get(kind) or {}).get(metric)


def _stderr(results: dict[str, Any], task: str, metric: str, stderr: Any) -> Any:
    """lm-eval has no standard error for macro-F1; ours is a bootstrap over the questions."""
    if metric == "macro_f1" and not isinstance(stderr, (int, float)):
        return (((results.get("persianllama") or {}).get("classification") or {}).get(task) or {}).get(
            "macro_f1_stderr"
        )
    return stderr


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    subtasks = results.get("group_subtasks", {}) or {}
    skipped: list[int] = []  # depths of groups without a score of their own (not shown, so not indented under)
    for task, depth in _task_tree(results):
        metrics = results.get("results", {}).get(task, {})
        name = L.main_metric(results, task)
        while skipped and skipped[-1] >= depth:
            skipped.pop()
        if name is None:
            skipped.append(depth)
            continue
        depth -= len(skipped)
        value, stderr = L.metric_value(metrics, name)
        rows.append(
            {
                "task": task,
                "metric": name,
                "value": value,
                "stderr": _stderr(results, task, name, stderr),
                "majority": _baseline(results, task, "majority", name),
                "chance": _baseline(results, task, "chance", name),
                "n": _n_examples(results, task),
                "depth": depth,
                "group": task in subtasks,
            }
        )
    return rows


def plot_chart(series: dict[str, list[dict[str, Any]]], path: Path, title: str) -> None:
    """Bar chart of each task's main metric; bits per byte on its own axis (lower is better)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(series)
    score_tasks: list[str] = []
    bpb_tasks: list[str] = []
    for rows in series.values():
        for r in rows:
            if r.get("group"):
                continue  # a group's score is its subtasks' average; the chart shows the subtasks
            target = bpb_tasks if r["metric"] in LOWER_IS_BETTER else score_tasks
            if r["task"] not in target and r["value"] is not None:
                target.append(r["task"])
    width_ratios = [max(len(score_tasks), 1), max(len(bpb_tasks), 1) if bpb_tasks else 0.001]
    fig, axes = plt.subplots(
        1,
        2,
        figsize=(3 + 0.9 * (len(score_tasks) + len(bpb_tasks)) * max(1, len(labels) / 2), 4.5),
        gridspec_kw={"width_ratios": width_ratios},
        squeeze=False,
    )
    for ax, tasks, ylabel in (
        (axes[0][0], score_tasks, "score (higher is better)"),
        (axes[0][1], bpb_tasks, "bits per byte (lower is better)"),
    ):
        if not tasks:
            ax.set_visible(False)
            continue
        width = 0.8 / max(len(labels), 1)
        for i, label in enumerate(labels):
            by_task = {r["task"]: r for r in series[label]}
            xs, ys, errs = [], [], []
            for j, task in enumerate(tasks):
                r = by_task.get(task)
                if r and isinstance(r["value"], (int, float)) and math.isfinite(r["value"]):
                    scale = 0.01 if r["metric"] in PERCENT_METRICS else 1.0  # chrF, BLEU: 0-100
                    xs.append(j + (i - (len(labels) - 1) / 2) * width)
                    ys.append(r["value"] * scale)
                    se = r.get("stderr")
                    errs.append(se * scale if isinstance(se, (int, float)) and math.isfinite(se) else 0.0)
            ax.bar(xs, ys, width=width, yerr=errs, capsize=2, label=label)
        ax.set_xticks(range(len(tasks)))
        ax.set_xticklabels(
            [f"{t}\n({_axis_metric(series, t)})" for t in tasks],
            rotation=30,
            ha="right",
            fontsize=8,
        )
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
    if len(labels) > 1:
        axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _axis_metric(series: dict[str, list[dict[str, Any]]], task: str) -> str:
    metric = next((r["metric"] for s in series.values() for r in s if r["task"] == task), "")
    return f"{metric}/100" if metric in PERCENT_METRICS else metric


def write_samples(samples: dict[str, list], out: Path) -> None:
    folder = out / "samples"
    folder.mkdir(parents=True, exist_ok=True)
    for task, rows in samples.items():
        with open(folder / f"{task}.jsonl", "w", encoding="utf-8") as f:
            for row in rows:
                f.write(
                    json.dumps(
                        _finite(json.loads(json.dumps(row, default=_json_default))), ensure_ascii=False
                    )
                    + "\n"
                )


def generation_samples(samples: dict[str, list], k: int) -> list[dict[str, Any]]:
    from persianllama.eval.metrics import persian_script_share

    out = []
    for row in (samples.get("persian_generation") or [])[:k]:
        text = (row.get("filtered_resps") or row.get("resps") or [""])[0]
        text = text[0] if isinstance(text, list) else text
        out.append(
            {
                "prompt": row["doc"]["prompt"],
                "input": model_input(row),
                "continuation": text,
                "persian_share": persian_script_share(text),
            }
        )
    return out


def model_input(row: dict[str, Any]) -> str:
    """The text a generation sample's model was given (lm-eval's first argument: the prompt, rendered through the
    chat template when one was applied)."""
    args = row.get("arguments") or []
    if isinstance(args, dict):  # older lm-eval: {"gen_args_0": {"arg_0": text, "arg_1": kwargs}}
        first = next(iter(args.values()), {})
        return str(first.get("arg_0", "")) if isinstance(first, dict) else ""
    first = args[0] if args else ""
    return str(first[0] if isinstance(first, (list, tuple)) and first else first)


def generation_format(meta: dict[str, Any]) -> str:
    """One line for report.md: how persian_generation's prompts reached the model."""
    if meta.get("generation_chat_template"):
        return (
            "Prompt format: **chat template** (each prompt as a user message through the tokenizer's chat template, "
            f"generation_template={meta.get('generation_template', 'auto')}): greedy answers of a chat model."
        )
    return "Prompt format: **plain text** (no chat template): greedy continuations of the prompts."


def _leaderboard_lines(runs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    columns, rows = L.leaderboard_rows(runs)
    if not columns:
        return []
    head = [f"{c} ↓" if c == "language modelling" else c for c in columns]
    lines = [
        "## Leaderboard summary",
        "",
        "Mean of each task's main metric per task family, in percent (chrF as is; bits per byte as is, lower "
        "is better); *average* is the mean of the families except language modelling and generation, shown "
        "only for rows that have each of those families. The baseline rows score the same documents with a "
        "constant answer (the commonest gold one) or a uniform random one.",
        "",
        "| model | " + " | ".join(head) + " | average |",
        "|---|" + "---|" * (len(columns) + 1),
    ]
    for row in rows:
        cells = []
        for c in columns:
            f = row["families"].get(c)
            cells.append(f"{f['score']:.2f}" if f else "")
        avg = f"{row['average']:.2f}" if isinstance(row.get("average"), float) else ""
        label = f"*{row['label']}*" if row.get("baseline") else row["label"]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {avg} |")
    tasks = {}
    for _, results in runs:
        for name, f in L.family_scores(results).items():
            tasks.setdefault(name, [])
            tasks[name] += [t for t in f["tasks"] if t not in tasks[name]]
    lines += ["", "Families: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in tasks.items()) + ".", ""]
    return lines


# Metrics shown in the per-task tables with baseline rows, in this order (others follow).
_ROW_METRICS = ("acc", "acc_norm", "exact_match", "macro_f1", "f1", "answerability_acc", "no_answer")


def _task_lines(results: dict[str, Any], task: str) -> list[str]:
    meta = results.get("persianllama", {})
    metrics = results["results"][task]
    rows = metric_rows(metrics)
    if not rows:
        return []  # a group without scores of its own (persian_nlu): its tasks have their sections
    n = _n_examples(results, task)
    shots = results.get("n-shot", {}).get(task)
    lines = [f"### {task}", "", f"{n} examples, {shots}-shot." if n is not None else "", ""]
    for warning in analysis_warnings(meta, [task]):
        lines += [f"> ⚠ {warning}", ""]
    base = (meta.get("baselines") or {}).get(task) or {}
    cls = (meta.get("classification") or {}).get(task)
    if cls and not any(m == "macro_f1" for m, _, _ in rows):  # lm-eval's own tasks: macro-F1 is ours
        rows = rows + [("macro_f1", cls["macro_f1"], cls.get("macro_f1_stderr"))]
    if base:
        names = [m for m, _, _ in rows]
        ordered = [m for m in _ROW_METRICS if m in names] + [m for m in names if m not in _ROW_METRICS]
        values = {m: (v, se) for m, v, se in rows}
        lines += ["| | " + " | ".join(ordered) + " |", "|---|" + "---|" * len(ordered)]
        lines.append(
            "| this model | "
            + " | ".join(_fmt(values[m][0], _stderr(results, task, m, values[m][1])) for m in ordered)
            + " |"
        )
        for kind in ("majority", "chance"):
            if kind in base:
                b = base[kind]
                lines.append(f"| {b['label']} | " + " | ".join(_fmt(b[m]) if m in b else "" for m in ordered) + " |")
    else:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {m} | {_fmt(val, _stderr(results, task, m, se))} |" for m, val, se in rows]
    if cls:
        lines += [
            "",
            "| class | gold share | predicted share | F1 |",
            "|---|---|---|---|",
        ]
        for name, c in cls["per_class"].items():
            lines.append(
                f"| {_md_cell(name)} | {c['gold_share']:.3f} | {c['predicted_share']:.3f} | {c['f1']:.4f} |"
            )
        if cls.get("no_prediction"):
            lines.append(f"| (no option named) | | {cls['no_prediction'] / cls['n']:.3f} | |")
    lines.append("")
    return lines


def analysis_warnings(meta: dict[str, Any], tasks: list[str] | None = None) -> list[str]:
    from persianllama.eval.analysis import warning_lines

    caveats = meta.get("caveats") or {}
    if tasks is not None:
        caveats = {t: c for t, c in caveats.items() if t in tasks}
    return warning_lines(caveats)


def render_report(results: dict[str, Any], samples_shown: list[dict[str, Any]]) -> str:
    meta = results.get("persianllama", {})
    info = meta.get("model_info", {})
    v = meta.get("versions", {})
    chat = "yes" if meta.get("apply_chat_template") else "no"
    if meta.get("generation_chat_template") is not None and bool(meta["generation_chat_template"]) != bool(
        meta.get("apply_chat_template")
    ):
        chat += f"; persian_generation: {'yes' if meta['generation_chat_template'] else 'no'}"
    if meta.get("system_prompt"):
        chat += f", system prompt «{_md_cell(meta['system_prompt'])}»"
    lines = [f"# Persian evaluation: {meta.get('label', meta.get('model'))}", ""]
    lines += [
        "| | |",
        "|---|---|",
        f"| model | `{meta.get('model')}` |",
        f"| adapter | `{meta.get('adapter')}` |" if meta.get("adapter") else "| adapter | none |",
        f"| tokenizer | `{meta.get('tokenizer')}` ({info.get('tokenizer_size')} tokens) |",
        f"| weights | {'8-bit (bitsandbytes)' if meta.get('load_in_8bit') else info.get('dtype')} "
        f"on {info.get('device')}"
        f", {info.get('parameters', 0):,} parameters |",
        f"| few-shot | {meta.get('num_fewshot')} |",
        f"| chat template | {chat} |",
        f"| limit | {meta.get('limit') or 'none'} |",
        f"| context | {meta.get('max_length')} tokens, batch {meta.get('batch_size')} |",
        f"| data | {meta.get('data_dir') or ''} {json.dumps(meta.get('data') or {}, ensure_ascii=False)} |",
        f"| run | {meta.get('started')} → {meta.get('finished')}, {meta.get('examples')} examples, "
        f"{_fmt(meta.get('examples_per_second'))} examples/s |",
        "| versions | " + ", ".join(f"{k} {val}" for k, val in v.items()) + " |",
        "",
    ]
    warnings = analysis_warnings(meta)
    if warnings:
        lines += ["## Caveats", ""] + [f"- ⚠ {w}" for w in warnings] + [""]
    lines += _leaderboard_lines([(meta.get("label", "model"), results)])
    lines += [
        "## Summary",
        "",
        "Each task's main metric; *majority* always gives the commonest gold answer, *chance* guesses "
        "uniformly (expected score).",
        "",
        "| task | metric | value | majority | chance | n |",
        "|---|---|---|---|---|---|",
    ]
    for r in summary_rows(results):
        arrow = "↓" if r["metric"] in LOWER_IS_BETTER else "↑"
        name = "&nbsp;&nbsp;" * r["depth"] + ("- " if r["depth"] else "") + r["task"]
        maj = _fmt(r["majority"]) if r["majority"] is not None else ""
        cha = _fmt(r["chance"]) if r["chance"] is not None else ""
        lines.append(
            f"| {name} | {r['metric']} {arrow} | {_fmt(r['value'], r['stderr'])} | {maj} | {cha} | {r['n'] or ''} |"
        )
    lines += ["", "![main metric per task](chart.png)", ""]
    bpb = results["results"].get("persian_bpb", {}).get("bpb_details")
    if bpb:
        lines += [
            "## Bits per byte",
            "",
            "Bits per UTF-8 byte of the original text (comparable across tokenizers) and word perplexity "
            "(whitespace words); rolling windows of "
            f"{bpb['max_length']} tokens, stride {bpb['stride']}.",
            "",
            "| bits/byte | word ppl | token ppl | documents | words | bytes | tokens | sources |",
            "|---|---|---|---|---|---|---|---|",
            f"| {_fmt(bpb['bits_per_byte'])} | {_fmt(bpb['word_perplexity'])} | "
            f"{_fmt(bpb['token_perplexity'])} | {bpb['documents']} | {bpb['words']} | {bpb['bytes']} | "
            f"{bpb['tokens']} | {', '.join(Path(s).name for s in bpb['sources'])} |",
            "",
        ]
    lines += ["## Tasks", ""]
    for task in _task_order(results):
        if task == "persian_bpb":
            continue
        lines += _task_lines(results, task)
    if samples_shown:
        lines += [
            "## Generation samples",
            "",
            generation_format(meta) + " All of them are in samples/persian_generation.jsonl.",
            "",
        ]
        if meta.get("generation_chat_template") and samples_shown[0].get("input"):
            lines += ["The first prompt as the model saw it:", "", "```", samples_shown[0]["input"], "```", ""]
        for i, s in enumerate(samples_shown, 1):
            lines += [
                f"**{i}.** Persian script {s['persian_share']:.0%}",
                "",
                f"> {_md_cell(s['prompt'])} **…** {_md_cell(s['continuation'])}",
                "",
            ]
    return "\n".join(lines) + "\n"


def write_outputs(
    results: dict[str, Any], samples: dict[str, list], out: Path, report_samples: int = 8
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    dump_json(results, out / "results.json")
    write_samples(samples, out)
    shown = generation_samples(samples, report_samples)
    results_for_report = json.loads(
        json.dumps(_finite(json.loads(json.dumps(results, default=_json_default))))
    )
    (out / "report.md").write_text(render_report(results_for_report, shown), encoding="utf-8")
    meta = results.get("persianllama", {})
    plot_chart(
        {meta.get("label", "model"): summary_rows(results_for_report)},
        out / "chart.png",
        f"{meta.get('label', '')}: {meta.get('num_fewshot', 0)}-shot",
    )


# --------------------------------------------------------------------------- --compare


def load_results(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / "results.json" if folder.is_dir() else folder
    if not path.is_file():
        raise UserError(f"{path}: no results.json (run `persianllama evaluate --output {folder}` first)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise UserError(f'{path}: not a results.json written by persianllama evaluate (no "results")')
    return data


def compare(folders: list[str], out: str | Path) -> dict[str, Any]:
    """Side-by-side table, JSON and chart of several runs' results; returns the comparison."""
    if len(folders) < 1:
        raise UserError("--compare needs at least one results folder")
    out = Path(out)
    runs = []
    for folder in folders:
        data = load_results(folder)
        label = data.get("persianllama", {}).get("label") or Path(folder).name
        runs.append({"folder": str(folder), "label": label, "data": data})
    labels = [r["label"] for r in runs]
    for run in runs:  # the same model evaluated twice (e.g. 0- and 3-shot): tell runs apart by folder
        if labels.count(run["label"]) > 1:
            run["label"] = f"{run['label']} ({Path(run['folder']).name})"

    tasks: list[str] = []
    for run in runs:
        tasks += [t for t in _task_order(run["data"]) if t not in tasks]
    table = []
    for task in tasks:
        metric_names: list[str] = []
        for run in runs:
            for m, _, _ in metric_rows(run["data"]["results"].get(task, {})):
                if m not in metric_names:
                    metric_names.append(m)
        for m in metric_names:
            row = {"task": task, "metric": m, "values": {}}
            for run in runs:
                metrics = run["data"]["results"].get(task, {})
                row["values"][run["label"]] = {
                    "value": metrics.get(f"{m},none"),
                    "stderr": metrics.get(f"{m}_stderr,none"),
                }
            table.append(row)

    labels = [r["label"] for r in runs]
    lines = [
        "# Persian evaluation: comparison",
        "",
        "| run | model | adapter | tokenizer | 8-bit | few-shot | limit | date |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        m = run["data"].get("persianllama", {})
        adapter = f"`{m['adapter']}`" if m.get("adapter") else "none"
        lines.append(
            f"| {run['label']} | `{m.get('model')}` | {adapter} | `{m.get('tokenizer')}` | "
            f"{'yes' if m.get('load_in_8bit') else 'no'} | {m.get('num_fewshot')} | {m.get('limit') or ''} | "
            f"{m.get('finished', '')} |"
        )
    lines += [""] + _leaderboard_lines([(r["label"], r["data"]) for r in runs])
    lines += [
        "## All metrics",
        "",
        "Best value per row in bold (↑ higher is better, ↓ lower is better).",
        "",
        "| task | metric | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for row in table:
        base = row["metric"].split(" ")[0]
        lower = base in LOWER_IS_BETTER
        vals = {
            k: v["value"]
            for k, v in row["values"].items()
            if isinstance(v["value"], (int, float)) and math.isfinite(v["value"])
        }
        best = (min if lower else max)(vals.values()) if len(set(vals.values())) > 1 else None
        cells = []
        for label in labels:
            v = row["values"][label]
            text = _fmt(v["value"], v["stderr"])
            cells.append(f"**{text}**" if best is not None and vals.get(label) == best else text)
        lines.append(
            f"| {row['task']} | {row['metric']} {'↓' if lower else '↑'} | " + " | ".join(cells) + " |"
        )
    lines += ["", "![main metric per task and run](chart.png)", ""]

    out.mkdir(parents=True, exist_ok=True)
    columns, board = L.leaderboard_rows([(r["label"], r["data"]) for r in runs])
    comparison = {
        "runs": [
            {"folder": r["folder"], "label": r["label"], "persianllama": r["data"].get("persianllama", {})}
            for r in runs
        ],
        "table": table,
        "leaderboard": {"families": columns, "rows": board},
    }
    dump_json(comparison, out / "results.json")
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plot_chart({r["label"]: summary_rows(r["data"]) for r in runs}, out / "chart.png", "comparison")
    return comparison
