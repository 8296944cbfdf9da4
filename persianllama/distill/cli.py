"""`persianllama distill`: a big teacher teaches a small student (token-level or sequence-level KD).

    persianllama distill --teacher runs/zero-1b/hf --student-config configs/tiny.yaml \\
        --tokenizer runs/tokenizer --corpus runs/corpus --output runs/distill kd.alpha=0.5 kd.temperature=2
    persianllama distill --teacher /models/llama-2-13b --teacher-adapter runs/lora-13b/adapter \\
        --student runs/zero/hf --tokenizer runs/tokenizer --corpus runs/corpus --output runs/distill kd.loss=uld
    deepspeed --num_gpus 8 --module persianllama.distill.cli ARGS    # the same, one rank per GPU
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from persianllama.config import describe


def register(sub: argparse._SubParsersAction) -> None:
    from persianllama.distill.config import DistillConfig

    p = sub.add_parser(
        "distill", help="distill a teacher into a student (KD on logits, top-k cache, cross-vocabulary ULD, or "
                        "sequence KD)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="settings (key: type = default):\n" + describe(DistillConfig),
        description="The student's pretraining run (the Zero track's loop, DeepSpeed, resume, metrics) with the "
                    "teacher's term in the loss: (1 - kd.alpha) * CE + kd.alpha * T^2 * D. Settings: defaults < "
                    "--student-config < flags < key=value.")
    p.add_argument("--teacher", metavar="MODEL", help="teacher model: HF directory or hub id (teacher.model)")
    p.add_argument("--teacher-adapter", metavar="DIR", help="PEFT adapter on the teacher, un-merged (teacher.adapter)")
    p.add_argument("--teacher-tokenizer", metavar="DIR", help="the teacher's tokenizer (teacher.tokenizer; default: "
                                                              "the adapter's, else the model's)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--student", metavar="MODEL", help="start the student from this HF model (model.init_from)")
    who.add_argument("--student-config", "--config", dest="config", metavar="YAML",
                     help="a Zero-track recipe for a student built from scratch (configs/tiny.yaml)")
    p.add_argument("--tokenizer", metavar="DIR", help="the student's tokenizer (tokenizer)")
    p.add_argument("--corpus", nargs="+", metavar="DIR", help="the corpus the student reads (data.corpus)")
    p.add_argument("--instructions", nargs="+", metavar="FILE_OR_HUB_ID",
                   help="instruction data for sequence KD: the teacher answers, the student is tuned on the answers "
                        "(kd.instructions; sets kd.mode=sequence)")
    p.add_argument("--output", metavar="DIR", help="run folder (out_dir)")
    p.add_argument("--steps", help="train.max_steps")
    p.add_argument("--resume", metavar="auto|none|DIR", help="checkpoint.resume")
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="setting overrides")
    p.set_defaults(func=run_distill)


def load_config(args: argparse.Namespace):
    from persianllama import config as cfg
    from persianllama.cliargs import integer
    from persianllama.distill.config import DistillConfig

    corpus, overrides = cfg.split_overrides(args.corpus, args.overrides)
    instructions, overrides = cfg.split_overrides(args.instructions, overrides)
    recipe = cfg.read_recipe(args.config) if args.config else {}
    flags = cfg.flags_to_settings({
        "out_dir": args.output, "tokenizer": args.tokenizer, "data.corpus": corpus,
        "model.init_from": args.student, "teacher.model": args.teacher, "teacher.adapter": args.teacher_adapter,
        "teacher.tokenizer": args.teacher_tokenizer,
        "train.max_steps": None if args.steps is None else integer(args.steps, "--steps"),
        "checkpoint.resume": args.resume, "kd.instructions": instructions,
        "kd.mode": "sequence" if instructions else None,
        # with instruction data the student's training is an SFT run: --steps is its train.max_steps
        "kd.sft_settings": [f"train.max_steps={integer(args.steps, '--steps')}"] if instructions and args.steps else None,
    })
    return cfg.from_dict(DistillConfig, cfg.merge(cfg.merge(recipe, flags), cfg.parse_overrides(overrides)))


def run_distill(args: argparse.Namespace) -> int:
    from persianllama.distill.run import run
    from persianllama.run.launcher import follow_launcher

    follow_launcher()
    if not getattr(args, "verbose", False):
        logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    cfg = load_config(args)
    code = run(cfg, local_rank=args.local_rank)
    if code == 0 and os.environ.get("RANK", "0") == "0":
        import json
        from pathlib import Path

        summary_file = Path(cfg.out_dir) / "distill_summary.json"
        if summary_file.is_file():
            s = json.loads(summary_file.read_text(encoding="utf-8"))
            val = s.get("val") or {}
            kl = s.get("kl_to_teacher")
            print(f"distilled student: {s['hf']} | step {s['step']} | held-out bpb "
                  f"{val.get('bits_per_byte', float('nan')):.4f}" + (f" | KL to teacher {kl:.4f}" if kl is not None else ""))
    return code


def main(argv: list[str] | None = None) -> int:
    """`deepspeed --module persianllama.distill.cli ARGS`: the `persianllama distill` arguments under a launcher."""
    from persianllama.cli import dispatch

    parser = argparse.ArgumentParser(prog="persianllama")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "distill":
        argv = ["distill", *argv]
    argv = [a for a in argv if not a.startswith("--local_rank=")]  # LOCAL_RANK carries the same
    return dispatch(parser, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
