"""Preference tuning with DPO, top to bottom: the LoRA track's adapter loop with the DPO loss.

1. resolve and refuse without loading weights (the LoRA track's preflight), the memory plan for chosen and
   rejected sequences together;
2. the chat template; read and check the pairs, hold some out; tokenize each pair as two conversations with
   labels on the final reply only; drop pairs the tokenizer cannot tell apart;
3. the reference log-probabilities, computed once before the first step and cached in the run folder
   (``reference_logps.safetensors``, reused on resume);
4. train the adapter (`persianllama.lora.train.train_adapter` with a `loss_fn`: resume, signals, metrics,
   checkpoints); each train record carries the reward accuracy, margin and rewards of its step; validation is
   the DPO loss, reward accuracy and margin on held-out pairs, and the chosen replies' bits per byte;
5. the adapter folder with the tokenizer and its chat template, a card, and with merge=true a merged model.

The policy is the base plus a LoRA adapter. The reference is the policy before its first update:

- from a plain base (no --adapter), a fresh adapter whose B matrices are zero, so the reference is the base:
  the model with the adapter disabled (``net.disable_adapter()``);
- from an SFT adapter (--adapter), the DPO run continues training *that* adapter, so the reference is the SFT
  model. This is DPO's own recipe (the reference is the SFT policy the preference tuning starts from), the result
  is one adapter on the original base (`persianllama chat --adapter` and merge take it as it is), and it works on
  8-bit/4-bit bases, where merging the SFT adapter into the weights first is not possible. The reference
  log-probabilities are those of the adapter as loaded; if the cache is gone when a run resumes, the SFT adapter is
  loaded a second time, frozen, to compute them again.

The loss (``dpo_loss``) is TRL's ``loss_type="sigmoid"`` (tests/sft/test_dpo.py checks it against TRL's trainer on
the same model and tokens), with conservative-DPO label smoothing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from persianllama.atomic import write_json
from persianllama.config import to_dict
from persianllama.errors import UserError
from persianllama.run.lock import RunLock
from persianllama.sft.dpo_config import DpoConfig
from persianllama.sft.packing import IGNORE

log = logging.getLogger("persianllama.dpo")

CACHE = "reference_logps.safetensors"


# --- tokens ------------------------------------------------------------------------------------------------


@dataclass
class PairTokens:
    """A pair as two sequences; labels copy the ids on the final reply (and its EOS) and are -100 elsewhere."""

    chosen_ids: list[int]
    chosen_labels: list[int]
    rejected_ids: list[int]
    rejected_labels: list[int]
    chosen_text: str


def encode_pair(tok, pair, seq_len: int, too_long: str) -> tuple[PairTokens | None, str | None]:
    """(tokens, None), or (None, why the pair cannot be trained on)."""
    from persianllama.sft.template import encode, prompt_ids

    prompt = prompt_ids(tok, pair.prompt)
    sides = []
    for conv in pair.conversations():
        ids, labels = encode(tok, conv, train_on="assistant")
        if ids[: len(prompt)] != prompt:
            raise UserError("the chat template renders a prompt differently from the same prompt followed by a reply "
                            "(the reply's tokens cannot be located); give data.chat_template a template whose "
                            "add_generation_prompt output is a prefix of the conversation")
        labels = [IGNORE] * len(prompt) + labels[len(prompt):]  # the final reply only, not earlier assistant turns
        if len(ids) > seq_len:
            if too_long == "drop":
                return None, "too_long"
            ids, labels = ids[:seq_len], labels[:seq_len]
        if all(t == IGNORE for t in labels):
            return None, "prompt_too_long"
        sides.append((ids, labels))
    (ci, cl), (ri, rl) = sides
    if ci == ri:
        return None, "same_tokens"
    return PairTokens(ci, cl, ri, rl, pair.chosen), None


def encode_pairs(tok, pairs, seq_len: int, too_long: str) -> tuple[list[PairTokens], dict[str, int]]:
    out, dropped = [], {}
    for p in pairs:
        t, why = encode_pair(tok, p, seq_len, too_long)
        if t is None:
            dropped[why] = dropped.get(why, 0) + 1
        else:
            out.append(t)
    return out, dropped


def collate(pairs: list[PairTokens], index, pad_id: int) -> tuple[dict, int]:
    """Model inputs for the pairs `index`: the chosen sequences, then the rejected ones, right-padded to the
    longest (a multiple of 8); ``pair_index`` says which pairs (for their reference log-probabilities)."""
    import torch

    index = [int(i) for i in index]
    seqs = [(pairs[i].chosen_ids, pairs[i].chosen_labels) for i in index]
    seqs += [(pairs[i].rejected_ids, pairs[i].rejected_labels) for i in index]
    n = max(len(s) for s, _ in seqs)
    n = -(-n // 8) * 8
    ids = torch.full((len(seqs), n), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), n), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for r, (s, lab) in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(s)
        labels[r, : len(s)] = torch.tensor(lab)
        mask[r, : len(s)] = 1
    return ({"input_ids": ids, "attention_mask": mask, "labels": labels,
             "pair_index": torch.tensor(index, dtype=torch.long)}, int(mask.sum()))


# --- the loss ----------------------------------------------------------------------------------------------


def sequence_logps(logits, labels):
    """Sum over each row of log p(label) at the labelled positions (next-token: logits[t] predicts labels[t+1]);
    in fp32, one row at a time so a bf16 model never holds the full-vocabulary log-softmax of the whole batch."""
    import torch

    target = labels[:, 1:]
    keep = target != IGNORE
    rows = []
    for lg, tg, k in zip(logits[:, :-1], target, keep):
        lg = lg.float()
        picked = lg.gather(-1, tg.clamp(min=0).unsqueeze(-1)).squeeze(-1) - torch.logsumexp(lg, dim=-1)
        rows.append((picked * k).sum())
    return torch.stack(rows)


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, *, beta: float, label_smoothing: float = 0.0):
    """Per-pair sigmoid DPO loss and the implicit rewards ``beta * (log pi - log ref)`` of each reply.

    ``-(1 - e) log sigmoid(beta * d) - e log sigmoid(-beta * d)`` with ``d = (pi_c - ref_c) - (pi_r - ref_r)``;
    e = 0 is DPO, e > 0 conservative DPO."""
    import torch.nn.functional as F

    chosen_ratio = policy_chosen - ref_chosen
    rejected_ratio = policy_rejected - ref_rejected
    logits = beta * (chosen_ratio - rejected_ratio)
    losses = -F.logsigmoid(logits)
    if label_smoothing:
        losses = (1 - label_smoothing) * losses - label_smoothing * F.logsigmoid(-logits)
    return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


def pair_stats(chosen_rewards, rejected_rewards, policy_chosen, policy_rejected) -> dict[str, float]:
    """The numbers a train record and a validation report (means over the pairs)."""
    return {"reward_accuracy": float((chosen_rewards > rejected_rewards).float().mean()),
            "reward_margin": float((chosen_rewards - rejected_rewards).mean()),
            "reward_chosen": float(chosen_rewards.mean()), "reward_rejected": float(rejected_rewards.mean()),
            "logp_chosen": float(policy_chosen.detach().mean()),
            "logp_rejected": float(policy_rejected.detach().mean())}


def forward_logps(net, inputs):
    """(policy log-p of the chosen replies, of the rejected ones) for a collated micro-batch."""
    out = net(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    logps = sequence_logps(out.logits, inputs["labels"])
    half = logps.shape[0] // 2
    return logps[:half], logps[half:]


# --- the reference -----------------------------------------------------------------------------------------


class Reference:
    """The reference model's log-probabilities of every pair (train and held out), computed once and cached in
    the run folder; the cache is used only when its fingerprint (the pairs' tokens, base, starting adapter,
    tokenizer, load and autocast dtypes) matches this run."""

    def __init__(self, setup, train: list[PairTokens], held: list[PairTokens], pad_id: int):
        from persianllama.data.packing import tokenizer_fingerprint

        self.setup, self.sets, self.pad_id = setup, {"train": train, "heldout": held}, pad_id
        cfg = setup.cfg
        h = hashlib.sha256()
        for name, pairs in self.sets.items():
            h.update(name.encode())
            for p in pairs:
                h.update(json.dumps([p.chosen_ids, p.chosen_labels, p.rejected_ids, p.rejected_labels]).encode())
        h.update(json.dumps({"base": cfg.model.base, "adapter": cfg.lora.init_adapter, "dtype": setup.dtype,
                             "precision": setup.precision, "quantization": cfg.model.quantization,
                             "tokenizer": tokenizer_fingerprint(setup.tok)}, sort_keys=True).encode())
        self.fingerprint = h.hexdigest()
        self.path = Path(cfg.out_dir) / CACHE
        self.logps: dict | None = None
        self._load()

    def _load(self) -> None:
        if not self.path.is_file():
            return
        from safetensors import safe_open

        try:
            with safe_open(str(self.path), framework="pt") as f:
                if (f.metadata() or {}).get("fingerprint") != self.fingerprint:
                    log.warning("%s was computed for other pairs or another reference model: computing it again",
                                self.path)
                    return
                self.logps = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:  # noqa: BLE001 - a damaged cache is recomputed, not trusted
            log.warning("%s is unreadable (%s): computing it again", self.path, str(e).splitlines()[0][:120])
            return
        log.info("reference log-probabilities from %s", self.path)

    def get(self, name: str, index):
        """(reference log-p of the chosen replies, of the rejected ones) of pairs `index` of set `name`."""
        t = self.logps[name][index.cpu()]
        return t[:, 0], t[:, 1]

    def ensure(self, net) -> None:
        """Compute (and save) the log-probabilities if no valid cache was found; called before the first step."""
        if self.logps is not None:
            return
        import torch
        from safetensors.torch import save_file

        from persianllama.atomic import atomic_path
        from persianllama.lora.train import autocast

        t0 = time.perf_counter()
        bs = self.setup.cfg.dpo.reference_batch_size
        log.info("computing the reference log-probabilities of %d + %d pairs (once; cached in %s)",
                 len(self.sets["train"]), len(self.sets["heldout"]), self.path)
        out = {}
        was_training = net.training
        net.eval()
        try:
            with self._reference(net), torch.no_grad(), autocast(self.setup):
                for name, pairs in self.sets.items():
                    rows = []
                    for start in range(0, len(pairs), bs):
                        batch, _ = collate(pairs, range(start, min(start + bs, len(pairs))), self.pad_id)
                        batch = {k: v.to(self.setup.device) for k, v in batch.items()}
                        c, r = forward_logps(net, batch)
                        rows.append(torch.stack([c, r], dim=1).float().cpu())
                    out[name] = torch.cat(rows) if rows else torch.zeros((0, 2))
        finally:
            net.train(was_training)
        with atomic_path(self.path) as tmp:
            save_file(out, str(tmp), metadata={"fingerprint": self.fingerprint})
        self.logps = out
        log.info("reference log-probabilities of %d + %d pairs computed in %.1fs, cached in %s",
                 len(self.sets["train"]), len(self.sets["heldout"]), time.perf_counter() - t0, self.path)

    @contextlib.contextmanager
    def _reference(self, net):
        """The model as the reference: the adapter disabled (fresh adapter), the adapter as loaded (SFT adapter,
        nothing trained yet), or the SFT adapter loaded again beside the trained one (a resumed run)."""
        adapter = self.setup.cfg.lora.init_adapter
        if not adapter:
            with net.disable_adapter():
                yield
            return
        if self.setup.resume_from is None:
            yield
            return
        net.load_adapter(adapter, adapter_name="reference", is_trainable=False)
        active = net.active_adapter
        try:
            net.set_adapter("reference", inference_mode=True)
            yield
        finally:
            net.set_adapter(active)
            net.delete_adapter("reference")


# --- validation and the card -------------------------------------------------------------------------------


def score(net, setup, pairs: list[PairTokens], ref: Reference, name: str, *, step: int, pad_id: int) -> dict | None:
    """The ``eval`` record of `pairs`: loss is the DPO loss, with reward accuracy and margin; bits per byte, token
    and word perplexity are the chosen replies' (a check that preference tuning does not wreck the language)."""
    import torch

    from persianllama.lora.train import autocast
    from persianllama.run.metrics import eval_record
    from persianllama.text.words import count_words

    if not pairs:
        return None
    ref.ensure(net)
    t0 = time.perf_counter()
    cfg = setup.cfg
    parts = []
    nll = n_tok = 0.0
    was_training = net.training
    net.eval()
    try:
        for start in range(0, len(pairs), cfg.log.eval_batch_size):
            batch, _ = collate(pairs, range(start, min(start + cfg.log.eval_batch_size, len(pairs))), pad_id)
            batch = {k: v.to(setup.device) for k, v in batch.items()}
            with autocast(setup), torch.no_grad():
                pc, pr = forward_logps(net, batch)
            rc, rr = ref.get(name, batch["pair_index"])
            parts.append(torch.stack([pc.float().cpu(), pr.float().cpu(), rc, rr], dim=1))
            nll -= float(pc.sum())
            n_tok += int((batch["labels"][: len(pc), 1:] != IGNORE).sum())
    finally:
        net.train(was_training)
    pc, pr, rc, rr = torch.cat(parts).unbind(1)
    losses, cr, rj = dpo_loss(pc, pr, rc, rr, beta=cfg.dpo.beta, label_smoothing=cfg.dpo.label_smoothing)
    n_bytes = sum(len(p.chosen_text.encode("utf-8")) for p in pairs)
    n_words = sum(count_words(p.chosen_text) for p in pairs)
    rec = eval_record(step, nll, n_bytes, n_tok, n_words, len(pairs), time.perf_counter() - t0)
    rec = {**rec, "loss": float(losses.mean()), "chosen_loss": rec["loss"], **pair_stats(cr, rj, pc, pr)}
    log.info("step %d: held-out pairs: reward accuracy %.3f | margin %.4f | DPO loss %.4f (%d pairs)", step,
             rec["reward_accuracy"], rec["reward_margin"], rec["loss"], len(pairs))
    return rec


def card(setup, summary: dict, *, data_report: dict, template_source: str) -> str:
    cfg = setup.cfg
    v = summary.get("val") or {}
    v0 = summary.get("val_start") or {}
    reference = (f"the SFT adapter `{cfg.lora.init_adapter}` (this adapter continues it)" if cfg.lora.init_adapter
                 else "the base model (a fresh adapter)")
    lines = [
        "---", "library_name: peft", f"base_model: {cfg.model.base}", "language: [fa]",
        "tags: [lora, persian, persianllama, dpo, preference-tuning, chat]", "---", "",
        f"# PersianLLaMA preference-tuned (DPO) adapter for {cfg.model.base}", "",
        f"Direct preference optimisation with LoRA (`persianllama dpo`): sigmoid loss, beta={cfg.dpo.beta}"
        + (f", label smoothing {cfg.dpo.label_smoothing}" if cfg.dpo.label_smoothing else "")
        + f"; reference model: {reference}.", "",
        f"- data: {', '.join(cfg.data.files)} ({data_report.get('train_pairs', 0)} training pairs, "
        f"{data_report.get('heldout_pairs', 0)} held out; {sum(data_report.get('broken', {}).values())} bad records "
        f"and {sum(data_report.get('dropped', {}).values())} untrainable pairs skipped)",
        f"- chat template: {template_source}; saved with the tokenizer",
        f"- base loaded in {cfg.model.quantization}; LoRA r={cfg.lora.r}, alpha={cfg.lora.alpha}, targets "
        f"{', '.join(cfg.lora.target_modules)}",
        f"- {summary.get('step', 0)} steps, {summary.get('tokens', 0):,} tokens, lr {cfg.train.lr}, "
        f"{setup.batch.global_batch} pairs per step",
    ]
    if v:
        lines.append(f"- held-out pairs: reward accuracy {v['reward_accuracy']:.3f}, margin {v['reward_margin']:.3f}, "
                     f"DPO loss {v['loss']:.4f}" + (f" (before training: accuracy {v0['reward_accuracy']:.3f}, "
                                                     f"loss {v0['loss']:.4f})" if v0 else ""))
    lines += ["", "## Use", "", "`persianllama chat --model BASE --adapter ADAPTER`, or with PEFT:", "", "```python",
              "from peft import AutoPeftModelForCausalLM", "from transformers import AutoTokenizer",
              "tok = AutoTokenizer.from_pretrained(ADAPTER)", "model = AutoPeftModelForCausalLM.from_pretrained(ADAPTER)",
              "```", ""]
    return "\n".join(lines)


# --- the run -----------------------------------------------------------------------------------------------


def run(cfg: DpoConfig) -> dict:
    """Preference-tune (or resume) as `cfg` says; returns the summary."""
    with RunLock(cfg.out_dir):
        return _run(cfg)


def _run(cfg: DpoConfig) -> dict:
    from persianllama.data.packed import BlockOrder
    from persianllama.lora.export import export
    from persianllama.lora.train import prepare_run, train_adapter
    from persianllama.sft import preferences
    from persianllama.sft.template import ensure_template

    if not cfg.data.files:
        raise UserError("no preference data: pass --data FILE_OR_HUB_ID (or data.files=[...]) of {prompt, chosen, "
                        "rejected} records")
    # 1. resolve and refuse, the memory plan
    setup, plan = prepare_run(cfg, require_corpus=False, sequences_per_sample=2)  # chosen + rejected together
    tok = setup.tok
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token  # padding is masked out of attention and loss
    pad = tok.pad_token_id

    # 2. the chat template, the pairs, their tokens
    template_source = ensure_template(tok, cfg.data.chat_template)
    pairs, report = preferences.read_pairs(cfg.data.files, split=cfg.data.hf_split, normalize=cfg.data.normalize,
                                           system_prompt=cfg.data.system_prompt)
    train_pairs, held_pairs = preferences.split_heldout(pairs, cfg.data.val_fraction)
    if cfg.data.max_examples:
        train_pairs = train_pairs[: cfg.data.max_examples]
    held_pairs = held_pairs[: cfg.log.eval_docs] if cfg.log.eval_docs else []
    seq = cfg.train.seq_len
    train, dropped = encode_pairs(tok, train_pairs, seq, cfg.data.too_long)
    held, held_dropped = encode_pairs(tok, held_pairs, seq, cfg.data.too_long)
    for k, n in held_dropped.items():
        dropped[k] = dropped.get(k, 0) + n
    why = {"too_long": f"longer than train.seq_len={seq}: raise it or use data.too_long=truncate",
           "prompt_too_long": f"the prompt alone fills train.seq_len={seq}: raise it",
           "same_tokens": "the tokenizer gives chosen and rejected the same tokens: its own normalizer erases "
                          "their difference, so there is nothing to prefer"}
    skipped = "; ".join(f"{n} {k} ({why[k]})" for k, n in dropped.items())
    if not train:
        raise UserError(f"no trainable preference pair: {skipped or 'none left after the held-out split'}")
    if dropped:
        log.warning("preference pairs skipped: %s", skipped)
    b = setup.batch
    if len(train) < b.global_batch:
        log.warning("only %d training pair(s) for a global batch of %d pairs: pairs repeat within a step", len(train),
                    b.global_batch)
    log.info("preference data: %d pairs (%s) -> %d train / %d held out; chat template: %s", report.kept,
             ", ".join(f"{k} {n}" for k, n in report.formats.items()), len(train), len(held), template_source)
    out = Path(cfg.out_dir)
    data_report = {**report.to_dict(), "train_pairs": len(train), "heldout_pairs": len(held), "dropped": dropped,
                   "chat_template": template_source}
    write_json(out / "data_report.json", data_report)

    if setup.resume_state:  # the run core checks the LoRA track's settings; the loss's own are checked here
        before = (setup.resume_state.get("config") or {}).get("dpo") or {}
        changed = [f"dpo.{k}: {before[k]} -> {v}" for k, v in to_dict(cfg.dpo).items() if k in before and before[k] != v]
        if changed:
            log.warning("resuming with a changed DPO loss (%s): the loss curve changes at step %d", "; ".join(changed),
                        int(setup.resume_state.get("step", 0)))

    # 3. the reference log-probabilities (from the cache, or before the first step)
    ref = Reference(setup, train, held, pad)
    order = BlockOrder(len(train), cfg.train.seed)

    def micro_batches(samples: int, micro: int):
        return collate(train, order.micro_batch(samples, micro, 0, b.micro, 1), pad)

    def loss_fn(net, inputs):
        ref.ensure(net)
        pc, pr = forward_logps(net, inputs)
        rc, rr = (t.to(pc.device) for t in ref.get("train", inputs["pair_index"]))
        losses, cr, rj = dpo_loss(pc, pr, rc, rr, beta=cfg.dpo.beta, label_smoothing=cfg.dpo.label_smoothing)
        return losses.mean(), pair_stats(cr, rj, pc, pr)

    # 4. train the adapter
    summary = train_adapter(
        setup, plan, micro_batches,
        lambda net, step: score(net, setup, held, ref, "heldout", step=step, pad_id=pad),
        loss_fn=loss_fn,
        export_fn=functools.partial(export, card_fn=functools.partial(card, data_report=data_report,
                                                                      template_source=template_source)))
    summary["data"] = data_report
    if not summary.get("finished"):
        return summary

    # 5. the merged model, when asked, and the summary
    from persianllama.sft.train import finish

    finish(cfg, setup, summary, "dpo_summary.json")
    return summary
