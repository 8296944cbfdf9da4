"""Base, PEFT adapter with an extended tokenizer, and 8-bit: each loads and scores; bad ones fail clearly."""

from __future__ import annotations

import json
import math

import pytest
import torch

from persianllama.errors import UserError
from persianllama.eval.bpb import evaluate_bpb
from persianllama.eval.config import EvalConfig
from persianllama.eval.loading import adapter_embedding_rows, load_model
from persianllama.eval.runner import evaluate

NEW_TOKENS = ["کتابخانه", "دانشجویان", "رستوران", "خسته‌کننده"]


@pytest.fixture(scope="module")
def adapter(tmp_path_factory, model_dir, sentences):
    """A LoRA adapter trained a few steps on a vocabulary-extended base, saved with PEFT's own save
    and with its extended tokenizer next to it (what the LoRA track produces)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tmp_path_factory.mktemp("adapter")
    tok = AutoTokenizer.from_pretrained(model_dir)
    base_size = len(tok)
    tok.add_tokens(NEW_TOKENS)
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    base.resize_token_embeddings(len(tok))
    net = get_peft_model(
        base,
        LoraConfig(
            r=4,
            lora_alpha=8,
            target_modules=["q_proj", "v_proj"],
            modules_to_save=["embed_tokens", "lm_head"],
            task_type="CAUSAL_LM",
        ),
    )
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    batch = tok(sentences[:8], return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    net.train()
    for _ in range(3):
        loss = net(**batch, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    net.eval()
    net.save_pretrained(path)
    tok.save_pretrained(path)
    probe = tok(sentences[4], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        reference = net(input_ids=probe).logits
    return {"path": path, "base_size": base_size, "size": len(tok), "probe": probe, "reference": reference}


def test_adapter_with_extended_tokenizer_loads_exactly_and_scores(adapter, model_dir, sentences):
    assert (
        adapter_embedding_rows(adapter["path"]) == adapter["size"] == adapter["base_size"] + len(NEW_TOKENS)
    )
    loaded = load_model(str(model_dir), adapter=str(adapter["path"]), device="cpu", dtype="fp32")
    assert len(loaded.tokenizer) == adapter["size"]  # the adapter's own tokenizer was picked
    assert loaded.info["embedding_rows"] == adapter["size"]
    with torch.no_grad():
        logits = loaded.model(input_ids=adapter["probe"]).logits
    assert torch.allclose(logits, adapter["reference"], atol=1e-5)
    assert loaded.tokenizer.convert_ids_to_tokens(loaded.tokenizer("کتابخانه")["input_ids"]) == ["کتابخانه"]
    out = evaluate_bpb(loaded.model, loaded.tokenizer, sentences[:4], max_length=64)
    assert math.isfinite(out["bits_per_byte"]) and out["bytes"] == sum(len(s.encode()) for s in sentences[:4])


def test_adapter_through_the_runner(adapter, model_dir, task_data_dir, tmp_path):
    out = tmp_path / "out"
    res = evaluate(
        EvalConfig(
            model=str(model_dir),
            adapter=str(adapter["path"]),
            tasks=["persian_bpb", "parsinlu_qqp"],
            output=str(out),
            data_dir=str(task_data_dir),
            batch_size=4,
            device="cpu",
            bootstrap_iters=100,
        )
    )
    meta = json.loads((out / "results.json").read_text(encoding="utf-8"))["persianllama"]
    assert meta["adapter"] == str(adapter["path"]) and meta["tokenizer"] == str(adapter["path"])
    assert meta["model_info"]["tokenizer_size"] == adapter["size"]
    assert 0.0 <= res["results"]["parsinlu_qqp"]["acc,none"] <= 1.0
    assert res["results"]["persian_bpb"]["bits_per_byte,none"] > 0


def test_adapter_with_the_base_tokenizer_is_a_vocabulary_mismatch(adapter, model_dir):
    with pytest.raises(UserError) as e:
        load_model(str(model_dir), adapter=str(adapter["path"]), tokenizer=str(model_dir), device="cpu")
    text = str(e.value)
    assert text.startswith("vocabulary mismatch: adapter " + str(adapter["path"]))
    assert (
        f"trained with {adapter['size']} token embeddings" in text
        and f"has {adapter['base_size']} tokens" in text
    )


def test_extended_tokenizer_with_an_adapter_that_saved_no_embeddings(model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.add_tokens(NEW_TOKENS)
    net = get_peft_model(
        AutoModelForCausalLM.from_pretrained(model_dir),
        LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"),
    )
    net.save_pretrained(tmp_path / "lora")
    tok.save_pretrained(tmp_path / "lora")
    assert adapter_embedding_rows(tmp_path / "lora") is None
    with pytest.raises(
        UserError,
        match=r"vocabulary mismatch: tokenizer .*lora has \d+ tokens but adapter .* saved no "
        r"embeddings",
    ):
        load_model(str(model_dir), adapter=str(tmp_path / "lora"), device="cpu")
    with pytest.raises(
        UserError, match=r"vocabulary mismatch: tokenizer .*lora has \d+ tokens but model .* has 320"
    ):
        load_model(str(model_dir), tokenizer=str(tmp_path / "lora"), device="cpu")


def test_8bit_loads_and_scores_close_to_float32(model_dir, sentences):
    fp32 = load_model(str(model_dir), device="cpu", dtype="fp32")
    int8 = load_model(str(model_dir), load_in_8bit=True, device="cpu")
    assert any(type(m).__name__ == "Linear8bitLt" for m in int8.model.modules())
    assert int8.info["load_in_8bit"]
    a = evaluate_bpb(fp32.model, fp32.tokenizer, sentences[:6], max_length=64)
    b = evaluate_bpb(int8.model, int8.tokenizer, sentences[:6], max_length=64)
    assert b["bits_per_byte"] == pytest.approx(a["bits_per_byte"], rel=0.05)


def test_8bit_base_with_adapter_through_the_runner(adapter, model_dir, task_data_dir, tmp_path):
    res = evaluate(
        EvalConfig(
            model=str(model_dir),
            adapter=str(adapter["path"]),
            load_in_8bit=True,
            tasks=["parsinlu_mc_literature"],
            output=str(tmp_path / "out"),
            data_dir=str(task_data_dir),
            batch_size=4,
            device="cpu",
            bootstrap_iters=100,
        )
    )
    assert res["persianllama"]["model_info"]["load_in_8bit"]
    assert res["n-samples"]["parsinlu_mc_literature"]["effective"] == 2
    assert "(8-bit)" in res["persianllama"]["label"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_8bit_on_a_device_that_is_not_there(model_dir):
    with pytest.raises(UserError, match=r"^cannot load model .* in 8-bit on cuda: "):
        load_model(str(model_dir), load_in_8bit=True, device="cuda")


def test_missing_model_and_adapter_paths(model_dir, tmp_path):
    with pytest.raises(UserError, match=r"^model .*nope: no such file or directory$"):
        load_model(str(tmp_path / "nope"), device="cpu")
    with pytest.raises(UserError, match=r"^adapter .*missing: no such file or directory$"):
        load_model(str(model_dir), adapter=str(tmp_path / "missing"), device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"empty: no adapter_config.json here"):
        load_model(str(model_dir), adapter=str(tmp_path / "empty"), device="cpu")
