"""Sequence-level KD (Kim & Rush 2016): the teacher writes text, the student learns it with plain CE.

The teacher reads the first `kd.sequence_prompt_tokens` of its own tokens of `kd.sequence_prompts` training
documents (never a held-out one: the split is the packer's, by document hash) and continues each by
`kd.sequence_new_tokens`. The texts go to OUT/teacher_corpus/data/teacher.parquet, a corpus folder like the
corpus builder's, which the student's pretraining reads (with the original corpus unless
kd.sequence_keep_corpus=false). Nothing here depends on the two vocabularies: any teacher can teach any student.
A finished teacher corpus is reused when the command runs again (resume).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

from persianllama.atomic import atomic_path, write_json, write_text
from persianllama.distill.config import DistillConfig
from persianllama.errors import UserError

log = logging.getLogger("persianllama.distill")


def training_documents(cfg: DistillConfig, limit: int) -> list[str]:
    from persianllama.data.packing import is_held_out
    from persianllama.data.sources import find_corpus_files, iter_piece, plan_pieces

    docs: list[str] = []
    for piece in plan_pieces(find_corpus_files(list(cfg.data.corpus)), cfg.data.text_column):
        for texts in iter_piece(piece, text_column=cfg.data.text_column, txt_document=cfg.data.txt_document):
            docs.extend(t for t in texts if not is_held_out(t, cfg.data.val_fraction))
            if len(docs) >= limit:
                return docs[:limit]
    return docs


def generate(teacher, prompts: list[list[int]], *, new_tokens: int, sample: bool, temperature: float, seed: int,
             batch_size: int, what: str) -> list[list[int]]:
    """The teacher's new tokens after each prompt (its own token ids), in batches with left padding."""
    import torch

    tok = teacher.tokenizer
    torch.manual_seed(seed)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    written: list[list[int]] = []
    start = time.perf_counter()
    for lo in range(0, len(prompts), batch_size):
        enc = prompts[lo:lo + batch_size]
        n = max(len(e) for e in enc)
        ids = torch.full((len(enc), n), pad, dtype=torch.long)
        mask = torch.zeros((len(enc), n), dtype=torch.long)
        for i, e in enumerate(enc):  # left padding: every row continues from its last real token
            ids[i, n - len(e):] = torch.tensor(e)
            mask[i, n - len(e):] = 1
        with torch.no_grad():
            out = teacher.model.generate(input_ids=ids.to(teacher.device), attention_mask=mask.to(teacher.device),
                                         max_new_tokens=new_tokens, do_sample=sample,
                                         temperature=temperature if sample else None, top_p=None, top_k=None,
                                         pad_token_id=pad)
        written += [row[n:].tolist() for row in out]
        log.info("teacher %s %d/%d (%.1f s)", what, len(written), len(prompts), time.perf_counter() - start)
    return written


def _reusable(meta_file: Path, key: dict) -> bool:
    """Whether the teacher's output described by `meta_file` was written for exactly these settings."""
    return meta_file.is_file() and json.loads(meta_file.read_text(encoding="utf-8")).get("key") == key


def teacher_corpus(cfg: DistillConfig, teacher_box: dict) -> DistillConfig:
    """Write (or find) the teacher's corpus and return the settings that pretrain the student on it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from persianllama.distill.teacher import fingerprint, load_teacher
    from persianllama.run.device import device_type

    root = Path(cfg.out_dir) / "teacher_corpus"
    meta_file = root / "meta.json"
    key = {"teacher": fingerprint(cfg.teacher), "prompts": cfg.kd.sequence_prompts,
           "prompt_tokens": cfg.kd.sequence_prompt_tokens, "new_tokens": cfg.kd.sequence_new_tokens,
           "sample": cfg.kd.sequence_sample, "temperature": cfg.kd.temperature, "corpus": list(cfg.data.corpus)}
    if not _reusable(meta_file, key):
        docs = training_documents(cfg, cfg.kd.sequence_prompts)
        if not docs:
            raise UserError(f"kd.mode=sequence: no training documents in {', '.join(cfg.data.corpus)} to prompt "
                            "the teacher with")
        teacher = load_teacher(cfg.teacher, device_type())
        teacher_box["teacher"] = teacher
        tok = teacher.tokenizer
        prompts = [tok(d, add_special_tokens=True)["input_ids"][:cfg.kd.sequence_prompt_tokens] for d in docs]
        new = generate(teacher, prompts, new_tokens=cfg.kd.sequence_new_tokens, sample=cfg.kd.sequence_sample,
                       temperature=cfg.kd.temperature, seed=cfg.train.seed, batch_size=cfg.teacher.batch_size,
                       what="wrote")
        texts = [tok.decode(p + w, skip_special_tokens=True).strip() for p, w in zip(prompts, new)]
        texts = [t for t in texts if t]
        with atomic_path(root / "data" / "teacher.parquet") as tmp:
            pq.write_table(pa.table({"text": texts, "id": [f"teacher-{i}" for i in range(len(texts))]}), tmp)
        write_json(meta_file, {"key": key, "texts": len(texts)})
        log.info("teacher corpus: %d texts in %s", len(texts), root)
    corpus = [str(root)] + (list(cfg.data.corpus) if cfg.kd.sequence_keep_corpus else [])
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, corpus=corpus))


# --- instruction data: the teacher answers, the SFT track tunes the student ---------------------------------------


def teacher_answers(cfg: DistillConfig, teacher_box: dict) -> Path:
    """OUT/teacher_answers.jsonl: every conversation of kd.instructions up to its last user turn, answered by the
    teacher through its own chat template (greedy unless kd.sequence_sample). Reused when it exists for the
    same teacher and settings."""
    from persianllama.distill.teacher import fingerprint, load_teacher
    from persianllama.run.device import device_type
    from persianllama.sft.data import read_conversations

    out = Path(cfg.out_dir)
    answers = out / "teacher_answers.jsonl"
    meta_file = out / "teacher_answers.json"
    key = {"teacher": fingerprint(cfg.teacher), "data": list(cfg.kd.instructions), "prompts": cfg.kd.sequence_prompts,
           "new_tokens": cfg.kd.sequence_new_tokens, "sample": cfg.kd.sequence_sample, "temperature": cfg.kd.temperature}
    if answers.is_file() and _reusable(meta_file, key):
        log.info("teacher answers found: %s", answers)
        return answers
    convs, report = read_conversations(list(cfg.kd.instructions), normalize=True)
    convs = convs[:cfg.kd.sequence_prompts]
    teacher = load_teacher(cfg.teacher, device_type())
    teacher_box["teacher"] = teacher
    tok = teacher.tokenizer
    if not getattr(tok, "chat_template", None):
        raise UserError(f"kd.instructions: the teacher's tokenizer ({teacher.info['tokenizer']}) has no chat template, "
                        "so it cannot be asked questions the way it was tuned; use an instruction-tuned teacher (an "
                        "SFT adapter: --teacher BASE --teacher-adapter runs/sft/adapter)")
    questions = []
    for conv in convs:  # each conversation up to its last user turn
        last_user = max(i for i, m in enumerate(conv.messages) if m["role"] == "user")
        questions.append(conv.messages[:last_user + 1])
    prompts = [list(tok.apply_chat_template(q, add_generation_prompt=True, tokenize=True, return_dict=True)
                    ["input_ids"]) for q in questions]
    new = generate(teacher, prompts, new_tokens=cfg.kd.sequence_new_tokens, sample=cfg.kd.sequence_sample,
                   temperature=cfg.kd.temperature, seed=cfg.train.seed, batch_size=cfg.teacher.batch_size,
                   what="answered")
    rows = []
    for conv, question, tokens in zip(convs, questions, new):
        answer = tok.decode(tokens, skip_special_tokens=True).strip()
        if answer:
            rows.append({"messages": [*question, {"role": "assistant", "content": answer}], "source": conv.source})
    if not rows:
        raise UserError("kd.instructions: the teacher gave an empty answer to every prompt")
    write_text(answers, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    write_json(meta_file, {"key": key, "answers": len(rows), "read": report.to_dict()})
    return answers


def tune_on_answers(cfg: DistillConfig, teacher_box: dict) -> int:
    """The student's instruction tuning on the teacher's answers: a `persianllama sft` run in OUT."""
    from persianllama import config as configlib
    from persianllama.sft.config import SftConfig
    from persianllama.sft.train import run as sft_run

    if not cfg.model.init_from:
        raise UserError("kd.instructions: the student must be a model to tune: pass --student MODEL")
    answers = teacher_answers(cfg, teacher_box)
    teacher_box.pop("teacher", None)  # the teacher's memory goes back before the student loads
    recipe = configlib.read_recipe(cfg.kd.sft_recipe) if cfg.kd.sft_recipe else {}
    flags = configlib.flags_to_settings({"out_dir": cfg.out_dir, "model.base": cfg.model.init_from,
                                         "model.tokenizer": cfg.tokenizer or None, "data.files": [str(answers)],
                                         "checkpoint.resume": cfg.checkpoint.resume})
    sft_cfg = configlib.from_dict(SftConfig, configlib.merge(configlib.merge(recipe, flags),
                                                             configlib.parse_overrides(list(cfg.kd.sft_settings))))
    summary = sft_run(sft_cfg)
    return int(summary.get("exit_code") or 0)
