"""`persianllama dpo` on a tiny model: the loss is TRL's on the same model and tokens; DPO moves the policy's
chosen-vs-rejected margin on its training pairs (checked on the exported adapter, against the base); resume is exact
and reuses the cached reference log-probabilities; from an SFT adapter the reference is the SFT model."""

from __future__ import annotations

import json
import math
import os
import signal

import pytest

from persianllama.cli import main
from persianllama.run.metrics import read_metrics
from tests.sft.conftest import EIGHT, tiny_overrides

WRONG = {"تهران.": "اصفهان.", "چهار.": "پنج.", "آبی.": "سبز.", "سلام! چطور کمک کنم؟": "برو.", "موز.": "سیب.",
         "کتاب": "قلم", "گلستان.": "بوستان.", "آغاز سال نو.": "پایان سال."}


def preference_records() -> list[dict]:
    """One pair per conversation of EIGHT: its last answer preferred to a wrong one (explicit conversational prompt,
    and one plain-string record and one implicit-prompt record, to read every layout)."""
    out = []
    for conv in EIGHT:
        prompt, answer = conv[:-1], conv[-1]["content"]
        out.append({"prompt": prompt, "chosen": [{"role": "assistant", "content": answer}],
                    "rejected": [{"role": "assistant", "content": WRONG[answer]}]})
    out[1] = {"prompt": EIGHT[1][0]["content"], "chosen": "چهار.", "rejected": "پنج."}
    out[4] = {"chosen": EIGHT[4], "rejected": [EIGHT[4][0], {"role": "assistant", "content": "سیب."}]}
    return out


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("dpo data") / "pairs.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in preference_records()), encoding="utf-8")
    return path


def _args(sft_assets, pairs_file, out, *, adapter=None, drop=(), **extra):
    settings = {"data.val_fraction": 0.0, "data.normalize": "false", "dpo.beta": 0.5, "train.max_steps": 6,
                "train.micro_batch_size": 4, "train.global_batch_size": 8, **extra}
    overrides = [o for o in tiny_overrides(**settings) if o.split("=")[0] not in drop]
    return ["dpo", "--base", str(sft_assets.base), "--data", str(pairs_file), "--output", str(out),
            *(["--adapter", str(adapter)] if adapter else []), *overrides]


def pair_logps(model, tok, records):
    """(log p(chosen), log p(rejected)) of every record under `model`, with the toolkit's own pair encoding."""
    import torch

    from persianllama.sft.dpo import collate, encode_pair, forward_logps
    from persianllama.sft.preferences import Pair, to_pair

    pairs = [encode_pair(tok, Pair(*to_pair(r)[1:], "test"), 128, "drop")[0] for r in records]
    batch, _ = collate(pairs, range(len(pairs)), tok.pad_token_id or tok.eos_token_id)
    with torch.no_grad():
        return forward_logps(model.eval(), batch)


def test_loss_is_trls_sigmoid_loss_on_the_same_model_and_tokens(sft_assets):
    """TRL's DPOTrainer (fresh LoRA, reference = adapter disabled) and ours give the same loss and rewards."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from persianllama.sft.dpo import collate, dpo_loss, encode_pair, forward_logps
    from persianllama.sft.preferences import Pair, to_pair
    from persianllama.sft.template import ensure_template

    tok = AutoTokenizer.from_pretrained(str(sft_assets.base))
    ensure_template(tok)
    tok.pad_token = tok.eos_token
    records = preference_records()[:4]
    pairs = [Pair(*to_pair(r)[1:], "test") for r in records]
    ds = Dataset.from_list([{"prompt": p.prompt, "chosen": [{"role": "assistant", "content": p.chosen}],
                             "rejected": [{"role": "assistant", "content": p.rejected}]} for p in pairs])
    args = DPOConfig(output_dir=str(sft_assets.root / "trl"), beta=0.3, report_to=[], use_cpu=True, max_length=128,
                     save_strategy="no", per_device_train_batch_size=4)
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(str(sft_assets.base)), args=args,
                         train_dataset=ds, processing_class=tok,
                         peft_config=LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                                lora_dropout=0.0))
    net = trainer.model
    g = torch.Generator().manual_seed(1)
    for name, p in net.named_parameters():
        if "lora_B" in name:  # move the policy off the reference
            p.data = torch.randn(p.shape, generator=g) * 0.5
    net.eval()
    batch, _ = collate([encode_pair(tok, p, 128, "drop")[0] for p in pairs], range(4), tok.pad_token_id)
    with torch.no_grad():
        pc, pr = forward_logps(net, batch)
        with net.disable_adapter():
            rc, rr = forward_logps(net, batch)
        ours, chosen_rewards, rejected_rewards = dpo_loss(pc, pr, rc, rr, beta=0.3)
        # the same token ids in TRL's batch layout ([chosen..., rejected...], the reply marked in completion_mask)
        theirs = trainer._compute_loss(net, {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                                             "completion_mask": (batch["labels"] != -100).long()}, False)
    assert float(ours.mean()) != pytest.approx(math.log(2), abs=1e-3)  # the policy is not the reference
    assert float(ours.mean()) == pytest.approx(float(theirs), rel=1e-5)
    m = trainer._metrics["eval"]
    assert float((chosen_rewards - rejected_rewards).mean()) == pytest.approx(m["rewards/margins"][-1], rel=1e-4)
    assert float(chosen_rewards.mean()) == pytest.approx(m["rewards/chosen"][-1], rel=1e-4)


def test_label_smoothing_is_conservative_dpo():
    """TRL 1.16's sigmoid loss ignores label_smoothing; ours is cDPO, checked against a hand computation."""
    import torch

    from persianllama.sft.dpo import dpo_loss

    pc, pr = torch.tensor([-10.0, -20.0, -5.0]), torch.tensor([-12.0, -18.0, -9.0])
    rc, rr = torch.tensor([-11.0, -19.0, -6.0]), torch.tensor([-11.5, -19.5, -7.0])
    beta, e = 0.2, 0.1
    losses, cr, rj = dpo_loss(pc, pr, rc, rr, beta=beta, label_smoothing=e)
    for i in range(3):
        d = beta * ((float(pc[i]) - float(rc[i])) - (float(pr[i]) - float(rr[i])))
        sig = 1 / (1 + math.exp(-d))
        assert float(losses[i]) == pytest.approx(-(1 - e) * math.log(sig) - e * math.log(1 - sig), rel=1e-6)
        assert float(cr[i]) == pytest.approx(beta * (float(pc[i]) - float(rc[i])), rel=1e-6)
    plain, _, _ = dpo_loss(pc, pr, rc, rr, beta=beta)
    assert float(plain[1]) == pytest.approx(math.log1p(math.exp(-beta * (-1.0 - 1.5))), rel=1e-6)


@pytest.fixture(scope="module")
def trained(sft_assets, pairs_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("dpo") / "run"
    assert main(_args(sft_assets, pairs_file, out, **{"train.max_steps": 12})) == 0
    return out


def test_dpo_raises_the_chosen_over_rejected_margin_of_its_training_pairs(trained, sft_assets):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(trained / "adapter"))
    assert tok.chat_template  # saved with the adapter
    records = preference_records()
    pc, pr = pair_logps(AutoPeftModelForCausalLM.from_pretrained(str(trained / "adapter")), tok, records)
    rc, rr = pair_logps(AutoModelForCausalLM.from_pretrained(str(sft_assets.base)), tok, records)
    margins = 0.5 * ((pc - rc) - (pr - rr))  # beta x (chosen log-ratio - rejected log-ratio); 0 before training
    assert bool((margins > 0.5).all()), margins  # every pair, the multi-turn one included
    train, _ = read_metrics(trained / "metrics.jsonl")
    assert train[1]["reward_margin"] == pytest.approx(0.0, abs=1e-6) and train[1]["reward_accuracy"] == 0.0
    assert train[12]["reward_accuracy"] == 1.0 and train[12]["reward_margin"] > 1.0
    assert train[12]["loss"] < 0.5 * train[1]["loss"] and train[1]["loss"] == pytest.approx(math.log(2), abs=1e-5)
    report = json.loads((trained / "data_report.json").read_text())
    assert report["formats"] == {"conversational": 6, "plain": 1, "implicit": 1} and report["train_pairs"] == 8
    card = (trained / "adapter" / "README.md").read_text()
    assert "DPO" in card and "beta=0.5" in card and "the base model" in card
    assert (trained / "reference_logps.safetensors").is_file() and (trained / "loss_curve.png").is_file()


def test_sigterm_then_resume_is_exact_and_reuses_the_reference_cache(trained, sft_assets, pairs_file, tmp_path,
                                                                     monkeypatch):
    from persianllama.run.metrics import RunLog

    cut = tmp_path / "cut"
    args = _args(sft_assets, pairs_file, cut, **{"train.max_steps": 12, "checkpoint.save_interval": 100})
    write = RunLog.write

    def write_then_signal(self, record):
        write(self, record)
        if record.get("kind") == "train" and record["step"] == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(RunLog, "write", write_then_signal)
    assert main(args) == 143
    cache = cut / "reference_logps.safetensors"
    before = (cache.stat().st_mtime_ns, cache.read_bytes())
    monkeypatch.setattr(RunLog, "write", write)
    assert main(args) == 0
    assert (cache.stat().st_mtime_ns, cache.read_bytes()) == before  # read, not computed again
    a, _ = read_metrics(trained / "metrics.jsonl")
    b, _ = read_metrics(cut / "metrics.jsonl")
    keys = ("loss", "reward_margin", "reward_accuracy", "logp_chosen")
    assert [[a[s][k] for k in keys] for s in sorted(a)] == [[b[s][k] for k in keys] for s in sorted(b)]


def test_from_an_sft_adapter_the_reference_is_the_sft_model(sft_assets, pairs_file, tmp_path, monkeypatch, caplog):
    """--adapter: the run continues the SFT adapter (its rank taken from it), the cached reference log-probs are the
    SFT model's, and a resumed run whose cache is gone computes the same ones again from the SFT adapter."""
    import logging

    import torch
    from peft import AutoPeftModelForCausalLM
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from persianllama.run.metrics import RunLog

    sft = tmp_path / "sft"
    assert main(["sft", "--base", str(sft_assets.base), "--data", str(sft_assets.eight), "--output", str(sft),
                 *tiny_overrides(**{"train.max_steps": 6, "lora.r": 8, "lora.alpha": 16})]) == 0
    adapter = sft / "adapter"
    ref_run, cut = tmp_path / "ref", tmp_path / "cut"
    drop = ("lora.r", "lora.alpha")
    assert main(_args(sft_assets, pairs_file, ref_run, adapter=adapter, drop=drop, **{"train.max_steps": 4})) == 0
    summary = json.loads((ref_run / "dpo_summary.json").read_text())
    assert summary["config"]["lora"]["r"] == 8 and summary["config"]["lora"]["init_adapter"] == str(adapter)

    tok = AutoTokenizer.from_pretrained(str(adapter))
    pc, pr = pair_logps(AutoPeftModelForCausalLM.from_pretrained(str(adapter)), tok, preference_records())
    cached = load_file(str(ref_run / "reference_logps.safetensors"))["train"]
    # the pairs are read in file order and none is held out: row i is record i
    assert torch.allclose(cached[:, 0], pc, rtol=1e-5) and torch.allclose(cached[:, 1], pr, rtol=1e-5)
    base_c, _ = pair_logps(AutoModelForCausalLM.from_pretrained(str(sft_assets.base)), tok, preference_records())
    assert (cached[:, 0] - base_c).abs().min() > 1e-2  # the SFT model, not the base

    write = RunLog.write

    def write_then_signal(self, record):
        write(self, record)
        if record.get("kind") == "train" and record["step"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    args = _args(sft_assets, pairs_file, cut, adapter=adapter, drop=drop, **{"train.max_steps": 4})
    monkeypatch.setattr(RunLog, "write", write_then_signal)
    assert main(args) == 143
    (cut / "reference_logps.safetensors").unlink()
    monkeypatch.setattr(RunLog, "write", write)
    caplog.set_level(logging.INFO, logger="persianllama.dpo")
    assert main(args) == 0
    assert "reference log-probabilities of 8 + 0 pairs computed" in caplog.text  # again, from the SFT adapter
    assert torch.allclose(load_file(str(cut / "reference_logps.safetensors"))["train"], cached, rtol=1e-6)
    a, _ = read_metrics(ref_run / "metrics.jsonl")
    b, _ = read_metrics(cut / "metrics.jsonl")
    assert [a[s]["loss"] for s in sorted(a)] == pytest.approx([b[s]["loss"] for s in sorted(b)], rel=1e-6)


def test_a_pair_the_tokenizer_cannot_tell_apart_is_skipped(sft_assets):
    """The project's tokenizers normalize (Arabic ي/ك -> Persian ی/ک): a rejected reply that differs only there gets
    the chosen one's tokens, and is skipped as same_tokens instead of training on a zero gradient."""
    from tokenizers import normalizers
    from transformers import AutoTokenizer

    from persianllama.sft.dpo import encode_pairs
    from persianllama.sft.preferences import Pair
    from persianllama.sft.template import ensure_template

    tok = AutoTokenizer.from_pretrained(str(sft_assets.base))
    ensure_template(tok)
    prompt = [{"role": "user", "content": "یک میوه نام ببر."}]
    pairs = [Pair(prompt, "یک کیوی.", "يك كيوي.", "a"), Pair(prompt, "یک کیوی.", "یک موز.", "b")]
    kept, dropped = encode_pairs(tok, pairs, 128, "drop")
    assert len(kept) == 2 and dropped == {}
    tok.backend_tokenizer.normalizer = normalizers.Sequence([normalizers.Replace("ي", "ی"),
                                                             normalizers.Replace("ك", "ک")])
    kept, dropped = encode_pairs(tok, pairs, 128, "drop")
    assert len(kept) == 1 and dropped == {"same_tokens": 1} and kept[0].chosen_text == "یک کیوی."
