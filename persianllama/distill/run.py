"""`persianllama distill`, top to bottom: the student's pretraining run (the Zero track's, on the run core) with the
teacher's term added to its loss.

1. settings checked, teacher and student tokenizers compared (same vocabulary: forward_kl/reverse_kl/jsd; different:
   uld, after both tokenizers are shown to spell the normalized text back byte for byte);
2. kd.mode=sequence: the teacher writes continuations of the corpus's documents (OUT/teacher_corpus), which become
   (part of) the student's corpus, and the student is pretrained on them with plain CE;
3. kd.mode=logits: `persianllama.train.pretrain.run_config` with an `Extension` whose loss is
   (1 - alpha) * CE + alpha * T^2 * D: the teacher runs online, or its top-k log-probs come from the cache
   (filled once, before the first step);
4. OUT/hf (the student, its tokenizer, a card naming the teacher, loss, alpha, T) and OUT/distill_summary.json with
   the student's held-out bits per byte and its KL to the teacher (same vocabulary).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import numpy as np

from persianllama import config as configlib
from persianllama.atomic import write_json, write_text
from persianllama.distill.config import DistillConfig
from persianllama.errors import UserError

log = logging.getLogger("persianllama.distill")


def same_vocabulary(student_tok, teacher_tok) -> bool:
    from persianllama.data.packing import tokenizer_fingerprint

    return tokenizer_fingerprint(student_tok) == tokenizer_fingerprint(teacher_tok)


def check_settings(cfg: DistillConfig) -> None:
    if not cfg.teacher.model and cfg.kd.alpha > 0:
        raise UserError("no teacher: pass --teacher MODEL (an HF directory or hub id)")
    if cfg.kd.mode == "sequence" and cfg.kd.top_k:
        raise UserError("kd.top_k is for kd.mode=logits; kd.mode=sequence trains on the teacher's texts")
    if cfg.kd.alpha > 0 or cfg.kd.mode == "sequence":  # named now, not after the corpus is packed
        from persianllama import hub

        hub.check(cfg.teacher.model, "model")
        if cfg.teacher.adapter:
            hub.check(cfg.teacher.adapter, "adapter")
        if cfg.teacher.tokenizer:
            hub.check(cfg.teacher.tokenizer, "tokenizer")


def kd_settings(cfg: DistillConfig) -> dict:
    k = cfg.kd
    return {"kd.alpha": k.alpha, "kd.temperature": k.temperature, "kd.loss": k.loss, "kd.top_k": k.top_k}


# --- the loss ------------------------------------------------------------------------------------------------------


def make_loss(cfg: DistillConfig, teacher_box: dict):
    """`Extension.make_loss`: load the teacher (once), fill the cache if asked, and return the Trainer's loss_fn."""
    from persianllama.distill import losses

    kd = cfg.kd

    def build(data, student_tok, device, env):
        if kd.alpha == 0:  # plain pretraining, bit for bit: the teacher is not loaded
            def ce_only(engine, inputs):
                inputs.pop("block_index", None)
                loss = engine(**inputs).loss
                return loss, {"loss_ce": loss.detach()}
            return ce_only

        from persianllama.distill.teacher import load_teacher

        teacher = teacher_box.get("teacher") or load_teacher(cfg.teacher, device)
        teacher_box["teacher"] = teacher
        vocab = len(student_tok)
        same = same_vocabulary(student_tok, teacher.tokenizer)
        if kd.loss != "uld" and not same:
            raise UserError(f"the teacher's tokenizer ({teacher.info['tokenizer']}, {len(teacher.tokenizer)} tokens) "
                            f"is not the student's ({cfg.tokenizer}, {vocab} tokens): kd.loss={kd.loss} compares "
                            "distributions token by token; use kd.loss=uld for different vocabularies")
        if same:
            rows = teacher.model.get_output_embeddings().weight.shape[0]
            if rows < vocab:
                raise UserError(f"the teacher has {rows} output rows for a {vocab}-token vocabulary")
        if kd.loss == "uld":
            return _uld_loss(cfg, teacher, student_tok, data)
        cache = None
        if kd.top_k and kd.cache:
            cache = _filled_cache(cfg, teacher, student_tok, data, env)
        T, a = kd.temperature, kd.alpha

        def loss_fn(engine, inputs):
            blocks = inputs.pop("block_index")
            out = engine(**inputs)
            ce = out.loss
            s = out.logits[:, :-1, :vocab].reshape(-1, vocab)
            if cache is not None:
                i, v, t = cache.get(blocks.tolist())
                i, v, t = (x[:, :-1].to(s.device) for x in (i, v, t))
                kdv = losses.kd_term_topk(s, i.reshape(-1, kd.top_k), v.reshape(-1, kd.top_k), t.reshape(-1),
                                          kd.loss, T)
            else:
                t_log = losses.tempered_logprobs(teacher.logits(inputs["input_ids"])[:, :-1, :vocab], T)
                t_log = t_log.reshape(-1, vocab).to(s.device)
                if kd.top_k:
                    i, v, tail = losses.topk_buckets(t_log, kd.top_k)
                    kdv = losses.kd_term_topk(s, i, v, tail, kd.loss, T)
                else:
                    kdv = losses.kd_term(s, t_log, kd.loss, T)
            return losses.mix(ce, kdv, a), {"loss_ce": ce.detach(), "loss_kd": kdv.detach()}

        return loss_fn

    return build


def _filled_cache(cfg: DistillConfig, teacher, student_tok, data, env):
    import time

    from persianllama.data.packing import tokenizer_fingerprint
    from persianllama.distill.cache import TopKCache, cache_key
    from persianllama.distill.teacher import fingerprint

    key = cache_key(teacher=fingerprint(cfg.teacher), tokenizer=tokenizer_fingerprint(student_tok),
                    data_key=str(data.meta.get("key")), block_size=data.block_size, k=cfg.kd.top_k,
                    temperature=cfg.kd.temperature)
    cache = TopKCache(cfg.kd.cache_dir or Path(cfg.out_dir) / "teacher_cache", key, n_blocks=data.n_blocks,
                      block_size=data.block_size, k=cfg.kd.top_k)
    if env.local_rank == 0:
        cache.fill(data, teacher, cfg.kd.temperature, len(student_tok), cfg.teacher.batch_size, progress=env.rank == 0)
    else:
        while cache.missing():  # local rank 0 writes it; the launcher stops us if it fails
            time.sleep(1)
    return cache


def _uld_loss(cfg: DistillConfig, teacher, student_tok, data):
    import torch

    from persianllama.distill import align, crossvocab, losses

    kd = cfg.kd
    student_pieces, teacher_pieces = align.Pieces.of(student_tok), align.Pieces.of(teacher.tokenizer)
    sample = data.val_texts(limit=16)
    align.check_round_trip(student_tok, sample, "student")
    align.check_round_trip(teacher.tokenizer, sample, "teacher")
    s_ids, t_ids = align.shared_pieces(student_pieces, teacher_pieces)
    log.info("cross-vocabulary KD: ULD at byte-aligned positions%s (%d pieces are the same bytes in both vocabularies)",
             " + KL on shared pieces" if kd.hybrid else "", len(s_ids))
    pad = teacher.tokenizer.pad_token_id if teacher.tokenizer.pad_token_id is not None else 0
    max_len = getattr(teacher.model.config, "max_position_embeddings", None)
    vocab_s, vocab_t = len(student_tok), len(teacher.tokenizer)
    T, a = kd.temperature, kd.alpha

    def loss_fn(engine, inputs):
        inputs.pop("block_index", None)
        out = engine(**inputs)
        ce = out.loss
        ids = inputs["input_ids"].cpu().numpy()
        batch = crossvocab.plan(ids, student_pieces, teacher.tokenizer, teacher_pieces, max_len=max_len)
        parts = {"loss_ce": ce.detach(), "kd_skipped": torch.tensor(float(batch.skipped)),
                 "kd_positions": torch.tensor(float(batch.n_pairs))}
        if not batch.n_pairs:  # every rank reports the same parts each step (they are added over ranks)
            zero = torch.zeros(())
            parts |= {"loss_kd": zero, "loss_uld": zero} | ({"loss_matched_kl": zero} if kd.hybrid and len(s_ids) else {})
            return losses.mix(ce, ce * 0, a), parts
        rows = torch.as_tensor(np.concatenate(batch.student_rows))
        pos = torch.as_tensor(np.concatenate(batch.student_pos))
        s = out.logits[rows.to(out.logits.device), pos.to(out.logits.device)][:, :vocab_s]
        t = crossvocab.teacher_logits_at(teacher, batch, pad)[:, :vocab_t].to(s.device)
        kdv = losses.uld(s, t, T)
        parts["loss_uld"] = kdv.detach()
        if kd.hybrid and len(s_ids):
            m = losses.matched_kl(s, t, torch.as_tensor(s_ids, device=s.device), torch.as_tensor(t_ids, device=s.device), T)
            parts["loss_matched_kl"] = m.detach()
            kdv = kdv + m
        parts["loss_kd"] = kdv.detach()
        return losses.mix(ce, kdv, a), parts

    return loss_fn


# --- the model card and the summary --------------------------------------------------------------------------------


def card_for(cfg: DistillConfig):
    from persianllama.train.export import model_card

    def card(state: dict, config, precision: str, name: str) -> str:
        base = model_card(state, config, precision, name)
        k = cfg.kd
        teacher = cfg.teacher.model + (f" + adapter {cfg.teacher.adapter}" if cfg.teacher.adapter else "")
        lines = ["", "## Distillation", "",
                 f"A student distilled from `{teacher}` with `persianllama distill` (kd.mode={k.mode}).", ""]
        if k.mode == "logits":
            what = {"forward_kl": "KL(teacher || student)", "reverse_kl": "KL(student || teacher)",
                    "jsd": "Jensen-Shannon divergence", "uld": "ULD (sorted-probability distance) at byte-aligned "
                    "positions" + (" + KL on shared pieces" if k.hybrid else "")}[k.loss]
            lines += [f"- loss: (1 - a) * CE + a * T^2 * D with a = {k.alpha}, T = {k.temperature}, D = {what}",
                      "- teacher distribution: " + (f"top-{k.top_k} + tail mass" + (" (cached)" if k.cache else "")
                                                     if k.top_k else "full vocabulary, online")]
        else:
            lines += [f"- the teacher continued {k.sequence_prompts} documents by {k.sequence_new_tokens} tokens; "
                      "the student was pretrained on those texts" +
                      (" and the corpus" if k.sequence_keep_corpus else "")]
        return base.rstrip("\n") + "\n" + "\n".join(lines) + "\n"

    return card


def held_out_kl(student, teacher, tokenizer, texts: list[str], *, max_length: int, device: str = "cpu") -> float | None:
    """Mean KL(teacher || student) per predicted token on `texts` (same vocabulary, T = 1)."""
    import torch

    from persianllama.distill.losses import divergence

    vocab = len(tokenizer)
    total, n = 0.0, 0
    student.eval()
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)["input_ids"].to(device)
            if ids.shape[1] < 2:
                continue
            s = torch.log_softmax(student(input_ids=ids).logits[0, :-1, :vocab].float(), -1)
            t = torch.log_softmax(teacher.logits(ids)[0, :-1, :vocab].to(s.device), -1)
            total += float(divergence(s, t, "forward_kl").sum())
            n += ids.shape[1] - 1
    return total / n if n else None


def summarize(cfg: DistillConfig, teacher_box: dict) -> dict:
    """OUT/distill_summary.json: the student's held-out bits per byte, and its KL to the teacher."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from persianllama.run.metrics import read_metrics

    out = Path(cfg.out_dir)
    train, evals = read_metrics(out / "metrics.jsonl")
    last = train[max(train)] if train else {}
    summary = {"step": max(train) if train else 0, "loss": last.get("loss"), "loss_ce": last.get("loss_ce"),
               "loss_kd": last.get("loss_kd"), "val": evals[max(evals)] if evals else None,
               "kd": kd_settings(cfg) | {"kd.mode": cfg.kd.mode}, "teacher": cfg.teacher.model,
               "teacher_adapter": cfg.teacher.adapter, "hf": str(out / "hf")}
    teacher = teacher_box.get("teacher")
    if teacher is None and cfg.teacher.model and (out / "hf").is_dir():  # kd.alpha=0: a baseline's distance too
        from persianllama.distill.teacher import load_teacher
        from persianllama.run.device import device_type

        teacher = load_teacher(cfg.teacher, device_type())
    if teacher is not None and (out / "hf").is_dir():
        tok = AutoTokenizer.from_pretrained(str(out / "hf"))
        if same_vocabulary(tok, teacher.tokenizer):
            data = teacher_box.get("data")
            texts = data.val_texts(limit=cfg.log.eval_docs) if data is not None else []
            student = AutoModelForCausalLM.from_pretrained(str(out / "hf")).to(teacher.device)
            summary["kl_to_teacher"] = held_out_kl(student, teacher, tok, texts, max_length=cfg.train.seq_len,
                                                   device=teacher.device)
    write_json(out / "distill_summary.json", summary)
    return summary


# --- the run -------------------------------------------------------------------------------------------------------


def run(cfg: DistillConfig, *, on_step=None, local_rank: int | None = None) -> int:
    from persianllama.train.pretrain import Extension, run_config

    check_settings(cfg)
    teacher_box: dict = {}
    if cfg.kd.instructions:  # the SFT track tunes the student on the teacher's answers
        from persianllama.distill.sequence import tune_on_answers

        return tune_on_answers(cfg, teacher_box)
    if cfg.kd.mode == "sequence":
        from persianllama.distill.sequence import teacher_corpus

        cfg = teacher_corpus(cfg, teacher_box)
        loss = None
        name = "Distillation (sequence KD)"
    else:
        loss = make_loss(cfg, teacher_box)
        name = "Distillation"

    def make(data, tokenizer, device, env):
        teacher_box["data"] = data
        return loss(data, tokenizer, device, env) if loss else None

    from persianllama.distill.teacher import fingerprint

    ext = Extension(name=name, settings=kd_settings(cfg) | {"teacher": fingerprint(cfg.teacher)},
                    make_loss=make, card=card_for(cfg),
                    describe={"teacher": cfg.teacher.model, "teacher_adapter": cfg.teacher.adapter,
                              "kd": configlib.to_dict(cfg.kd)})
    with contextlib.ExitStack() as cleanup:
        code = run_config(cfg, cleanup, on_step=on_step, local_rank=local_rank, extension=ext)
    if code == 0 and cfg.export and int(os.environ.get("RANK", "0")) == 0:  # rank 0 exported; it measures too
        summary = summarize(cfg, teacher_box)
        readme = Path(cfg.out_dir) / "hf" / "README.md"
        if summary.get("kl_to_teacher") is not None and readme.is_file():  # measured after the export: added now
            write_text(readme, _with_kl(readme.read_text(encoding="utf-8"), summary))
    return code


def _with_kl(card: str, summary: dict) -> str:
    line = f"- held-out KL(teacher || student): {summary['kl_to_teacher']:.4f} nats/token"
    return card if line in card else card.rstrip("\n") + "\n" + line + "\n"
