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

from persianllama.distill.config import DistillConfig
from persianllama.errors import UserError

log = logging.getLogger("persianllama.distill")


def training_documents(cfg: DistillConfig, limit: int) -> list[str]:
    from persianllama.data.packing import doc_hash
    from persianllama.data.sources import find_corpus_files, iter_piece, plan_pieces

    threshold = int(cfg.data.val_fraction * 2**64)
    docs: list[str] = []
    for piece in plan_pieces(find_corpus_files(list(cfg.data.corpus)), cfg.data.text_column):
        for texts in iter_piece(piece, text_column=cfg.data.text_column, txt_document=cfg.data.txt_document):
            docs.extend(t for t in texts if not (threshold and doc_hash(t) < threshold))
            if len(docs) >= limit:
                return docs[:limit]
    return docs


def generate(teacher, prompts: list[str], *, prompt_tokens: int, new_tokens: int, sample: bool, temperature: float,
             seed: int, batch_size: int) -> list[str]:
    """The teacher's continuation of each prompt, decoded with its own tokenizer (prompt included)."""
    import torch

    tok = teacher.tokenizer
    torch.manual_seed(seed)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    texts: list[str] = []
    start = time.perf_counter()
    for lo in range(0, len(prompts), batch_size):
        enc = [tok(p, add_special_tokens=True)["input_ids"][:prompt_tokens] for p in prompts[lo:lo + batch_size]]
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
        for row in out:
            texts.append(tok.decode(row, skip_special_tokens=True).strip())
        log.info("teacher wrote %d/%d texts (%.1f s)", len(texts), len(prompts), time.perf_counter() - start)
    return texts


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
    found = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else None
    if found is None or found.get("key") != key:
        docs = training_documents(cfg, cfg.kd.sequence_prompts)
        if not docs:
            raise UserError(f"kd.mode=sequence: no training documents in {', '.join(cfg.data.corpus)} to prompt "
                            "the teacher with")
        teacher = load_teacher(cfg.teacher, device_type())
        teacher_box["teacher"] = teacher
        texts = generate(teacher, docs, prompt_tokens=cfg.kd.sequence_prompt_tokens,
                         new_tokens=cfg.kd.sequence_new_tokens, sample=cfg.kd.sequence_sample,
                         temperature=cfg.kd.temperature, seed=cfg.train.seed, batch_size=cfg.teacher.batch_size)
        texts = [t for t in texts if t]
        (root / "data").mkdir(parents=True, exist_ok=True)
        tmp = root / "data" / "teacher.parquet.tmp"
        pq.write_table(pa.table({"text": texts, "id": [f"teacher-{i}" for i in range(len(texts))]}), tmp)
        tmp.replace(root / "data" / "teacher.parquet")
        meta_file.write_text(json.dumps({"key": key, "texts": len(texts)}, indent=2) + "\n", encoding="utf-8")
        log.info("teacher corpus: %d texts in %s", len(texts), root)
    corpus = [str(root)] + (list(cfg.data.corpus) if cfg.kd.sequence_keep_corpus else [])
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, corpus=corpus))


# --- instruction data: the teacher answers, the SFT track tunes the student ---------------------------------------


def teacher_answers(cfg: DistillConfig, teacher_box: dict) -> Path:
    """OUT/teacher_answers.jsonl: every conversation of kd.instructions up to its last user turn, answered by the
    teacher through its own chat template (greedy unless kd.sequence_sample). Reused when it exists for the
    same teacher and settings."""
    import torch

    from persianllama.distill.teacher import fingerprint, load_teacher
    from persianllama.run.device import device_type
    from persianllama.sft.data import read_conversations

    out = Path(cfg.out_dir)
    answers = out / "teacher_answers.jsonl"
    meta_file = out / "teacher_answers.json"
    key = {"teacher": fingerprint(cfg.teacher), "data": list(cfg.kd.instructions), "prompts": cfg.kd.sequence_prompts,
           "new_tokens":
           cfg.kd.sequence_new_tokens, "sample": cfg.kd.sequence_sample, "temperature": cfg.kd.temperature}
    if answers.is_file() and meta_file.is_file() and json.loads(meta_file.read_text(encoding="utf-8")).get("key") == key:
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
    torch.manual_seed(cfg.train.seed)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out.mkdir(parents=True, exist_ok=True)
    rows, start = [], time.perf_counter()
    for n, conv in enumerate(convs):
        last_user = max(i for i, m in enumerate(conv.messages) if m["role"] == "user")
        prompt = conv.messages[:last_user + 1]
        ids = tok.apply_chat_template(prompt, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            gen = teacher.model.generate(**{k: v.to(teacher.device) for k, v in ids.items()},
                                         max_new_tokens=cfg.kd.sequence_new_tokens, do_sample=cfg.kd.sequence_sample,
                                         temperature=cfg.kd.temperature if cfg.kd.sequence_sample else None,
                                         top_p=None, top_k=None, pad_token_id=pad)
        answer = tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        if answer:
            rows.append({"messages": [*prompt, {"role": "assistant", "content": answer}], "source": conv.source})
        if (n + 1) % 50 == 0 or n + 1 == len(convs):
            log.info("teacher answered %d/%d prompts (%.1f s)", n + 1, len(convs), time.perf_counter() - start)
    if not rows:
        raise UserError("kd.instructions: the teacher gave an empty answer to every prompt")
    tmp = answers.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(answers)
    meta_file.write_text(json.dumps({"key": key, "answers": len(rows), "read": report.to_dict()}, indent=2,
                                    ensure_ascii=False) + "\n", encoding="utf-8")
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
