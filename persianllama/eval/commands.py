"""`persianllama evaluate --lm-eval-command` and `--list-tasks`: the same evaluation as plain lm_eval
command lines, and every task with where its data comes from.

Two command lines, not one: bits per byte must be run with ``add_bos_token=False`` (lm-eval puts its
own prefix token before each document and would otherwise score a second BOS with a tokenizer that
adds one, as LLaMA's does), while the other tasks must keep the tokenizer's default, which is what
``persianllama evaluate`` gives them; one lm_eval run has one setting for all its tasks. For the same reason
``persian_generation`` gets a third line when its prompt format (``generation_template``) differs from the
other tasks' (``--apply_chat_template``).
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

from persianllama.eval.config import EvalConfig
from persianllama.run.device import TORCH_DTYPES


def _abs(path: str | None) -> str | None:
    if not path:
        return path
    expanded = os.path.expanduser(path)
    return str(Path(expanded).resolve()) if os.path.exists(expanded) else path


def _model_args(config: EvalConfig, bpb: bool) -> str:
    args = [f"pretrained={_abs(config.model)}"]
    if config.adapter:
        args.append(f"peft={_abs(config.adapter)}")
    if config.tokenizer:
        args.append(f"tokenizer={_abs(config.tokenizer)}")
    elif config.adapter:
        args.append(
            f"tokenizer={_abs(config.adapter)}"
        )  # ours takes the adapter's tokenizer when it saved one
    if config.load_in_8bit:
        args.append("load_in_8bit=True")
    if config.dtype != "auto":
        args.append(f"dtype={TORCH_DTYPES[config.dtype]}")
    if config.max_length:
        args.append(f"max_length={config.max_length}")
    if bpb:
        args.append("add_bos_token=False")
    return ",".join(args)


def _metadata(config: EvalConfig) -> str:
    from persianllama.eval.builtin import BUILTIN_TASKS

    data = {k: _abs(str(v)) for k, v in (config.data or {}).items() if k not in BUILTIN_TASKS}
    meta: dict = {}
    root = config.data_dir or os.environ.get("PERSIANLLAMA_EVAL_DATA")
    if root:
        meta["data_dir"] = _abs(root)
    if data:
        meta["data"] = data
    return json.dumps(meta, ensure_ascii=False)


def lm_eval_commands(config: EvalConfig) -> list[str]:
    """Comment and command lines (shell syntax) that run `config`'s evaluation with plain lm_eval."""
    from persianllama.eval.builtin import BUILTIN_TASKS
    from persianllama.eval.runner import BPB_TASK, TASK_DIR, split_names

    names = split_names(config.tasks)
    out_root = _abs(config.output) or "OUT"
    common = ["--include_path", str(TASK_DIR), "--metadata", _metadata(config)]
    common += ["--batch_size", str(config.batch_size), "--seed", str(config.seed)]
    if config.device:
        common += ["--device", config.device]
    if config.limit:
        common += ["--limit", str(config.limit)]
    lines: list[str] = []
    if BPB_TASK in names:
        lines.append(
            "# bits per byte: add_bos_token=False, or lm-eval scores a second BOS after its own prefix token"
        )
        if config.bpb_stride and config.max_length and config.bpb_stride < config.max_length:
            lines.append(
                f"# (bpb_stride={config.bpb_stride} < max_length: persianllama gives later windows more context; "
                "lm_eval has only non-overlapping windows, so its bits per byte will be higher)"
            )
        cmd = ["lm_eval", "--model", "hf", "--model_args", _model_args(config, True), "--tasks", BPB_TASK]
        cmd += common + ["--output_path", f"{out_root}/lm_eval_bpb"]
        lines.append(shlex.join(cmd))
    rest = [n for n in names if n != BPB_TASK]
    if rest:
        lines.append(
            "# every other task, with the tokenizer's own BOS handling (as persianllama evaluate runs them)"
        )
        local = [n for n in rest if n in BUILTIN_TASKS and n in (config.data or {})]
        for n in local:
            lines.append(
                f"# {n}: persianllama reads the local copy {config.data[n]}; plain lm_eval reads "
                f"{BUILTIN_TASKS[n].source()} (put it in the Hugging Face cache, or drop the task here)"
            )
        from persianllama.eval.runner import GENERATION_TASK

        # persian_generation in its own line when its prompt format (generation_template) is known to differ
        gen_chat = {"chat": True, "plain": False}.get(config.generation_template)
        runs = [(rest, config.apply_chat_template)]
        if GENERATION_TASK in rest and gen_chat is not None and gen_chat != config.apply_chat_template:
            others = [n for n in rest if n != GENERATION_TASK]
            runs = ([(others, config.apply_chat_template)] if others else []) + [([GENERATION_TASK], gen_chat)]
        elif GENERATION_TASK in rest and gen_chat is None and not config.apply_chat_template:
            lines.append(
                f"# {GENERATION_TASK}: persianllama evaluate gives its prompts through the chat template when the "
                "tokenizer has one (generation_template=auto); for a chat model run it on its own line with "
                "--apply_chat_template"
            )
        for i, (run_names, chat) in enumerate(runs):
            suffix = "" if i == 0 else "_generation"
            lines.append(shlex.join(_rest_command(config, run_names, chat, common, f"{out_root}/lm_eval{suffix}")))
    return lines


def _rest_command(config: EvalConfig, names: list[str], chat: bool, common: list[str], output: str) -> list[str]:
    cmd = ["lm_eval", "--model", "hf", "--model_args", _model_args(config, False), "--tasks", ",".join(names)]
    if config.num_fewshot is not None:
        cmd += ["--num_fewshot", str(config.num_fewshot)]
    if chat:
        cmd += ["--apply_chat_template"]
        multiturn = True if config.fewshot_as_multiturn is None else config.fewshot_as_multiturn
        cmd += ["--fewshot_as_multiturn", "true" if multiturn else "false"]
    if config.system_prompt:
        cmd += ["--system_instruction", config.system_prompt]
    if config.max_gen_tokens:
        cmd += ["--gen_kwargs", f"max_gen_toks={config.max_gen_tokens}"]
    return cmd + common + ["--output_path", output, "--log_samples"]


def list_tasks(data: dict | None = None, data_dir: str | None = None) -> str:
    """A table of every task and group `--tasks` accepts: kind, main metric, family, data source."""
    from persianllama.errors import UserError
    from persianllama.eval import data as D
    from persianllama.eval.builtin import BUILTIN_TASKS, local_override
    from persianllama.eval.runner import ALL_TASKS, BPB_TASK, TASK_DIR, task_manager

    manager = task_manager(data, data_dir, builtin=())

    def source(cfg: dict) -> str:
        kwargs = cfg.get("dataset_kwargs") or {}
        try:
            if kwargs.get("direction"):
                return D.resolve_parallel_source(data, data_dir)
            if kwargs.get("dataset"):
                return D.resolve_source(kwargs["dataset"], data, data_dir)
            if cfg.get("task") == BPB_TASK:
                return ", ".join(D.resolve_text_source(data, data_dir))
            if cfg.get("task") == "persian_generation":
                return (data or {}).get("generation") or "tasks/generation_prompts.json (bundled)"
        except UserError as e:
            return f"none yet ({str(e).split(';')[0].split(':')[0]}: pass --data or --data-dir)"
        return ""

    rows = [("all", "group", "", "", " + ".join(ALL_TASKS))]
    for name in sorted(manager.all_tasks):
        entry = manager.task_index[name]
        if Path(str(entry.yaml_path or "")).parent != TASK_DIR:
            continue
        cfg = entry.cfg or {}
        if "group" in cfg:
            members = cfg.get("task") or []
            rows.append((name, "group", "", "", " + ".join(str(m) for m in members)))
            continue
        meta = cfg.get("metadata") or {}
        kind = {
            "multiple_choice": "cloze (log-likelihood)",
            "generate_until": "generation",
            "loglikelihood_rolling": "rolling log-likelihood",
        }.get(cfg.get("output_type"), str(cfg.get("output_type")))
        if name.endswith("_chat") or "_chat_" in name:
            kind = "chat (generated letter)"
        rows.append((name, kind, str(meta.get("main_metric", "")), str(meta.get("family", "")), source(cfg)))
    lines = [
        "Our tasks (persianllama/eval/tasks):",
        "",
        "| task | type | main metric | family | data |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    lines += [
        "",
        "lm-eval's Persian tasks (their YAMLs, data from the hub; --data NAME=DIR_OR_PARQUET for a local copy):",
        "",
        "| task | main metric | family | data | what |",
        "|---|---|---|---|---|",
    ]
    for name, b in BUILTIN_TASKS.items():
        where = b.source()
        if data and data.get(name):
            local_override(name, data[name])  # a bad local path is named here too
            where = f"local copy {data[name]} (instead of {b.source()})"
        lines.append(f"| {name} | {b.main_metric} | {b.family} | {where} | {b.what} |")
    return "\n".join(lines)
