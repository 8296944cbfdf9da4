"""benchmarks/gpu_check.py at its smoke size (what a CUDA GPU runs at full size), and `persianllama plan --calibrate`.

The whole check runs once (about 80 s on a 2-core CPU: every part in its own process, zero-125m through the
real `deepspeed` launcher), so the script a GPU holder runs once cannot rot unnoticed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
PARTS = ["setup", "zero-125m", "zero-1b", "lora-13b-8bit", "eval-125m", "lora-4bit", "lora-fp16", "zero-fp16"]

pytestmark = pytest.mark.slow


def run_check(*args: str, timeout: int = 400) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("gpu check")  # a space in every path
    out, work = root / "out dir", root / "work dir"
    proc = run_check("--smoke", "--output", str(out), "--workdir", str(work), "--keep")
    results = json.loads((out / "gpu_check.json").read_text(encoding="utf-8")) if (out / "gpu_check.json").is_file() \
        else None
    return SimpleNamespace(proc=proc, out=out, work=work, results=results)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_every_part_runs_and_reports_its_numbers(smoke):
    assert smoke.proc.returncode == 0, (smoke.proc.stdout + smoke.proc.stderr)[-4000:]
    r = smoke.results
    assert r["mode"] == "smoke" and list(r["parts"]) == PARTS
    parts = r["parts"]
    for name in PARTS[:6]:
        assert parts[name]["status"] == "ok", (name, parts[name])
        assert parts[name]["seconds"] > 0 and (smoke.out / parts[name]["log"]).is_file()
    for name in ("lora-fp16", "zero-fp16"):
        if _cuda():
            assert parts[name]["status"] == "ok" and parts[name]["precision"] == "fp16"
        else:
            assert parts[name]["status"] == "skipped" and "CUDA" in parts[name]["reason"]

    for name, recipe in (("zero-125m", "configs/125m.yaml"), ("zero-1b", "configs/1b.yaml")):
        z = parts[name]
        assert z["recipe"] == recipe and z["steps"] == 5 and z["steady_steps"] >= 3
        assert z["tokens_per_s"] > 0 and 0 < z["mfu"] < 1 and z["flops_per_token"] > 0
        assert z["attention"] in ("sdpa", "flash_attention_2") and z["zero_stage"] == 2
        assert z["precision"] == ("bf16" if _cuda() else "fp32")
        assert z["peak_memory_bytes"] > 0 and math.isfinite(z["loss_last"])
        assert z["seq_len"] == 64 and z["micro_batch"] == 4
        assert (smoke.out / "logs" / f"{name}.metrics.jsonl").is_file()
        # the checkpoints were deleted (up to ~18 GB at full size), the 125M export kept for the eval part
        assert not (smoke.work / "runs" / name / "checkpoints").exists()
    assert (smoke.work / "runs" / "zero-125m" / "hf" / "config.json").is_file()
    # the 1B recipe's grouped-query attention survives the smoke shape: fewer parameters than the 125M's
    assert parts["zero-1b"]["params_m"] < parts["zero-125m"]["params_m"]

    lora = parts["lora-13b-8bit"]
    assert [(p["seq_len"], p["micro_batch"], p["status"]) for p in lora["points"]] == [(32, 2, "ok"), (64, 4, "ok")]
    assert all(p["trainer_plan_agrees"] and math.isfinite(p["loss"]) for p in lora["points"])
    static = lora["memory"]["static"]
    predicted = lora["points"][0]["predicted"]
    assert set(static) == {"weights", "adapter", "gradients", "optimizer"}
    for part, measured in static.items():  # on CPU: the bytes of the real tensors, which the plan counts exactly
        assert abs(predicted[part] / measured - 1) < 0.01, (part, predicted[part], measured)

    ev = parts["eval-125m"]
    assert ev["model"] == "zero-125m's exported model" and ev["documents"] == 20 and ev["mc_n"] == 24
    assert 0 < ev["bits_per_byte"] < 2 * ev["uniform_bpb"] and 0 <= ev["mc_acc"] <= 1

    q4 = parts["lora-4bit"]
    assert q4["quantization"] == "4bit" and q4["steps"] == 3 and math.isfinite(q4["loss_last"])


def test_markdown_and_printed_table(smoke):
    md = (smoke.out / "gpu_check.md").read_text(encoding="utf-8")
    assert "| part | status | seconds | result |" in md
    assert "## Zero track" in md and "## 8-bit LoRA memory" in md and "Static parts (tensors)" in md
    for name in PARTS:
        assert f"| {name} |" in md
        assert any(line.startswith(name) for line in smoke.proc.stdout.splitlines()), name
    assert "gpu_check.json" in smoke.proc.stdout


def test_calibrate_prints_the_error_per_part(smoke, capsys):
    from persianllama.cli import main

    assert main(["plan", "--calibrate", str(smoke.out / "gpu_check.json")]) == 0
    text = capsys.readouterr().out
    for label in ("weights (frozen)", "adapter + embeddings", "gradients", "optimizer state"):
        assert label in text
    assert "largest error" in text
    assert main(["plan", "--calibrate", str(smoke.out), "--json"]) == 0  # the folder works too
    rows = json.loads(capsys.readouterr().out)
    assert {r["quantity"] for r in rows} >= {"weights", "adapter", "gradients", "optimizer"}
    assert all(abs(r["error"]) < 0.01 and r["method"] == "tensors" for r in rows)


def test_calibrate_computes_the_error_from_the_measurement(smoke, tmp_path, capsys):
    """The error comes from this plan against the recorded bytes, not from a number stored in the file."""
    from persianllama.cli import main

    results = json.loads((smoke.out / "gpu_check.json").read_text(encoding="utf-8"))
    mem = results["parts"]["lora-13b-8bit"]["memory"]
    mem["static"]["weights"] = int(mem["static"]["weights"] * 1.25)
    mem["points"][0]["measured"]["allocator_peak"] = 10 * 2**20
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(results), encoding="utf-8")
    assert main(["plan", "--calibrate", str(edited), "--json"]) == 0
    rows = {(r["quantity"], r["point"]): r for r in json.loads(capsys.readouterr().out)}
    assert rows[("weights", "-")]["error"] == pytest.approx(1 / 1.25 - 1, abs=1e-3)
    peak = rows[("allocator_peak", "32x2")]
    assert peak["measured_bytes"] == 10 * 2**20 and peak["error"] == pytest.approx(
        peak["predicted_bytes"] / (10 * 2**20) - 1, abs=1e-4)


@pytest.mark.parametrize("content, words", [
    (None, ["not found", "gpu_check.json"]),
    ("{not json", ["not valid JSON", "line 1"]),
    ('{"mode": "gpu"}', ["no 'parts'"]),
    ('{"parts": {"zero-125m": {"status": "ok"}}}', ["no memory measurement"]),
    ('{"parts": {"lora-13b-8bit": {"status": "failed", "reason": "out of memory", "memory": {"points": []}}}}',
     ["no memory measurement", "out of memory"]),
    ('{"parts": {"l": {"memory": {"points": [{"status": "ok", "plan_inputs": {"seq_len": 4}}]}}}}',
     ["points[0]", "plan inputs"]),
    ('{"parts": {"l": {"memory": {"static": {"weights": "big"}, "points": [{"status": "ok", "plan_inputs": '
     '{"arch": {"name": "x", "hidden": 64, "intermediate": 128, "layers": 2, "heads": 4, "kv_heads": 4, '
     '"vocab": 100}}}]}}}}', ["static.weights", "not a byte count"]),
])
def test_calibrate_refuses_bad_input_in_one_line(tmp_path, capsys, content, words):
    from persianllama.cli import main

    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["plan", "--calibrate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)


def test_a_part_past_its_time_box_is_reported_and_the_next_part_still_runs(smoke, tmp_path):
    out = tmp_path / "out"
    proc = run_check("--smoke", "--output", str(out), "--workdir", str(smoke.work), "--keep",
                     "--parts", "zero-1b,lora-fp16", "--time-box", "zero-1b=2", timeout=120)
    assert proc.returncode == 1, (proc.stdout + proc.stderr)[-3000:]
    parts = json.loads((out / "gpu_check.json").read_text(encoding="utf-8"))["parts"]
    assert list(parts) == ["setup", "zero-1b", "lora-fp16"]
    assert parts["setup"]["status"] == "ok" and parts["setup"]["reused"]  # the scratch folder's setup, kept
    assert parts["zero-1b"]["status"] == "failed" and "timed out after 2 s" in parts["zero-1b"]["reason"]
    assert parts["lora-fp16"]["status"] in ("ok", "skipped")
    assert "timed out" in (out / "gpu_check.md").read_text(encoding="utf-8")
    # the launcher and its rank were stopped with the part: nothing of it is still running
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "--run-part zero-1b" not in ps


def _script_module():
    spec = importlib.util.spec_from_file_location("gpu_check_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("argv, words", [
    (["--parts", "zero-7b"], ["--parts", "zero-7b", "zero-125m"]),
    (["--time-box", "zero-1b=soon"], ["--time-box", "PART=SECONDS"]),
    (["--time-box", "nothing=5"], ["--time-box", "nothing"]),
    (["--budget-s", "0"], ["--budget-s"]),
])
def test_bad_arguments_give_one_line_and_exit_2(tmp_path, capsys, argv, words):
    assert _script_module().main([*argv, "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gpu_check: error:"), err
    for w in words:
        assert w in err


def test_the_report_renders_what_a_gpu_run_records(smoke, tmp_path, capsys):
    """The GPU-only branches of the tables, fed the fields a CUDA run adds to the records (peaks, ratios, the CPU
    bits-per-byte cross-check, an out-of-memory point), so a formatting slip cannot wait for a GPU to show."""
    gc = _script_module()
    results = json.loads(json.dumps(smoke.results))
    results["device"] = {"type": "cuda", "name": "NVIDIA H200", "memory_bytes": 150_000_000_000}
    for name in ("zero-125m", "zero-1b"):
        results["parts"][name].update(peak_memory_bytes=30 * 2**30, peak_memory_kind="torch.cuda.max_memory_allocated",
                                      attention="flash_attention_2", precision="bf16")
    lora = results["parts"]["lora-13b-8bit"]
    lora["memory"]["method"] = "allocator"
    for pt, peak in zip(lora["points"], (7 * 2**20, None)):
        if peak is None:
            pt.update(status="failed", reason="out of memory (the plan predicted 90.0 GiB)", measured={})
            continue
        pt["measured"] = {"allocator_peak": peak, "activations": 2**20, "device_peak": 2**30}
        pt["ratio"] = peak / pt["predicted"]["allocator_peak"]
    lora["memory"]["points"] = [{"status": "ok", "plan_inputs": lora["points"][0]["plan_inputs"],
                                 "measured": lora["points"][0]["measured"]}]
    results["parts"]["eval-125m"].update(bpb_cpu=2.75, bpb_rel_diff=-0.001, device="cuda", dtype="torch.bfloat16")
    results["parts"]["lora-fp16"] = {**results["parts"]["lora-4bit"], "quantization": "8bit", "precision": "fp16",
                                     "measured_peak_bytes": 3 * 2**30, "plan_error": 0.042, "status": "ok"}
    md, table = gc.markdown(results), gc.console_table(results, tmp_path)
    for text in (md, table):
        assert "see gpu_check.json" not in text  # no cell fell back to its error text
        assert "out of memory" in text and "plan error +4.2%" in text and "CPU fp32 2.7500" in text
    assert "# GPU check: NVIDIA H200" in md and "flash_attention_2" in md and "30.00 GiB" in md
    assert f"x{lora['points'][0]['ratio']:.2f}" in table
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps(results), encoding="utf-8")
    from persianllama.cli import main

    assert main(["plan", "--calibrate", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    got = {(r["part"], r["quantity"], r["method"]) for r in rows}
    assert ("lora-13b-8bit", "allocator_peak", "allocator") in got and ("lora-13b-8bit", "device_peak", "device") in got
    assert ("lora-fp16", "allocator_peak", "allocator") not in got  # it recorded no memory block in the smoke run


def test_the_random_8bit_base_is_what_loading_a_checkpoint_in_8bit_gives(tmp_path):
    """`random_quantized_llama` (how the check makes a 13B-shaped 8-bit model without a checkpoint), fed a real
    checkpoint's weights, equals `from_pretrained(..., load_in_8bit)`: same tensors, same logits."""
    import logging

    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM

    from persianllama.lora.calibrate import frozen_bytes, random_quantized_llama

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=300, max_position_embeddings=128, tie_word_embeddings=False)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(tmp_path / "ref")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "ref", dtype=torch.bfloat16, device_map={"": "cpu"},
                                                  quantization_config=BitsAndBytesConfig(load_in_8bit=True))
    source = {k: v.clone() for k, v in LlamaForCausalLM.from_pretrained(tmp_path / "ref").state_dict().items()}
    built = random_quantized_llama(LlamaConfig.from_pretrained(tmp_path / "ref"), device="cpu", dtype="bf16",
                                   weights=lambda name, shape: source[name])
    a, b = built.state_dict(), loaded.state_dict()
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    assert built.is_loaded_in_8bit and not built.training
    assert frozen_bytes(built) == frozen_bytes(loaded)
    x = torch.randint(0, 300, (2, 16))
    with torch.no_grad():
        assert torch.equal(built(input_ids=x).logits, loaded(input_ids=x).logits)

    rand = random_quantized_llama(cfg, device="cpu", dtype="bf16", seed=1)  # the check's own use: random weights
    assert not any(t.is_meta for t in [*rand.parameters(), *rand.buffers()])
    assert type(rand.model.layers[0].mlp.down_proj).__name__ == "Linear8bitLt"
    assert rand.model.embed_tokens.weight.float().std().item() == pytest.approx(cfg.initializer_range, rel=0.1)
