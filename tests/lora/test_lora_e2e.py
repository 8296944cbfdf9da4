"""scripts/lora_adapt.sh end to end in 8-bit on a tiny LLaMA with an extended tokenizer (CPU).

One uninterrupted reference run (module fixture) is checked for: the loss and validation
bits-per-byte going down, the adapter's contents, the new rows' initialisation and training, the
memory plan's static parts against the real tensors, merge equivalence, and, against a second run
stopped by SIGTERM and resumed, an identical loss curve.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

STEPS = 16


def read_metrics(out: Path, kind: str = "train") -> list[dict]:
    path = out / "metrics.jsonl"
    if not path.is_file():
        return []
    recs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            recs.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return [r for r in recs if r.get("kind") == kind]


@pytest.fixture(scope="module")
def reference(assets, tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora run") / "run full"
    proc = tiny.run_script(assets, out, tiny.overrides(assets, out, **{"train.max_steps": STEPS}))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc


def test_script_trains_and_loss_goes_down(reference):
    out, proc = reference
    train = read_metrics(out)
    assert [r["step"] for r in train] == list(range(1, STEPS + 1))
    losses = [r["loss"] for r in train]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5, losses
    val = read_metrics(out, "eval")
    assert val[0]["step"] == 0 and val[-1]["step"] == STEPS
    assert val[-1]["bits_per_byte"] < val[0]["bits_per_byte"]
    assert "memory plan:" in proc.stderr and "validation bits/byte" in proc.stderr
    assert "lora: 16 steps" in proc.stdout
    plan = json.loads((out / "memory_plan.json").read_text())
    assert plan["parts_bytes"]["weights"] > 0 and plan["inputs"]["quantization"] == "8bit"


def test_adapter_holds_lora_and_embeddings(reference, assets):
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    out, _ = reference
    adapter = out / "adapter"
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["r"] == 8 and cfg["peft_type"] == "LORA"
    assert sorted(cfg["target_modules"]) == sorted(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    assert sorted(cfg["modules_to_save"]) == ["embed_tokens", "lm_head"]
    sd = load_file(str(adapter / "adapter_model.safetensors"))
    lora_a = [k for k in sd if ".lora_A." in k]
    lora_b = [k for k in sd if ".lora_B." in k]
    assert len(lora_a) == len(lora_b) == 2 * 7  # 2 layers x 7 projections
    assert all(sd[k].numel() > 0 for k in sd)
    assert all(sd[k].abs().sum() > 0 for k in lora_b)  # B starts at zero: nonzero means trained
    n_ext = len(AutoTokenizer.from_pretrained(str(assets.ext_tok)))
    emb = sd["base_model.model.model.embed_tokens.weight"]
    head = sd["base_model.model.lm_head.weight"]
    assert emb.shape == head.shape == (n_ext, 64)
    assert (adapter / "adapter_model.safetensors").stat().st_size > 50_000  # not a 443-byte empty adapter
    assert len(AutoTokenizer.from_pretrained(str(adapter))) == n_ext  # the tokenizer travels with it
    info = json.loads((adapter / "training_info.json").read_text())
    assert info["embeddings_trained"] == "full" and info["vocabulary"]["new_tokens"] == n_ext - 320
    assert "mean" in (adapter / "README.md").read_text()


def test_adapter_loads_with_peft_on_fresh_8bit_base(reference, assets):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    out, _ = reference
    tok = AutoTokenizer.from_pretrained(str(out / "adapter"))
    base = AutoModelForCausalLM.from_pretrained(str(assets.base), device_map={"": "cpu"},
                                                quantization_config=BitsAndBytesConfig(load_in_8bit=True))
    base.resize_token_embeddings(len(tok))
    net = PeftModel.from_pretrained(base, str(out / "adapter"))
    ids = tok("تهران پایتخت ایران است", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = net(input_ids=ids).logits
    assert logits.shape[-1] == len(tok) and torch.isfinite(logits).all()


@pytest.fixture(scope="module")
def built(assets, tiny, make_config, tmp_path_factory):
    """The reference run's model as the trainer builds it (in-process, before any step)."""
    from persianllama.lora.model import build
    from persianllama.lora.plan import estimate
    from persianllama.lora.preflight import plan_inputs, preflight

    out = tmp_path_factory.mktemp("lora build") / "run"
    cfg = make_config(assets, out, tiny.overrides(assets, out, **{"train.max_steps": STEPS}))
    setup = preflight(cfg)
    net, ext_info = build(setup)
    return setup, net, ext_info, estimate(plan_inputs(setup))


def independent_means(assets) -> dict:
    """Mean of the base rows of each new token's base-tokenizer subtokens, computed from the files."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    weights = load_file(str(assets.base / "model.safetensors"))
    base_tok = AutoTokenizer.from_pretrained(str(assets.base_tok))
    ext_tok = AutoTokenizer.from_pretrained(str(assets.ext_tok))
    out = {}
    for new_id in range(len(base_tok), len(ext_tok)):
        piece = ext_tok.convert_ids_to_tokens(new_id)  # an added token's text is its content
        sub = base_tok.encode(piece, add_special_tokens=False)
        assert sub and max(sub) < len(base_tok)
        out[new_id] = (weights["model.embed_tokens.weight"][sub].mean(0), weights["lm_head.weight"][sub].mean(0))
    return out


def test_new_rows_initialised_from_subtoken_means_and_trained(built, reference, assets):
    import torch
    from safetensors.torch import load_file

    setup, net, ext_info, _ = built
    assert ext_info["new_tokens"] == 10 and ext_info["fallback_ids"] == []
    emb = net.base_model.model.model.embed_tokens.modules_to_save["default"].weight
    head = net.base_model.model.lm_head.modules_to_save["default"].weight
    means = independent_means(assets)
    for new_id, (e, h) in means.items():
        torch.testing.assert_close(emb[new_id].detach(), e, rtol=0, atol=1e-6)
        torch.testing.assert_close(head[new_id].detach(), h, rtol=0, atol=1e-6)
    # base rows are the base model's own
    base = load_file(str(assets.base / "model.safetensors"))
    torch.testing.assert_close(emb[:320].detach(), base["model.embed_tokens.weight"], rtol=0, atol=0)
    # ... and the reference run moved the new rows away from that initialisation
    trained = load_file(str(reference[0] / "adapter" / "adapter_model.safetensors"))
    new = sorted(means)
    moved_e = (trained["base_model.model.model.embed_tokens.weight"][new] - emb[new].detach()).abs().amax(1)
    moved_h = (trained["base_model.model.lm_head.weight"][new] - head[new].detach()).abs().amax(1)
    assert (moved_e > 1e-4).all() and (moved_h > 1e-4).all()


def _tensor_bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        if t is None or t.numel() == 0:
            continue
        key = (t.untyped_storage().data_ptr(), t.dtype, tuple(t.shape))
        if key in seen:
            continue
        seen.add(key)
        total += t.numel() * t.element_size()
    return total


def test_plan_static_parts_match_the_tiny_model(built):
    """The plan's weights/adapter/gradient/optimizer parts against the real tensors after one step."""
    import torch

    from persianllama.lora.train import make_optimizer

    setup, net, _, plan = built
    named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    trained_ids = {id(p) for _, p in named}
    frozen = [p for p in net.parameters() if id(p) not in trained_ids]
    scales = [getattr(m.weight, "SCB", None) for m in net.modules() if type(m).__name__ == "Linear8bitLt"]
    weights = _tensor_bytes(frozen) + _tensor_bytes(scales) + _tensor_bytes(b for _, b in net.named_buffers())
    adapter = _tensor_bytes(p for _, p in named)
    assert plan.parts["weights"] == weights
    assert plan.parts["adapter"] == adapter
    assert plan.counts["trainable"] == sum(p.numel() for _, p in named)

    opt = make_optimizer(named, setup.cfg)
    x = torch.randint(0, 330, (2, 16))
    net.train()
    net(input_ids=x, labels=x).loss.backward()
    assert plan.parts["gradients"] == _tensor_bytes(p.grad for _, p in named)
    opt.step()
    state = [t for s in opt.state.values() for t in s.values() if torch.is_tensor(t)]
    assert abs(plan.parts["optimizer"] - _tensor_bytes(state)) / _tensor_bytes(state) < 1e-3
    opt.zero_grad(set_to_none=True)


def test_plan_saved_activations_match_autograd(built):
    """Without checkpointing, the plan's saved activations against what autograd saves (saved-tensor hooks)."""
    import dataclasses

    import torch

    from persianllama.lora.plan import activation_bytes

    setup, net, _, plan = built
    inner = net.get_base_model()
    inner.activation_checkpointing_disable()
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    saved: dict = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in params:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    x = torch.randint(0, 330, (4, 32))
    net.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = net(input_ids=x, labels=x).loss
        del loss
    finally:
        inner.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    predicted = activation_bytes(dataclasses.replace(plan.inputs, gradient_checkpointing=False, micro_batch=4,
                                                     seq_len=32))[0]
    assert predicted == pytest.approx(sum(saved.values()), rel=0.05)


def test_plan_optimizer_part_for_adamw8bit(built):
    """AdamW8bit: uint8 state only for tensors >= min_8bit_size (embeddings here), fp32 for LoRA matrices."""
    import dataclasses

    import torch

    from persianllama.lora.plan import estimate
    from persianllama.lora.train import make_optimizer

    setup, net, _, plan = built
    named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    cfg = dataclasses.replace(setup.cfg, train=dataclasses.replace(setup.cfg.train, optimizer="adamw8bit"))
    opt = make_optimizer(named, cfg)
    x = torch.randint(0, 330, (2, 16))
    net(input_ids=x, labels=x).loss.backward()
    opt.step()
    measured = 0
    for _p, s in opt.state.items():
        for _k, t in s.items():
            if torch.is_tensor(t):
                measured += t.numel() * t.element_size()
    dtypes = {opt.state[p]["state1"].dtype for _, p in named}
    assert dtypes == {torch.uint8, torch.float32}  # the min_8bit_size trap, modelled
    predicted = estimate(dataclasses.replace(plan.inputs, optimizer="adamw8bit")).parts["optimizer"]
    assert predicted == measured
    opt.zero_grad(set_to_none=True)


def test_sigterm_then_resume_continues_the_same_loss_curve(reference, assets, tiny, tmp_path):
    out = tmp_path / "run interrupted"
    overrides = tiny.overrides(assets, out, **{"train.max_steps": STEPS})
    cmd = ["bash", str(tiny.root / "scripts" / "lora_adapt.sh"), *overrides]
    proc = subprocess.Popen(cmd, env=tiny.script_env(assets, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        done = read_metrics(out)
        if done and done[-1]["step"] >= 3:
            os.kill(proc.pid, signal.SIGTERM)  # the script execs python: this is the trainer
            break
        time.sleep(0.005)
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 143, f"rc={proc.returncode} (finished before the signal?)\n{stderr[-3000:]}"
    stopped = read_metrics(out)[-1]["step"]
    assert 3 <= stopped < STEPS
    assert (out / "checkpoints" / f"step_{stopped:08d}" / "trainer_state.json").is_file()
    assert "received SIGTERM" in stderr and not (out / "adapter").exists()

    again = tiny.run_script(assets, out, overrides)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from" in again.stderr and f"at step {stopped}" in again.stderr
    ref = {r["step"]: r for r in read_metrics(reference[0])}
    got = read_metrics(out)
    assert [r["step"] for r in got] == list(range(1, STEPS + 1))
    for r in got:
        assert r["loss"] == pytest.approx(ref[r["step"]]["loss"], rel=1e-6, abs=1e-7), r["step"]
        assert r["lr"] == pytest.approx(ref[r["step"]]["lr"], rel=1e-9)
    # the two adapters are the same
    from safetensors.torch import load_file

    a = load_file(str(reference[0] / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5


@pytest.mark.parametrize("dtype,tol", [("fp32", 1e-4), ("bf16", 3e-2)])
def test_merge_matches_base_plus_adapter(reference, assets, tmp_path, dtype, tol):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from persianllama.lora.cli import main

    adapter = reference[0] / "adapter"
    merged = tmp_path / f"merged {dtype}"
    assert main(["merge", "--base", str(assets.base), "--adapter", str(adapter), "--output", str(merged),
                 "--dtype", dtype]) == 0
    assert (merged / "model.safetensors").is_file() and (merged / "README.md").is_file()
    info = json.loads((merged / "merge_info.json").read_text())
    assert info["vocab"] == 330 and info["dtype"] == dtype
    m = AutoModelForCausalLM.from_pretrained(str(merged))
    assert not any("lora" in n for n, _ in m.named_parameters())
    assert m.get_input_embeddings().weight.dtype == {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    assert not any(type(x).__name__.startswith("Linear8bit") for x in m.modules())

    tok = AutoTokenizer.from_pretrained(str(merged))
    ids = tok(assets.docs[3], return_tensors="pt")["input_ids"][:, :64]
    base = AutoModelForCausalLM.from_pretrained(str(assets.base), dtype=torch.float32)
    base.resize_token_embeddings(len(tok))
    ref = PeftModel.from_pretrained(base, str(adapter)).eval()
    with torch.no_grad():
        want = ref(input_ids=ids).logits.float()
        got = m.eval()(input_ids=ids).logits.float()
    rel = float((got - want).abs().max()) / float(want.abs().max())
    assert rel < tol, rel


def test_script_help_lists_every_setting(tiny):
    proc = subprocess.run(["bash", str(tiny.root / "scripts" / "lora_adapt.sh"), "--help"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    for key in ("model.quantization", "lora.r", "lora.embeddings", "train.optimizer", "checkpoint.resume",
                "data.corpus", "plan.device_memory_gb"):
        assert key in proc.stdout


def test_commands_register_in_the_main_cli():
    import argparse

    from persianllama.lora.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    for argv in (["lora", "train", "--base", "b"], ["merge", "--base", "b", "--adapter", "a", "--output", "o"],
                 ["plan", "--arch", "llama-13b"]):
        assert callable(parser.parse_args(argv).func)
