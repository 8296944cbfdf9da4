"""The trainer's other paths, in-process: AdamW8bit + new-row embeddings + reentrant checkpointing
(with a SIGTERM and an exact resume), 4-bit, and a bf16 base without quantization."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest


def train_losses(out: Path) -> dict[int, float]:
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in recs if r["kind"] == "train"}


OPTIONS = {"train.optimizer": "adamw8bit", "train.min_8bit_size": 256, "lora.embeddings": "new_rows",
           "model.checkpointing_reentrant": "true", "train.max_steps": 8, "log.eval_interval": 0,
           "checkpoint.save_interval": 100}


@pytest.fixture(scope="module")
def reference(assets, tiny, make_config, tmp_path_factory):
    """An uninterrupted 8-step run with AdamW8bit, new-row embeddings and reentrant checkpointing."""
    from persianllama.lora import train

    out = tmp_path_factory.mktemp("options") / "ref"
    summary = train.run(make_config(assets, out, tiny.overrides(assets, out, **OPTIONS)))
    assert summary["finished"] and summary["step"] == 8
    return out


def test_adamw8bit_new_rows_reentrant_resume_is_exact(reference, assets, tiny, make_config, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file

    from persianllama.eval.loading import adapter_embedding_rows
    from persianllama.lora import train

    ref_out, cut_out = reference, tmp_path / "cut"

    from persianllama.run.metrics import RunLog

    write = RunLog.write

    def write_then_signal(self, record):  # SIGTERM arrives while step 3 is being logged
        write(self, record)
        if record.get("kind") == "train" and record["step"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(RunLog, "write", write_then_signal)
    cfg = make_config(assets, cut_out, tiny.overrides(assets, cut_out, **OPTIONS))
    stopped = train.run(cfg)
    assert stopped["exit_code"] == 128 + signal.SIGTERM and stopped["step"] == 3
    monkeypatch.setattr(RunLog, "write", write)
    resumed = train.run(cfg)
    assert resumed["finished"] and resumed["step"] == 8
    assert train_losses(cut_out) == train_losses(ref_out)  # bit-identical curve, 8-bit optimizer state included

    a = load_file(str(ref_out / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(cut_out / "adapter" / "adapter_model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # new_rows: only the new rows are trained; the adapter also carries the resized layers (vocab size)
    deltas = [k for k in a if "trainable_tokens_delta" in k]
    assert len(deltas) == 2 and all(a[k].shape == (10, 64) for k in deltas)
    assert adapter_embedding_rows(ref_out / "adapter") == 330
    base = load_file(str(assets.base / "model.safetensors"))
    emb = a["base_model.model.model.embed_tokens.token_adapter.base_layer.weight"]
    assert torch.equal(emb[:320], base["model.embed_tokens.weight"])  # old rows untouched
    init = emb[320:]
    trained = a["base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta"]
    assert (trained - init).abs().amax(1).min() > 1e-4  # every new row moved
    info = json.loads((ref_out / "adapter" / "training_info.json").read_text())
    assert info["embeddings_trained"] == "new_rows"


def test_init_adapter_continues_from_a_trained_adapter(reference, assets, tiny, make_config, tmp_path):
    from persianllama.lora import train

    out = tmp_path / "continued"
    opts = {**OPTIONS, "train.max_steps": 2, "lora.init_adapter": str(reference / "adapter")}
    summary = train.run(make_config(assets, out, tiny.overrides(assets, out, **opts)))
    assert summary["finished"]
    ref_val = [json.loads(x) for x in (reference / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    # before its first step, the new run scores exactly what the adapter scored at the end of its run
    assert summary["val_start"]["bits_per_byte"] == pytest.approx(ref_val[-1]["bits_per_byte"], rel=1e-6)


def test_4bit_lora_without_extension(assets, tiny, make_config, tmp_path):
    from persianllama.lora import train
    from persianllama.lora.export import inspect_adapter

    out = tmp_path / "4bit"
    cfg = make_config(assets, out, tiny.overrides(assets, out, **{"train.max_steps": 4, "log.eval_interval": 0,
                                                                  "model.checkpointing_reentrant": "true"}),
                      tokenizer=assets.base_tok, quantization="4bit")
    summary = train.run(cfg)
    assert summary["finished"] and summary["vocabulary"] is None
    info = inspect_adapter(out / "adapter")
    # embeddings frozen, reentrant checkpointing: LoRA still learned (input grads were enabled)
    assert info["lora_B"] == 14 and info["zero_B"] == 0 and info["embedding"] == {}


def test_bf16_base_without_quantization(assets, tiny, make_config, tmp_path):
    import torch

    from persianllama.lora import train
    from persianllama.run.device import bf16_supported

    if not bf16_supported("cpu"):
        pytest.skip("this CPU has no native bf16")
    out = tmp_path / "bf16"
    cfg = make_config(assets, out, tiny.overrides(assets, out, **{
        "train.max_steps": 4, "log.eval_interval": 0, "model.dtype": "bf16", "train.precision": "bf16"}),
        quantization="none")
    summary = train.run(cfg)
    assert summary["finished"] and summary["precision"] == "bf16"
    losses = train_losses(out)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())


def test_4bit_gradients_unchanged_by_validation(assets, tiny, make_config, tmp_path):
    """bitsandbytes 0.50 repacks 4-bit weights for CPU inference on the first eval forward, after which
    gradients no longer flow through them; validation mid-run must not change a training step's gradients."""
    import torch

    from persianllama.lora.model import build, trainable
    from persianllama.lora.preflight import preflight
    from persianllama.lora.train import validate

    out = tmp_path / "4bit-grads"
    cfg = make_config(assets, out, tiny.overrides(assets, out, **{"lora.dropout": 0.0}),
                      tokenizer=assets.base_tok, quantization="4bit")
    setup = preflight(cfg)
    net, _ = build(setup)
    x = torch.randint(0, 320, (2, 24))

    def grads():
        net.train()
        net(input_ids=x, labels=x).loss.backward()
        g = {n: p.grad.clone() for n, p in trainable(net)}
        net.zero_grad(set_to_none=True)
        return g

    before = grads()
    validate(net, setup, assets.docs[:2])
    after = grads()
    assert all(torch.equal(before[n], after[n]) for n in before)
