"""Bad-input rows of the LoRA track: `lora train`, `merge`, `plan`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bad_input.runner import Case, shared_assets, tiny_base


def _assets(tmp: Path) -> dict:
    a = shared_assets()
    return {"base": tiny_base(), "corpus": a["corpus"]}


TRAIN = ["lora", "train", "--config", "{repo}/configs/lora_tiny.yaml", "--base", "{base}", "--corpus", "{corpus}",
         "--output", "{tmp}/run", "data.cache_dir={tmp}/cache", "train.seq_len=32", "data.workers=1"]


def train(id: str, extra: list[str], words: list[str], setup=None, env=None) -> Case:
    def both(tmp: Path) -> dict:
        return {**_assets(tmp), **(setup(tmp) if setup else {})}

    def nothing_trained(tmp: Path, result) -> None:
        assert not (tmp / "run" / "adapter").exists()
        assert [p.name for p in (tmp / "run" / "checkpoints").glob("step_*")] in ([], ["step_00000003"])

    return Case(id=f"lora-{id}", argv=[*TRAIN, *extra], words=words, setup=both, check=nothing_trained,
                env=env or {})


def _fake_adapter(tmp: Path) -> dict:
    (tmp / "parent" / "adapter").mkdir(parents=True)
    (tmp / "parent" / "adapter" / "adapter_config.json").write_text(json.dumps({"r": 8}))
    (tmp / "a-file").write_text("mine")
    return {"base": tiny_base()}


def _old_checkpoint(tmp: Path) -> dict:
    done = tmp / "run" / "checkpoints" / "step_00000003"
    done.mkdir(parents=True)
    (done / "trainer_state.json").write_text(json.dumps({"step": 3}))
    return {}


def _bad_arch(tmp: Path) -> dict:
    (tmp / "arch.json").write_text("{bad")
    (tmp / "arch2.json").write_text(json.dumps({"hidden_size": "wide", "intermediate_size": 1, "num_hidden_layers": 1,
                                                "num_attention_heads": 1, "vocab_size": 10}))
    return {}


PLAN = ["plan", "--config", "{repo}/configs/lora_13b_8bit.yaml"]

CASES = [
    train("rank-0", ["lora.r=0"], ["lora.r=0", ">= 1"]),
    train("alpha-0", ["lora.alpha=0"], ["lora.alpha=0", ">= 1"]),
    train("dropout-1.5", ["lora.dropout=1.5"], ["lora.dropout=1.5", "in [0, 1)"]),
    train("no-targets", ["lora.target_modules=[]"], ["lora.target_modules must not be empty"]),
    train("unknown-target", ["lora.target_modules=[attn_proj]"], ["attn_proj is not a projection"]),
    train("optimizer-unknown", ["train.optimizer=sgd"], ["train.optimizer", "not one of adamw, adamw8bit"]),
    train("min-8bit-size-0", ["train.min_8bit_size=0"], ["train.min_8bit_size=0", ">= 1"]),
    train("fragmentation-1", ["plan.fragmentation=1"], ["plan.fragmentation=1.0", "in [0, 1)"]),
    train("device-memory-negative", ["plan.device_memory_gb=-1"], ["plan.device_memory_gb=-1.0", "> 0"]),
    train("zero3-with-8bit", ["deepspeed={repo}/ds_configs/zero3.json"], ["uses ZeRO-3", "cannot partition"]),
    train("base-missing", ["model.base={tmp}/no-model"], ["no-model"]),
    train("base-hub-id-offline", ["model.base=nobody-xyz/does-not-exist"], ["nobody-xyz/does-not-exist", "offline"],
          env={"HF_HUB_OFFLINE": "1"}),
    train("rank-text", ["--rank", "abc"], ["--rank", "abc"]),
    train("device-cuda", ["train.device=cuda"], ["train.device=cuda but no CUDA GPU"]),
    train("fp16-on-cpu", ["train.precision=fp16"], ["train.precision=fp16 is not supported on CPU"]),
    train("dtype-fp16-on-cpu", ["model.dtype=fp16"], ["model.dtype=fp16 is not supported on CPU"]),
    train("seq-len-beyond-context", ["train.seq_len=100000"], ["train.seq_len=100000", "context"]),
    train("lr-below-min-lr", ["train.lr=1e-5", "train.min_lr=1e-3"], ["train.min_lr=0.001 must be <= lr=1e-05"]),
    train("resume-none-over-checkpoints", ["checkpoint.resume=none"], ["resume=none would overwrite"],
          setup=_old_checkpoint),
    Case(id="merge-dtype-int8", argv=["merge", "--base", "{base}", "--adapter", "{tmp}/parent/adapter", "--output",
                                      "{tmp}/m", "--dtype", "int8"], words=["--dtype", "int8"], setup=_fake_adapter),
    Case(id="merge-onto-the-inputs-parent", argv=["merge", "--base", "{base}", "--adapter", "{tmp}/parent/adapter",
                                                  "--output", "{tmp}/parent", "--overwrite"],
         words=["holds the input"], setup=_fake_adapter,
         check=lambda t, r: (t / "parent" / "adapter" / "adapter_config.json").is_file()),
    Case(id="merge-onto-a-file", argv=["merge", "--base", "{base}", "--adapter", "{tmp}/parent/adapter", "--output",
                                       "{tmp}/a-file"], words=["is an existing file"], setup=_fake_adapter),
    Case(id="merge-adapter-without-weights", argv=["merge", "--base", "{base}", "--adapter", "{tmp}/parent/adapter",
                                                   "--output", "{tmp}/m"], words=["no adapter_model.safetensors"],
         setup=_fake_adapter, check=lambda t, r: not (t / "m").exists()),
    Case(id="plan-vocab-negative", argv=[*PLAN, "--vocab", "-5"], words=["--vocab=-5", ">= 1"]),
    Case(id="plan-vocab-0", argv=[*PLAN, "--vocab", "0"], words=["--vocab=0", ">= 1"]),
    Case(id="plan-device-memory-0", argv=[*PLAN, "--device-memory-gb", "0"], words=["device_memory_gb=0.0", "> 0"]),
    Case(id="plan-device-memory-nan", argv=[*PLAN, "--device-memory-gb", "nan"], words=["not a finite number"]),
    Case(id="plan-device-memory-inf", argv=[*PLAN, "--device-memory-gb", "inf"], words=["not a finite number"]),
    Case(id="plan-arch-bad-json", argv=[*PLAN, "--arch", "{tmp}/arch.json"], words=["not a valid JSON config"],
         setup=_bad_arch),
    Case(id="plan-arch-bad-numbers", argv=[*PLAN, "--arch", "{tmp}/arch2.json"], words=["is not a number"],
         setup=_bad_arch),
    Case(id="plan-arch-unknown", argv=[*PLAN, "--arch", "llama-99b"], words=["unknown architecture 'llama-99b'"]),
]
