"""Bad-input rows of the distillation track: `persianllama distill`."""

from __future__ import annotations

from pathlib import Path

from tests.bad_input.runner import Case, shared_assets, tiny_base


def _inputs(tmp: Path) -> dict:
    a = shared_assets()
    (tmp / "empty").mkdir()
    return {"teacher": tiny_base(), "tok": a["tok"], "corpus": a["corpus"]}


def _nothing_written(tmp: Path, result) -> None:
    assert not (tmp / "run" / "checkpoints").exists() and not (tmp / "run" / "hf").exists()


def distill(id: str, extra: list[str], words: list[str], teacher: list[str] | None = None, exit: int = 2,
            student: list[str] | None = None) -> Case:
    flags = ["--teacher", "{teacher}"] if teacher is None else teacher
    student = ["--student-config", "{repo}/configs/tiny.yaml"] if student is None else student
    return Case(f"distill-{id}", ["distill", *flags, *student, "--tokenizer",
                                  "{tok}", "--corpus", "{corpus}", "--output", "{tmp}/run", "train.max_steps=1",
                                  "train.seq_len=32", "train.micro_batch_size=2", "log.progress_bar=false",
                                  "data.cache_dir={tmp}/cache", *extra],
                exit=exit, words=words, setup=_inputs, check=_nothing_written)


CASES = [
    distill("no-teacher", [], ["--teacher"], teacher=[]),
    distill("teacher-missing", [], ["nope"], teacher=["--teacher", "{tmp}/nope"]),
    distill("teacher-not-a-model", [], ["empty"], teacher=["--teacher", "{tmp}/empty"]),
    distill("adapter-missing", [], ["adapter"], teacher=["--teacher", "{teacher}", "--teacher-adapter", "{tmp}/nope"]),
    distill("alpha-above-one", ["kd.alpha=1.5"], ["kd.alpha", "[0, 1]"]),
    distill("temperature-zero", ["kd.temperature=0"], ["kd.temperature", "> 0"]),
    distill("temperature-nan", ["kd.temperature=nan"], ["kd.temperature"]),
    distill("unknown-loss", ["kd.loss=kl"], ["kd.loss", "forward_kl"]),
    distill("unknown-mode", ["kd.mode=online"], ["kd.mode", "logits"]),
    distill("topk-negative", ["kd.top_k=-1"], ["kd.top_k"]),
    distill("topk-with-uld", ["kd.top_k=4", "kd.loss=uld"], ["kd.top_k", "uld"]),
    distill("topk-with-sequence", ["kd.top_k=4", "kd.mode=sequence"], ["kd.top_k", "sequence"]),
    distill("unknown-setting", ["kd.alhpa=0.5"], ["kd.alhpa"]),
    distill("student-and-config", [], ["--student"],
            teacher=["--teacher", "{teacher}", "--student", "{teacher}"]),
    distill("student-missing", [], ["model.init_from", "no-student"], student=["--student", "{tmp}/no-student"]),
    distill("instructions-without-sequence", ["kd.instructions=[{tmp}/chats.jsonl]", "kd.mode=logits"],
            ["kd.instructions", "kd.mode=sequence"]),
    distill("corpus-missing", ["data.corpus=[{tmp}/no-corpus]"], ["no-corpus"]),
    distill("teacher-precision-fp16", ["teacher.precision=fp16"], ["teacher.precision"]),
]
