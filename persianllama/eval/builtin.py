"""lm-eval 0.4.13's own Persian tasks, selectable by name next to ours (``--tasks
belebele_pes_Arab,global_mmlu_full_fa,parsinlu_mc``).

Their YAMLs stay lm-eval's (indexed from lm-eval's installed task folders, only the folders asked
for: indexing all ~230 of them costs seconds). Their data comes from the hub, like under plain
lm_eval; offline, or without the hub, it is one line naming the data set and the local-copy flag:

    --data belebele_pes_Arab=DIR      # a snapshot of the hub repository (hf download ... --local-dir DIR)
    --data belebele_pes_Arab=FILE     # one Parquet / JSONL / CSV file: the test split
    --data global_mmlu_full_fa=DIR    # a folder of split files: DIR/fa/test-*.parquet, DIR/fa/dev-*.parquet

A local copy replaces the task's ``dataset_path`` (and, for plain files, its ``data_files``) in the
task config before lm-eval builds it (`PersianTaskManager`); the prompts and metrics are unchanged.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from persianllama.errors import UserError


@dataclass(frozen=True)
class BuiltinTask:
    name: str
    folder: str
    """lm-eval's task folder (under lm_eval/tasks) that defines it."""
    hub: str
    config: str | None
    test_split: str
    fewshot_split: str | None
    family: str
    main_metric: str
    what: str

    def source(self) -> str:
        return f"hub {self.hub}" + (f", config {self.config}" if self.config else "")


# Checked against lm-eval's YAMLs by tests/eval/test_eval_builtin.py.
BUILTIN_TASKS: dict[str, BuiltinTask] = {
    t.name: t
    for t in [
        BuiltinTask(
            "belebele_pes_Arab",
            "belebele",
            "facebook/belebele",
            "pes_Arab",
            "test",
            "test",
            "reading comprehension",
            "acc",
            "Belebele: FLORES passages with 4-option questions (English prompt frame, letter scored by log-likelihood)",
        ),
        BuiltinTask(
            "global_mmlu_full_fa",
            "global_mmlu/full/fa",
            "CohereForAI/Global-MMLU",
            "fa",
            "test",
            "dev",
            "multiple-choice QA",
            "acc",
            "Global-MMLU Persian: MMLU translated and culturally checked, 57 subjects (group)",
        ),
        BuiltinTask(
            "include_base_44_persian",
            "include/default/Persian",
            "CohereForAI/include-base-44",
            "Persian",
            "test",
            None,
            "multiple-choice QA",
            "acc",
            "INCLUDE: Iranian exam questions (driving licence, professional, STEM, humanities...) (group)",
        ),
        BuiltinTask(
            "global_piqa_parallel_cloze_pes_arab",
            "global_piqa/parallel_cloze",
            "mrlbenchmarks/global-piqa-parallel",
            "pes_arab",
            "test",
            None,
            "commonsense",
            "acc",
            "Global PIQA (parallel): physical commonsense, 4 solutions scored as continuations",
        ),
        BuiltinTask(
            "global_piqa_nonparallel_cloze_pes_arab",
            "global_piqa/nonparallel_cloze",
            "mrlbenchmarks/global-piqa-nonparallel",
            "pes_arab",
            "test",
            None,
            "commonsense",
            "acc",
            "Global PIQA (non-parallel, written in Persian): 2 solutions scored as continuations",
        ),
        BuiltinTask(
            "global_piqa_parallel_generation_pes_arab",
            "global_piqa/parallel_generation",
            "mrlbenchmarks/global-piqa-parallel",
            "pes_arab",
            "test",
            None,
            "commonsense",
            "exact_match",
            "Global PIQA (parallel), generative: sampled answer up to 2048 tokens, letter by regex",
        ),
        BuiltinTask(
            "global_piqa_nonparallel_generation_pes_arab",
            "global_piqa/nonparallel_generation",
            "mrlbenchmarks/global-piqa-nonparallel",
            "pes_arab",
            "test",
            None,
            "commonsense",
            "exact_match",
            "Global PIQA (non-parallel), generative: sampled answer up to 2048 tokens, letter by regex",
        ),
        BuiltinTask(
            "bigbench_persian_idioms_multiple_choice",
            "bigbench/multiple_choice",
            "hails/bigbench",
            "persian_idioms_zero_shot",
            "default",
            None,
            "idioms",
            "acc",
            "BIG-bench Persian idioms: the meaning of an idiom among choices",
        ),
        BuiltinTask(
            "bigbench_persian_idioms_generate_until",
            "bigbench/generate_until",
            "hails/bigbench",
            "persian_idioms_zero_shot",
            "default",
            None,
            "idioms",
            "exact_match",
            "BIG-bench Persian idioms, generative: exact match of the generated meaning",
        ),
    ]
}


def lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).resolve().parent


def folders_for(names: list[str] | None) -> list[Path]:
    """lm-eval task folders to index: those defining `names` (every built-in Persian task if None)."""
    wanted = (
        BUILTIN_TASKS.values() if names is None else [BUILTIN_TASKS[n] for n in names if n in BUILTIN_TASKS]
    )
    root = lm_eval_tasks_dir()
    out: list[Path] = []
    for task in wanted:
        path = root / task.folder
        if path not in out:
            out.append(path)
    return out


_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}


def _builder(path: Path) -> str | None:
    return next((b for ext, b in _BUILDERS.items() if path.name.lower().endswith(ext)), None)


def local_override(name: str, source: str) -> dict[str, Any]:
    """Task-config overrides that make built-in task `name` read its data from the local `source`."""
    task = BUILTIN_TASKS[name]
    path = Path(source).expanduser()
    if not path.exists():
        raise UserError(f"--data {name}={source}: no such file or directory (local copy of {task.source()})")
    if path.is_file():
        builder = _builder(path)
        if builder is None:
            raise UserError(
                f"--data {name}={source}: expected a .parquet, .jsonl, .json or .csv file of the "
                f"{task.test_split} split, or a folder"
            )
        return {
            "dataset_path": builder,
            "dataset_name": None,
            "dataset_kwargs": {"data_files": {task.test_split: str(path)}},
        }
    if (path / "README.md").is_file() or (path / "dataset_infos.json").is_file():
        # A snapshot of the hub repository: `datasets` reads its configs (task.config) from README.md.
        return {"dataset_path": str(path)}
    folder = path / task.config if task.config and (path / task.config).is_dir() else path
    splits = [s for s in (task.test_split, task.fewshot_split) if s]
    data_files: dict[str, list[str]] = {}
    builders = set()
    for split in dict.fromkeys(splits):
        files = sorted(
            str(p) for p in folder.rglob("*") if p.is_file() and _builder(p) and p.name.startswith(split)
        )
        if files:
            data_files[split] = files
            builders.update(_builder(Path(f)) for f in files)
    if task.test_split not in data_files:
        raise UserError(
            f"--data {name}={source}: no {task.test_split}*.parquet/.jsonl/.csv file in {folder} "
            f"(expected the upstream layout of {task.hub}, or a README.md snapshot of it)"
        )
    if len(builders) > 1:
        raise UserError(f"--data {name}={source}: split files of different formats ({sorted(builders)})")
    return {
        "dataset_path": builders.pop(),
        "dataset_name": None,
        "dataset_kwargs": {"data_files": data_files},
    }


def offline_error(
    name: str, error: BaseException, local: str | None = None, reason: str | None = None
) -> UserError:
    """One line for a built-in task whose data could not be loaded."""
    task = BUILTIN_TASKS[name]
    detail = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
    if local:
        return UserError(f"{name}: cannot read the local copy {local} ({detail[:300]})")
    why = (
        f"offline ({reason}) and not in the Hugging Face cache"
        if reason
        else f"not reachable? ({detail[:200]})"
    )
    return UserError(
        f"{name}: its data ({task.source()}) cannot be loaded - {why}; "
        f"fetch it once with `hf download {task.hub} --repo-type dataset --local-dir DIR` and pass "
        f"--data {name}=DIR"
    )


@contextlib.contextmanager
def hub_mode() -> Iterator[str | None]:
    """Around building a built-in task from the hub: when the hub cannot be asked (HF_HUB_OFFLINE or
    HF_DATASETS_OFFLINE set, or its host unreachable: `persianllama.hub.offline_reason`), tell the hub
    client and `datasets` so for this call, so a cached copy is read at once and a missing one fails at
    once instead of after ~25 s of retries (both libraries read the variables only when imported).
    Yields the reason, or None when online."""
    from persianllama import hub

    reason = hub.offline_reason()
    if not reason and os.environ.get("HF_DATASETS_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE"):
        reason = f"HF_DATASETS_OFFLINE={os.environ['HF_DATASETS_OFFLINE'].strip()} is set"
    if not reason:
        yield None
        return
    import datasets.config
    from huggingface_hub import constants

    before = (constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE)
    constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = True
    try:
        yield reason
    finally:
        constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE = before
