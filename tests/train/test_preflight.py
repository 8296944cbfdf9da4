"""The pieces around the loop, without DeepSpeed running: ds_config filling, batch arithmetic, sizes,
schedule, FLOPs, recipes, hostfiles, checkpoint discovery, MFU peaks, metrics files."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest

from persianllama import config as configlib
from persianllama.errors import UserError
from persianllama.run import device
from persianllama.run.batch import batch_arithmetic
from persianllama.run.checkpoint import list_checkpoints, resolve_checkpoint
from persianllama.run.device import choose_precision
from persianllama.run.metrics import gpu_peak_tflops, mfu, plot_loss_curve, read_metrics
from persianllama.run.schedule import lr_at
from persianllama.train.checkpoint import check_stage
from persianllama.train.config import ModelConfig, PretrainConfig, TrainConfig
from persianllama.train.ds_config import fill_ds_config, load_ds_config, zero_stage
from persianllama.train.hostfile import check_hostfile, parse_hostfile
from persianllama.train.preflight import model_sizes

REPO = Path(__file__).resolve().parents[2]
DS_FILES = ["zero0", "zero1", "zero2", "zero3", "zero3_offload"]


def _fill(raw, precision="fp32", **train):
    t = TrainConfig(**{"micro_batch_size": 4, "grad_accum_steps": 2, "seq_len": 128, **train})
    return fill_ds_config(raw, train=t, batch=batch_arithmetic(t, 2), precision=precision, hidden_size=64)


@pytest.mark.parametrize("name", DS_FILES)
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_shipped_ds_configs_fill_every_auto(name, precision):
    raw = load_ds_config(REPO / "ds_configs" / f"{name}.json")
    assert "auto" in json.dumps(raw)
    ds = _fill(raw, precision, lr=2e-4, weight_decay=0.05, beta2=0.99, grad_clip=0.5)
    assert "auto" not in json.dumps(ds)
    assert (ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"], ds["train_batch_size"]) == (4, 2, 16)
    assert ds["gradient_clipping"] == 0.5
    assert ds["bf16"]["enabled"] is (precision == "bf16") and ds["fp16"]["enabled"] is (precision == "fp16")
    assert ds["optimizer"]["params"] | {"torch_adam": None} == {
        "lr": 2e-4, "betas": [0.9, 0.99], "eps": 1e-8, "weight_decay": 0.05, "torch_adam": None}
    assert zero_stage(ds) == int(name[4])
    if zero_stage(ds) >= 1:
        assert ds["zero_optimization"]["reduce_bucket_size"] == 25_000_000  # h^2 = 4096 is below the floor
    if zero_stage(ds) == 3:
        assert ds["zero_optimization"]["stage3_param_persistence_threshold"] == 640


def test_explicit_values_that_agree_are_kept_and_disagreements_all_listed():
    agree = {"train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 2, "train_batch_size": 16,
             "gradient_clipping": 1.0, "bf16": {"enabled": False}, "optimizer": {"type": "AdamW", "params": {"lr": 3e-4}}}
    assert _fill(agree)["train_batch_size"] == 16
    with pytest.raises(UserError) as e:
        _fill({"train_batch_size": 32, "gradient_clipping": 0.3, "fp16": {"enabled": True},
               "optimizer": {"type": "AdamW", "params": {"betas": [0.9, 0.999]}}})
    msg = str(e.value)
    assert msg.startswith("DeepSpeed config ds_config contradicts the training config: ")
    for part in ("train_batch_size is 32 but micro_batch_size x grad_accum_steps x world size=16 gives 16",
                 "gradient_clipping is 0.3 but train.grad_clip=1.0", "fp16.enabled is true but train.precision=fp32",
                 "optimizer.params.betas is [0.9, 0.999]"):
        assert part in msg


def test_scheduler_block_is_filled_from_the_training_config():
    ds = _fill({"scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": "auto",
                                                                   "warmup_num_steps": "auto",
                                                                   "cos_min_ratio": "auto"}}},
               max_steps=500, warmup_steps=0, lr=1e-3, min_lr=1e-4)
    assert ds["scheduler"]["params"] == {"total_num_steps": 500, "warmup_num_steps": 1, "cos_min_ratio": 0.1,
                                         "warmup_min_ratio": 0.0, "warmup_type": "linear"}
    with pytest.raises(UserError, match="scheduler type 'OneCycle' has \"auto\" values"):
        _fill({"scheduler": {"type": "OneCycle", "params": {"cycle_max_lr": "auto"}}})


def test_bad_ds_config_files(tmp_path):
    with pytest.raises(UserError, match="DeepSpeed config not found"):
        load_ds_config(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text('{"zero_optimization": {"stage": 2,}}')
    with pytest.raises(UserError, match="is not valid JSON: line 1"):
        load_ds_config(tmp_path / "bad.json")


def test_batch_arithmetic():
    b = batch_arithmetic(TrainConfig(micro_batch_size=4, global_batch_size=64), 8)
    assert (b.accum, b.global_batch) == (2, 64)
    assert batch_arithmetic(TrainConfig(micro_batch_size=2, grad_accum_steps=3), 2).global_batch == 12
    with pytest.raises(UserError, match="global_batch_size=64 needs grad_accum_steps=2 .* but train.grad_accum_steps=4"):
        batch_arithmetic(TrainConfig(micro_batch_size=4, global_batch_size=64, grad_accum_steps=4), 8)
    with pytest.raises(UserError, match="not a multiple of micro_batch_size 4 x world size 3 = 12"):
        batch_arithmetic(TrainConfig(micro_batch_size=4, global_batch_size=64), 3)


class _Tok:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def test_model_sizes_from_the_tokenizer():
    sizes = model_sizes(ModelConfig(), _Tok(32005), 256)
    assert (sizes.vocab_size, sizes.max_positions) == (32064, 256)
    assert model_sizes(ModelConfig(pad_vocab_to_multiple_of=1), _Tok(32005), 256).vocab_size == 32005
    assert model_sizes(ModelConfig(vocab_size=40000), _Tok(32005), 256).vocab_size == 40000
    with pytest.raises(configlib.ConfigError, match="model.hidden_size=64 is not divisible by num_heads=5"):
        configlib.load(PretrainConfig, None, ["model.num_heads=5"])


def test_vocabulary_mismatch_with_an_initial_model(tmp_path):
    from transformers import LlamaConfig

    LlamaConfig(vocab_size=300, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=64, max_position_embeddings=128).save_pretrained(tmp_path)
    with pytest.raises(UserError, match=r"the model in .* has 300 embedding rows but the tokenizer \(tok\) has 400"):
        model_sizes(ModelConfig(init_from=str(tmp_path)), _Tok(400), 64, "tok")
    with pytest.raises(UserError, match="train.seq_len=256 is above the model's max_position_embeddings=128"):
        model_sizes(ModelConfig(init_from=str(tmp_path)), _Tok(200), 256)


def test_precision_choice(monkeypatch):
    assert choose_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(device, "bf16_supported", lambda device: device == "cuda")
    assert choose_precision("auto", "cuda") == "bf16"
    monkeypatch.setattr(device, "bf16_supported", lambda device: False)
    monkeypatch.setattr(device, "device_name", lambda device: "Tesla T4")
    assert choose_precision("auto", "cuda") == "fp16"  # a T4: fp16 with loss scaling
    with pytest.raises(UserError, match=r"this device \(Tesla T4\) has no native bf16.*use train.precision=fp16"):
        choose_precision("bf16", "cuda")


def test_schedule_warmup_then_cosine():
    lrs = [lr_at(s, 1.0, 0.1, 10, 110) for s in range(1, 111)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)  # step 1 already moves; peak at 10
    assert lrs[59] == pytest.approx(0.1 + 0.9 * 0.5)  # half way through the decay
    assert lrs[-1] == pytest.approx(0.1) and all(a >= b for a, b in itertools.pairwise(lrs[9:]))
    assert lr_at(5, 1.0, 0.1, 0, 10) < 1.0 and lr_at(1, 1.0, 0.1, 0, 10) == pytest.approx(1.0 - 0.9 * (1 - math.cos(math.pi / 10)) / 2)


def test_scheduler_object_follows_lr_at():
    import torch

    from persianllama.run.schedule import warmup_cosine

    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=2e-3)
    sched = warmup_cosine(opt, TrainConfig(lr=2e-3, min_lr=2e-4, warmup_steps=3, max_steps=9))
    seen = []
    for _ in range(9):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([lr_at(s, 2e-3, 2e-4, 3, 9) for s in range(1, 10)])


PARAM_CHECK = """
import json, sys
from transformers import AutoModelForCausalLM
from persianllama.train.config import ModelConfig
from persianllama.train.model import count_params, flops_per_token, llama_config
from persianllama.train.preflight import Sizes

class Tok:
    bos_token_id, eos_token_id, pad_token_id = 0, 1, 3
    def __len__(self):
        return 400

cfg = ModelConfig(hidden_size=64, intermediate_size=96, num_layers=2, num_heads=4, **json.loads(sys.argv[1]))
hf = llama_config(cfg, Sizes(448, 128), Tok(), "sdpa")
model = AutoModelForCausalLM.from_config(hf)
print(json.dumps({"counted": count_params(hf), "real": sum(p.numel() for p in model.parameters()),
                  "flops": flops_per_token(hf, 128)}))
"""


@pytest.mark.parametrize("kw", [{}, {"num_kv_heads": 2, "tie_word_embeddings": True}])
def test_param_count_and_flops_match_the_real_model(kw):
    # In a fresh process: in the full suite some earlier in-process test leaves transformers building tied
    # models untied (not found yet; see the closing note), which is not what a user's run sees.
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", PARAM_CHECK, json.dumps(kw)], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    assert r["counted"]["total"] == r["real"]
    assert r["flops"] == 6 * r["counted"]["matmul"] + 12 * 2 * 64 * 128


@pytest.mark.parametrize("recipe,billions", [("tiny", None), ("125m", 0.134), ("1b", 1.10), ("7b", 6.74),
                                             ("13b", 13.02)])
def test_recipes_load_and_have_the_advertised_size(recipe, billions):
    from persianllama.train.model import count_params, llama_config

    cfg = configlib.load(PretrainConfig, REPO / "configs" / f"{recipe}.yaml")
    assert cfg.data.corpus and cfg.tokenizer and (REPO / cfg.ds_config).is_file()
    if billions:  # with LLaMA's 32000-token vocabulary
        hf = llama_config(cfg.model, model_sizes(cfg.model, _Tok(32000), cfg.train.seq_len), None or
                          type("T", (), {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": None})(), "sdpa")
        assert count_params(hf)["total"] / 1e9 == pytest.approx(billions, rel=0.02)
    described = configlib.describe(PretrainConfig)
    assert "train.global_batch_size" in described and "Sequences per optimizer step" in described


def test_hostfile_parsing_and_reachability(tmp_path):
    hf = tmp_path / "hostfile"
    hf.write_text("# cluster\nnode-a slots=8\n\nnode-b slots=8\n")
    assert [(h.name, h.slots, h.line) for h in parse_hostfile(hf)] == [("node-a", 8, 2), ("node-b", 8, 4)]
    hf.write_text("node-a slots=8\nnode-a slots=4\n")
    with pytest.raises(UserError, match="line 2: host node-a is listed twice"):
        parse_hostfile(hf)
    hf.write_text("node-a gpus=8\n")
    with pytest.raises(UserError, match="line 1: 'node-a gpus=8' is not 'HOSTNAME slots=N'"):
        parse_hostfile(hf)
    hf.write_text("localhost slots=2\n")
    assert check_hostfile(hf, world_size=2)[0].slots == 2  # one local host: no ssh involved
    with pytest.raises(UserError, match="the run has 4 processes but hostfile .* lists only 2 slots"):
        check_hostfile(hf, world_size=4)


def test_checkpoint_discovery_skips_cut_off_saves(tmp_path):
    root = tmp_path / "checkpoints"
    for step, complete in ((5, True), (10, True), (15, False)):
        d = root / f"step_{step:08d}"
        d.mkdir(parents=True)
        if complete:
            (d / "trainer_state.json").write_text(json.dumps({"step": step}))
    assert [(s, ok) for s, _, ok in list_checkpoints(root)] == [(5, True), (10, True), (15, False)]
    assert resolve_checkpoint(tmp_path)[0].name == "step_00000010"
    with pytest.raises(UserError, match="step_00000015 is incomplete"):
        resolve_checkpoint(root / "step_00000015")
    with pytest.raises(UserError, match="no checkpoint found"):
        resolve_checkpoint(tmp_path / "elsewhere")
    (root / "step_00000010" / "trainer_state.json").write_text(json.dumps({"step": 10, "world_size": 2,
                                                                         "zero_stage": 2}))
    state = {"step": 10, "world_size": 2, "zero_stage": 2}
    check_stage(root / "step_00000010", state, world_size=2, zero_stage=2)
    with pytest.raises(UserError, match="written by 2 ranks with ZeRO stage 2, but this run has 4"):
        check_stage(root / "step_00000010", state, world_size=4, zero_stage=2)
    with pytest.raises(UserError, match="written with ZeRO stage 2, this run uses stage 3"):
        check_stage(root / "step_00000010", state, world_size=2, zero_stage=3)


def test_mfu_peaks():
    assert gpu_peak_tflops("NVIDIA H100 80GB HBM3", "bf16") == 989.4
    assert gpu_peak_tflops("NVIDIA H100 PCIe", "bf16") == 756.0
    assert gpu_peak_tflops("NVIDIA A100-SXM4-80GB", "bf16") == 312.0
    assert gpu_peak_tflops("Tesla T4", "fp16") == 65.0 and gpu_peak_tflops("Tesla T4", "bf16") is None
    assert gpu_peak_tflops("NVIDIA L4", "bf16") == 121.0 and gpu_peak_tflops("NVIDIA A10G", "bf16") is None
    assert mfu(6e9, 50_000, 312.0, 1) == pytest.approx(6e9 * 5e4 / 312e12)


def test_metrics_file_survives_a_cut_line_and_plots(tmp_path):
    m = tmp_path / "metrics.jsonl"
    lines = [{"kind": "train", "step": s, "loss": 5 - s / 10} for s in (1, 2, 3)]
    lines += [{"kind": "train", "step": 2, "loss": 4.0}, {"kind": "eval", "step": 3, "loss": 4.5, "bits_per_byte": 2.0,
                                                          "token_perplexity": 90.0}]
    m.write_text("\n".join(json.dumps(x) for x in lines) + '\n{"kind": "tra')
    train, evals = read_metrics(m)
    assert train[2]["loss"] == 4.0 and list(evals) == [3]  # the later record of a step wins
    assert plot_loss_curve(m, tmp_path / "curve.png").stat().st_size > 1000
