"""`persianllama evaluate`: load the model once, run bits-per-byte and the Persian lm-eval tasks,
write results.json, samples/, report.md and chart.png.

The Persian tasks run through ``lm_eval.simple_evaluate`` with the task YAMLs in ``tasks/``.
``persian_bpb`` is the one task computed outside lm-eval, by `bpb.evaluate_bpb`, so that this
report and in-training validation use one function; with the default stride it gives the numbers
lm-eval's ``loglikelihood_rolling`` gives for the same YAML (tests/eval check this).
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from persianllama.errors import UserError
from persianllama.eval.config import EvalConfig

log = logging.getLogger("persianllama.eval")

TASK_DIR = Path(__file__).resolve().parent / "tasks"
BPB_TASK = "persian_bpb"
ALL_TASKS = [BPB_TASK, "persian_nlu", "persian_generation"]
GENERATION_TASK = "persian_generation"
GENERATIVE = {"parsinlu_rc", "persianqa", GENERATION_TASK}
DATA_KEYS = ("text", "generation", "translation")
"""--data keys besides the data sets' own (data.DATASETS) and the built-in tasks' names."""


class _QuietCustomDatasetHint(logging.Filter):
    """lm-eval logs a hint about --metadata for every task with a custom loader; ours read it already."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Custom kwargs can be passed" not in record.getMessage()


logging.getLogger("lm_eval.api.task").addFilter(_QuietCustomDatasetHint())


def _manager_class():
    from lm_eval.tasks import TaskManager

    class PersianTaskManager(TaskManager):
        """lm-eval's TaskManager, plus task-config overrides applied when a named task is built: a
        built-in task's data read from a local copy (`builtin.local_override`)."""

        def __init__(self, *args, overrides: dict[str, dict] | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            self.overrides = dict(overrides or {})

        def _load_spec(self, spec):
            if isinstance(spec, str) and spec in self.overrides and (entry := self._entry(spec)):
                return self._factory.build(entry, overrides=dict(self.overrides[spec]), registry=self._index)
            return super()._load_spec(spec)

    return PersianTaskManager


def check_data_keys(data: dict | None) -> None:
    from persianllama.eval.builtin import BUILTIN_TASKS
    from persianllama.eval.data import DATASETS

    known = [*DATASETS, *DATA_KEYS, *BUILTIN_TASKS]
    for key in data or {}:
        if key not in known:
            raise UserError(f"--data {key}=...: unknown data key; known: {', '.join(known)}")


def task_manager(data: dict | None = None, data_dir: str | None = None, builtin: list[str] | None = ()):
    """lm-eval TaskManager over our task folder (and the lm-eval folders of the built-in Persian tasks
    in `builtin`, all of them if None; indexing lm-eval's ~230 folders costs seconds), with the data
    location in every task's metadata and local copies of built-in tasks' data applied."""
    from persianllama.eval.builtin import BUILTIN_TASKS, folders_for, local_override

    data = dict(data or {})
    check_data_keys(data)
    metadata = {"data": {k: v for k, v in data.items() if k not in BUILTIN_TASKS}, "data_dir": data_dir}
    overrides = {name: local_override(name, src) for name, src in data.items() if name in BUILTIN_TASKS}
    paths = [str(TASK_DIR)] + [str(p) for p in folders_for(None if builtin is None else list(builtin))]
    return _manager_class()(include_path=paths, include_defaults=False, metadata=metadata, overrides=overrides)


def split_names(names: list[str]) -> list[str]:
    out: list[str] = []
    for raw in names:
        for name in (n.strip() for n in str(raw).split(",")):
            if name:
                out += [n for n in (ALL_TASKS if name == "all" else [name]) if n not in out]
    return out


def builtin_names(names: list[str]) -> list[str]:
    from persianllama.eval.builtin import BUILTIN_TASKS

    return [n for n in split_names(names) if n in BUILTIN_TASKS]


def expand_tasks(names: list[str], manager) -> list[str]:
    """Split comma lists, expand `all`, check every name against our tasks, groups and the built-in
    Persian tasks."""
    from persianllama.eval.builtin import BUILTIN_TASKS

    out = split_names(names)
    for n in out:
        if n != BPB_TASK and n not in manager.all_tasks:
            ours = sorted(
                t
                for t in set(manager.all_groups) | set(manager.all_subtasks)
                if Path(str(manager.task_index[t].yaml_path or "")).parent == TASK_DIR
            )
            raise UserError(
                f"unknown task {n!r}; known: all, {', '.join(ours)}; lm-eval's Persian tasks: "
                f"{', '.join(BUILTIN_TASKS)} (persianllama evaluate --list-tasks)"
            )
    if not out:
        raise UserError("no tasks given (--tasks persian_bpb,persian_nlu,persian_generation or all)")
    return out


def _load_one(manager, name: str):
    from persianllama.eval.builtin import BUILTIN_TASKS, hub_mode, offline_error

    if name not in BUILTIN_TASKS:
        return manager.load([name])
    local = name in manager.overrides
    with contextlib.nullcontext(None) if local else hub_mode() as reason:
        try:
            return manager.load([name])
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 - hub, network, cache or format failures become one line
            where = manager.overrides.get(name, {}).get("dataset_kwargs", {}).get("data_files") or (
                manager.overrides.get(name, {}).get("dataset_path")
            )
            raise offline_error(name, e, str(where) if local else None, reason) from None


def check_tasks(names: list[str], manager, num_fewshot: int | None) -> dict[str, Any]:
    """Load every task once before the model, so missing or malformed data fails fast with the
    file named; returns {leaf task: number of evaluation examples}."""
    return load_tasks(names, manager, num_fewshot)["sizes"]


def load_tasks(names: list[str], manager, num_fewshot: int | None) -> dict[str, Any]:
    """Like `check_tasks`, and returns per leaf task what the run needs later: {"sizes", "dataset_kwargs",
    "max_gen_toks", "class_names", "output_type"}."""
    info: dict[str, dict] = {"sizes": {}, "dataset_kwargs": {}, "max_gen_toks": {}, "class_names": {}, "output_type": {}}
    for name in (n for n in names if n != BPB_TASK):
        loaded = _load_one(manager, name)
        for task_name, task in loaded["tasks"].items():
            info["sizes"][task_name] = len(task.eval_docs)
            info["dataset_kwargs"][task_name] = dict(task.config.dataset_kwargs or {})
            info["output_type"][task_name] = task.OUTPUT_TYPE
            meta = task.config.metadata if isinstance(task.config.metadata, dict) else {}
            if meta.get("class_names"):
                info["class_names"][task_name] = list(meta["class_names"])
            elif isinstance(task.config.doc_to_choice, list):  # lm-eval's lettered tasks: A, B, C, D
                info["class_names"][task_name] = [str(c) for c in task.config.doc_to_choice]
            if task.OUTPUT_TYPE == "generate_until":
                info["max_gen_toks"][task_name] = int((task.config.generation_kwargs or {}).get("max_gen_toks", 256))
            if num_fewshot and task_name != "persian_generation":
                try:
                    shots = task.fewshot_docs()
                except Exception:  # noqa: BLE001 - a built-in task without a few-shot split
                    shots = None
                if shots is None or len(shots) < num_fewshot:
                    have = 0 if shots is None else len(shots)
                    raise UserError(
                        f"{task_name}: {num_fewshot}-shot needs {num_fewshot} training example(s), its data has "
                        f"{have} (no train split file next to the test file?); run it zero-shot or point "
                        f"--data at a copy that has the train split"
                    )
    return info


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in (
        "persianllama",
        "lm_eval",
        "torch",
        "transformers",
        "peft",
        "bitsandbytes",
        "datasets",
        "tokenizers",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def run_bpb(model, tokenizer, config: EvalConfig, max_length: int) -> dict[str, Any]:
    """persian_bpb in lm-eval's result layout ("metric,filter" keys) plus the raw counts."""
    from persianllama.eval.bpb import evaluate_bpb
    from persianllama.eval.data import read_text_documents, resolve_text_source

    sources = resolve_text_source(config.data, config.data_dir)
    docs: list[str] = []
    for source in sources:
        docs.extend(read_text_documents(source))
    if config.limit:
        docs = docs[: config.limit]
    started = time.perf_counter()
    out = evaluate_bpb(
        model, tokenizer, docs, max_length=max_length, stride=config.bpb_stride, batch_size=config.batch_size
    )
    seconds = time.perf_counter() - started
    return {
        "alias": BPB_TASK,
        "bits_per_byte,none": out["bits_per_byte"],
        "bits_per_byte_stderr,none": "N/A",
        "word_perplexity,none": out["word_perplexity"],
        "word_perplexity_stderr,none": "N/A",
        "byte_perplexity,none": 2 ** out["bits_per_byte"],
        "byte_perplexity_stderr,none": "N/A",
        "bpb_details": {**out, "sources": sources, "seconds": seconds},
    }


def evaluate(config: EvalConfig) -> dict[str, Any]:
    """Run the evaluation described by `config` and write its outputs; returns results.json's content."""
    if not config.model:
        raise UserError("--model is required (a checkpoint folder or hub id)")
    if not config.output:
        raise UserError("--output DIR is required")
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    manager = task_manager(config.data, config.data_dir, builtin=builtin_names(config.tasks))
    names = expand_tasks(config.tasks, manager)
    info = load_tasks(names, manager, config.num_fewshot)
    sizes = info["sizes"]
    if BPB_TASK in names:  # fail on missing held-out text before loading the model, too
        from persianllama.eval.data import is_hub_id, resolve_text_source

        for source in resolve_text_source(config.data, config.data_dir):
            if not (os.path.exists(os.path.expanduser(source)) or is_hub_id(source)):
                raise UserError(f"{source}: no such file or directory (held-out text for {BPB_TASK})")

    from persianllama.eval.loading import load_model

    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    loaded = load_model(
        config.model,
        adapter=config.adapter,
        tokenizer=config.tokenizer,
        load_in_8bit=config.load_in_8bit,
        dtype=config.dtype,
        device=config.device,
    )
    load_seconds = time.perf_counter() - t0
    if config.apply_chat_template and not getattr(loaded.tokenizer, "chat_template", None):
        raise UserError(
            f"--apply-chat-template: tokenizer {loaded.info['tokenizer']} has no chat template "
            "(chat_template in tokenizer_config.json or chat_template.jinja); evaluate a chat model, "
            "pass --tokenizer with one, or drop the flag"
        )
    generation_chat = (generation_uses_chat_template(config, loaded.tokenizer, loaded.info["tokenizer"])
                       if GENERATION_TASK in names else config.apply_chat_template)

    from lm_eval import simple_evaluate

    from persianllama.eval.analysis import counting_hflm_class

    lm = counting_hflm_class()(
        pretrained=loaded.model,
        tokenizer=loaded.tokenizer,
        batch_size=config.batch_size,
        max_length=config.max_length,
    )
    max_length = lm.max_length
    for task_name, gen in info["max_gen_toks"].items():
        gen = config.max_gen_tokens or gen
        if gen >= max_length:
            raise UserError(
                f"{task_name} generates up to {gen} tokens, which leaves no room for its prompt in a "
                f"{max_length}-token context; raise --max-length or lower max_gen_tokens"
            )
    timings: dict[str, float] = {"load_model": load_seconds}

    results: dict[str, Any] = {
        "results": {},
        "groups": {},
        "group_subtasks": {},
        "configs": {},
        "versions": {},
        "n-shot": {},
        "higher_is_better": {},
        "n-samples": {},
    }
    samples: dict[str, list] = {}
    if BPB_TASK in names:
        t0 = time.perf_counter()
        bpb = run_bpb(loaded.model, loaded.tokenizer, config, max_length)
        timings[BPB_TASK] = time.perf_counter() - t0
        results["results"][BPB_TASK] = bpb
        results["higher_is_better"][BPB_TASK] = {
            "bits_per_byte": False,
            "word_perplexity": False,
            "byte_perplexity": False,
        }
        results["n-samples"][BPB_TASK] = {
            "original": bpb["bpb_details"]["documents"],
            "effective": bpb["bpb_details"]["documents"],
        }
        results["n-shot"][BPB_TASK] = 0

    lm_names = [n for n in names if n != BPB_TASK]
    # One lm-eval run per prompt format: persian_generation goes on its own when its format (generation_template)
    # differs from the other tasks' (apply_chat_template), e.g. a chat model's answers next to plain cloze tasks.
    chat_runs: list[tuple[list[str], bool]] = []
    if GENERATION_TASK in lm_names and generation_chat != config.apply_chat_template:
        rest = [n for n in lm_names if n != GENERATION_TASK]
        chat_runs = [(rest, config.apply_chat_template)] if rest else []
        chat_runs.append(([GENERATION_TASK], generation_chat))
    elif lm_names:
        chat_runs = [(lm_names, config.apply_chat_template)]
    if chat_runs:
        gen_kwargs = {"max_gen_toks": config.max_gen_tokens} if config.max_gen_tokens else None
        t0 = time.perf_counter()
        from persianllama.eval.builtin import hub_mode

        from_hub = [n for n in builtin_names(lm_names) if n not in manager.overrides]
        for run_names, chat in chat_runs:
            multiturn = chat and (True if config.fewshot_as_multiturn is None else config.fewshot_as_multiturn)
            with hub_mode() if from_hub else contextlib.nullcontext():  # read at once from the cache when offline
                out = simple_evaluate(
                    model=lm,
                    tasks=run_names,
                    num_fewshot=config.num_fewshot,
                    limit=config.limit,
                    task_manager=manager,
                    log_samples=True,
                    bootstrap_iters=config.bootstrap_iters,
                    gen_kwargs=gen_kwargs,
                    apply_chat_template=chat,
                    system_instruction=config.system_prompt,
                    fewshot_as_multiturn=bool(multiturn),
                    random_seed=config.seed,
                    numpy_random_seed=config.seed,
                    torch_random_seed=config.seed,
                    fewshot_random_seed=config.seed,
                )
            samples.update(out.pop("samples", {}) or {})
            for key in (
                "results",
                "groups",
                "group_subtasks",
                "configs",
                "versions",
                "n-shot",
                "higher_is_better",
                "n-samples",
            ):
                results[key].update(out.get(key) or {})
            for key in ("config", "git_hash", "date", "total_evaluation_time_seconds"):
                if key in out and key not in results:
                    results[key] = out[key]
        timings["lm_eval"] = time.perf_counter() - t0

    n_examples = sum(v.get("effective", 0) for v in results["n-samples"].values())
    eval_seconds = sum(v for k, v in timings.items() if k != "load_model")
    leaf_tasks = list(info["sizes"])
    results["persianllama"] = {
        "model": config.model,
        "adapter": config.adapter,
        "tokenizer": loaded.info["tokenizer"],
        "load_in_8bit": config.load_in_8bit,
        "label": label_for(config),
        "tasks": names,
        "num_fewshot": config.num_fewshot or 0,
        "limit": config.limit,
        "max_length": max_length,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "apply_chat_template": config.apply_chat_template,
        "generation_template": config.generation_template,
        "generation_chat_template": generation_chat if GENERATION_TASK in lm_names else None,
        "system_prompt": config.system_prompt,
        "data_dir": config.data_dir or os.environ.get("PERSIANLLAMA_EVAL_DATA"),
        "data": config.data,
        "task_sizes": sizes,
        "model_info": loaded.info,
        "started": started_at.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": timings,
        "examples": n_examples,
        "examples_per_second": n_examples / eval_seconds if eval_seconds else None,
        **_analyse(results, samples, lm, info, config, leaf_tasks, max_length),
        "versions": versions(),
        "platform": platform.platform(),
    }

    from persianllama.eval.report import write_outputs

    write_outputs(results, samples, Path(config.output), report_samples=config.report_samples)
    return results


def generation_uses_chat_template(config: EvalConfig, tokenizer, tokenizer_name: str) -> bool:
    """Whether persian_generation's prompts go through the chat template (`generation_template`): auto: when the
    tokenizer has one, so a chat model answers the prompts in the format it was tuned on and a base model
    continues them as before."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if config.generation_template == "chat" and not has_template:
        raise UserError(
            f"generation_template=chat: tokenizer {tokenizer_name} has no chat template; evaluate a chat model, "
            "pass --tokenizer with one, or use generation_template=auto"
        )
    if config.generation_template == "auto":
        return has_template
    return config.generation_template == "chat"


def _analyse(results, samples, lm, info, config: EvalConfig, leaf_tasks: list[str], max_length: int) -> dict:
    """The caveats, per-class F1 and baselines blocks of results.json's "persianllama" section."""
    from persianllama.eval import analysis
    from persianllama.eval.tasks.utils import dropped_rows

    n_prompts = {t: (results["n-samples"].get(t) or {}).get("effective", 0) for t in leaf_tasks}
    dropped = {
        t: dropped_rows(info["dataset_kwargs"].get(t), config.data, config.data_dir) for t in leaf_tasks
    }
    caveats = analysis.caveats(leaf_tasks, n_prompts, lm.truncated, dropped, max_length)
    classification, baselines = {}, {}
    for task in leaf_tasks:
        rows = samples.get(task) or []
        names = info["class_names"].get(task)
        report = analysis.classification(rows, names, config.bootstrap_iters, config.seed)
        if report:
            classification[task] = report
        base = analysis.baselines(rows, names) if rows else None
        if base:
            baselines[task] = base
    groups = results.get("group_subtasks") or {}
    for _ in range(len(groups)):  # nested groups: a group's children may be groups done in a later pass
        for group, children in groups.items():
            sizes = {c: n_prompts.get(c) or sum(n_prompts.get(x, 0) for x in groups.get(c, [])) for c in children}
            parts = [(sizes[c], baselines.get(c)) for c in children]
            if group not in baselines and children and all(b for _, b in parts):
                merged = analysis.group_baselines(parts)
                if merged:
                    baselines[group] = merged
    return {"caveats": caveats, "classification": classification, "baselines": baselines}


def label_for(config: EvalConfig) -> str:
    """Short name for tables and charts: the model folder name (+ adapter, + 8-bit)."""
    if config.label:
        return config.label
    label = Path(config.model.rstrip("/")).name or config.model
    if config.adapter:
        label += " + " + Path(config.adapter.rstrip("/")).name
    if config.load_in_8bit:
        label += " (8-bit)"
    return label
