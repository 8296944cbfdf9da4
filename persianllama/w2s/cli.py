"""`persianllama w2s`: a weak-to-strong experiment on a Persian classification task.

    persianllama w2s --task parsinlu_sentiment --data-dir corpora/sample/tasks --weak WEAK --strong STRONG \\
        --output runs/w2s --recipe configs/w2s_tiny.yaml runs=1
"""

from __future__ import annotations

import argparse

from persianllama.config import describe


def register(sub: argparse._SubParsersAction) -> None:
    from persianllama.w2s.config import W2sConfig
    from persianllama.w2s.data import TASKS

    p = sub.add_parser(
        "w2s", help="weak-to-strong experiment: a strong model trained on a weak model's labels (PGR report)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="settings (key: type = default):\n" + describe(W2sConfig),
        description="Split the task's training rows in halves; train the weak model on half A, label half B with "
                    "it; train the strong model on half B with the weak labels (cross-entropy, and the auxiliary "
                    "confidence loss) and with the ground truth (the ceiling); report test accuracies and the "
                    "performance gap recovered over several seeded runs. Every model is a LoRA adapter trained by "
                    "the shared adapter loop. Settings: defaults < --recipe < flags < key=value.")
    p.add_argument("--task", choices=list(TASKS), help="the classification task (task)")
    p.add_argument("--data-dir", metavar="DIR", help="data root in the upstream layout (data_dir)")
    p.add_argument("--weak", metavar="MODEL", help="weak model: HF folder, hub id or PEFT adapter folder (weak.base)")
    p.add_argument("--strong", metavar="MODEL", help="strong model: HF folder, hub id or PEFT adapter folder "
                                                     "(strong.base)")
    p.add_argument("--output", metavar="DIR", help="experiment folder (out_dir); run again to continue it")
    p.add_argument("--recipe", "--config", dest="config", metavar="YAML", help="recipe (e.g. configs/w2s_tiny.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="setting overrides")
    p.set_defaults(func=run_w2s)


def load_config(args: argparse.Namespace):
    from persianllama import config as cfg
    from persianllama.w2s.config import W2sConfig

    flags = cfg.flags_to_settings({"task": args.task, "data_dir": args.data_dir, "weak.base": args.weak,
                                   "strong.base": args.strong, "out_dir": args.output})
    return cfg.load(W2sConfig, args.config, args.overrides, **flags)


def run_w2s(args: argparse.Namespace) -> int:
    from persianllama.w2s.train import run

    config = load_config(args)
    rep = run(config)
    if rep.get("exit_code"):
        return int(rep["exit_code"])

    def pct(m: str) -> str:
        return f"{100 * rep[m]['mean']:.1f}% ± {100 * rep[m]['std']:.1f}"

    def ratio(x) -> str:
        return "n/a" if x is None else f"{x:+.3f}"

    print(f"w2s {rep['task']} ({rep['runs']} runs): weak {pct('weak')} | strong ceiling {pct('strong_ceiling')} | "
          f"w2s CE {pct('w2s_ce')} | w2s confidence {pct('w2s_aux')} | PGR CE {ratio(rep['pgr_ce'])}, confidence "
          f"{ratio(rep['pgr_aux'])} -> {config.out_dir}/report.md")
    return 0
