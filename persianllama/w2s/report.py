"""The experiment's report: report.json, report.md and report.png (a bar chart of the four test accuracies).

PGR (performance gap recovered) = (w2s - weak) / (strong_ceiling - weak), from the mean test accuracies over the
runs (Burns et al. compute it from means too). 1 means the weak labels cost the strong model nothing, 0 means it
did no better than its weak teacher, below 0 worse. When the strong ceiling is not at least ``min_gap`` above the
weak model, the denominator is noise (or negative: the "strong" model is not stronger on this task) and the
ratio means nothing: PGR is then null, with the reason in ``pgr_note``. Per-run PGRs follow the same rule.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from pathlib import Path

from persianllama.atomic import write_json, write_text
from persianllama.w2s.data import Row, TaskData

MODELS = ("weak", "strong_ceiling", "w2s_ce", "w2s_aux")
LABELS = {"weak": "weak (half A, ground truth)", "strong_ceiling": "strong ceiling (half B, ground truth)",
          "w2s_ce": "weak-to-strong, cross-entropy", "w2s_aux": "weak-to-strong, confidence loss"}


def pgr(weak: float, ceiling: float, w2s: float, min_gap: float) -> float | None:
    """(w2s - weak) / (ceiling - weak); None when ceiling - weak < min_gap (nothing to recover)."""
    gap = ceiling - weak
    if not math.isfinite(gap) or gap < min_gap or gap <= 0:
        return None
    return (w2s - weak) / gap


def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation (0 for one run), min, max and the values."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "runs": list(values)}


def majority_baseline(train: list[Row], test: list[Row]) -> tuple[int, float]:
    """The training split's most common class and its test accuracy (what a constant guess scores)."""
    top = Counter(r.label for r in train).most_common(1)[0][0]
    return top, sum(r.label == top for r in test) / len(test)


def build(cfg, task: TaskData, test: list[Row], results: list[dict], seconds: float) -> dict:
    from persianllama.config import to_dict

    acc = {m: spread([r[m]["test_accuracy"] for r in results]) for m in MODELS}
    w, c = acc["weak"]["mean"], acc["strong_ceiling"]["mean"]
    gap = c - w
    note = (f"strong_ceiling - weak = {gap:+.4f} is below min_gap={cfg.min_gap}: no gap to recover, PGR not "
            "defined" if pgr(w, c, c, cfg.min_gap) is None else "PGR = (w2s - weak) / (strong_ceiling - weak), "
            "from the mean accuracies")
    per_run = {key: [pgr(r["weak"]["test_accuracy"], r["strong_ceiling"]["test_accuracy"], r[m]["test_accuracy"],
                         cfg.min_gap) for r in results] for key, m in (("ce", "w2s_ce"), ("aux", "w2s_aux"))}
    top, base = majority_baseline(task.train, test)
    return {
        "task": task.task, "weak_model": cfg.weak.base, "strong_model": cfg.strong.base, "data_dir": cfg.data_dir,
        "runs": len(results), "seeds": [r["halves"]["seed"] for r in results],
        **acc,
        "pgr_ce": pgr(w, c, acc["w2s_ce"]["mean"], cfg.min_gap),
        "pgr_aux": pgr(w, c, acc["w2s_aux"]["mean"], cfg.min_gap),
        "gap": gap, "pgr_note": note, "pgr_per_run": per_run,
        "weak_label_accuracy": spread([r["weak"]["half_b_accuracy"] for r in results]),
        "majority_baseline": {"class": task.choices[top], "accuracy": base},
        "chance": 1 / len(task.choices),
        "test_rows": len(test), "train_rows": len(task.train),
        "halves": [r["halves"] for r in results],
        "scoring": {"weak": results[0]["weak"]["scoring"], "strong": results[0]["strong_ceiling"]["scoring"]},
        "steps": {"weak": results[0]["weak"]["steps"], "strong": results[0]["strong_ceiling"]["steps"]},
        "sources": task.sources, "skipped_rows": task.skipped,
        "aux": to_dict(cfg.aux), "seconds": round(seconds, 1), "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:.1f}%" if pct else f"{x:+.3f}"


def markdown(rep: dict) -> str:
    lines = [f"# Weak-to-strong: {rep['task']}", "",
             f"- weak model: `{rep['weak_model']}`; strong model: `{rep['strong_model']}`",
             f"- {rep['train_rows']} training rows split in halves of {rep['halves'][0]['a']} / {rep['halves'][0]['b']} "
             f"rows, {rep['test_rows']} test rows; {rep['runs']} run(s), seeds {rep['seeds']}",
             f"- steps: weak {rep['steps']['weak']}, strong {rep['steps']['strong']}; label-word scoring: weak "
             f"{rep['scoring']['weak']}, strong {rep['scoring']['strong']}",
             f"- confidence loss: a={rep['aux']['alpha']}, warm-up {rep['aux']['warmup_frac']} of the steps, ramp "
             f"{rep['aux']['ramp']}", "",
             "| model | test accuracy (mean ± sd) | runs |", "|---|---|---|"]
    for m in MODELS:
        a = rep[m]
        lines.append(f"| {LABELS[m]} | {100 * a['mean']:.1f}% ± {100 * a['std']:.1f} | "
                     f"{', '.join(f'{100 * v:.1f}' for v in a['runs'])} |")
    lines += ["", f"- PGR, cross-entropy: **{_fmt(rep['pgr_ce'])}**; PGR, confidence loss: **{_fmt(rep['pgr_aux'])}** "
              f"({rep['pgr_note']})",
              f"- the weak labels on half B are {100 * rep['weak_label_accuracy']['mean']:.1f}% correct",
              f"- majority class (\"{rep['majority_baseline']['class']}\") scores "
              f"{100 * rep['majority_baseline']['accuracy']:.1f}% on the test rows; chance {100 * rep['chance']:.1f}%",
              "", "![test accuracy](report.png)", ""]
    return "\n".join(lines)


def chart(rep: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from persianllama.atomic import atomic_path

    fig, ax = plt.subplots(figsize=(7, 4))
    means = [100 * rep[m]["mean"] for m in MODELS]
    errs = [100 * rep[m]["std"] for m in MODELS]
    ax.bar(range(len(MODELS)), means, yerr=errs, capsize=4,
           color=["tab:gray", "tab:green", "tab:blue", "tab:purple"])
    for i, m in enumerate(MODELS):
        ax.plot([i] * len(rep[m]["runs"]), [100 * v for v in rep[m]["runs"]], "k.", ms=4)
    ax.axhline(100 * rep["majority_baseline"]["accuracy"], ls="--", color="tab:red", lw=1, label="majority class")
    ax.set_xticks(range(len(MODELS)), ["weak", "strong\nceiling", "w2s\nCE", "w2s\nconfidence"])
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{rep['task']}: PGR CE {_fmt(rep['pgr_ce'])}, confidence {_fmt(rep['pgr_aux'])} "
                 f"({rep['runs']} runs)")
    ax.legend(loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def write_report(cfg, task: TaskData, test: list[Row], results: list[dict], out: Path, *, seconds: float) -> dict:
    rep = build(cfg, task, test, results, seconds)
    write_json(out / "report.json", rep)
    write_text(out / "report.md", markdown(rep))
    chart(rep, out / "report.png")
    return rep
