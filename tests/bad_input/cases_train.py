"""Bad-input rows of the Zero track: scripts/pretrain.py, `data pack`, `export`, `pretrain-check`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bad_input.runner import Case, shared_assets


def _assets(tmp: Path) -> dict:
    a = shared_assets()
    return {"tok": a["tok"], "corpus": a["corpus"]}


BASE = ["--config", "{repo}/configs/tiny.yaml", "tokenizer={tok}", "data.corpus={corpus}", "out_dir={tmp}/run",
        "data.cache_dir={tmp}/cache", "train.seq_len=64", "train.micro_batch_size=4", "train.precision=fp32",
        "data.workers=1", "log.tensorboard=false", "export=false"]


def pretrain(id: str, overrides: list[str], words: list[str], setup=None, check=None) -> Case:
    def both(tmp: Path) -> dict:
        return {**_assets(tmp), **(setup(tmp) if setup else {})}

    return Case(id=f"pretrain-{id}", argv=[*BASE, *overrides], words=words, setup=both, check=check,
                entry="pretrain")


def _nothing_trained(tmp: Path, result) -> None:
    assert not (tmp / "run" / "checkpoints").exists()


def _ds(tmp: Path, body: str) -> dict:
    (tmp / "ds.json").write_text(body)
    return {"ds": tmp / "ds.json"}


def _recipe(tmp: Path, body: str) -> dict:
    (tmp / "recipe.yaml").write_text(body)
    return {"recipe": tmp / "recipe.yaml"}


def _old_checkpoint(tmp: Path) -> dict:
    done = tmp / "run" / "checkpoints" / "step_00000003"
    done.mkdir(parents=True)
    (done / "trainer_state.json").write_text(json.dumps({"step": 3}))
    return {}


def _fake_checkpoint(tmp: Path) -> dict:
    """A complete (tiny) checkpoint folder naming a tokenizer: enough for export's checks before any weights."""
    a = shared_assets()
    done = tmp / "run" / "checkpoints" / "step_00000001"
    done.mkdir(parents=True)
    (done / "trainer_state.json").write_text(json.dumps({"step": 1, "tokenizer_dir": str(a["tok"]),
                                                         "model_config": {"model_type": "llama"}}))
    (tmp / "a-file").write_text("mine")
    return {}


def _file_untouched(tmp: Path, result) -> None:
    assert (tmp / "a-file").read_text() == "mine"


def _non_utf8_txt(tmp: Path) -> dict:
    (tmp / "bad.txt").write_bytes("سلام دنیا\n\n".encode() + b"\xff\xfe broken \x80\n")
    return {"tok": shared_assets()["tok"]}


CASES = [
    pretrain("micro-batch-0", ["train.micro_batch_size=0"], ["train.micro_batch_size=0", "must be >= 1"],
             check=_nothing_trained),
    pretrain("lr-negative", ["train.lr=-1"], ["train.lr=-1.0", "must be > 0"]),
    pretrain("lr-nan", ["train.lr=nan"], ["train.lr", "not a finite number"]),
    pretrain("min-lr-above-lr", ["train.min_lr=1"], ["train.min_lr=1.0 must be <= lr="]),
    pretrain("max-steps-0", ["train.max_steps=0"], ["train.max_steps=0", ">= 1"]),
    pretrain("warmup-negative", ["train.warmup_steps=-1"], ["train.warmup_steps=-1", ">= 0"]),
    pretrain("val-fraction-1.5", ["data.val_fraction=1.5"], ["data.val_fraction=1.5", "in [0, 1)"]),
    pretrain("val-fraction-1", ["data.val_fraction=1"], ["data.val_fraction=1.0", "in [0, 1)"]),
    pretrain("workers-negative", ["data.workers=-2"], ["data.workers=-2", ">= 0"]),
    pretrain("save-interval-0", ["checkpoint.save_interval=0"], ["checkpoint.save_interval=0", ">= 1"]),
    pretrain("keep-last-negative", ["checkpoint.keep_last=-1"], ["checkpoint.keep_last=-1", ">= 0"]),
    pretrain("log-interval-0", ["log.log_interval=0"], ["log.log_interval=0", ">= 1"]),
    pretrain("eval-batch-0", ["log.eval_batch_size=0"], ["log.eval_batch_size=0", ">= 1"]),
    pretrain("hidden-0", ["model.hidden_size=0"], ["model.hidden_size=0", ">= 1"]),
    pretrain("hidden-not-divisible", ["model.hidden_size=65"], ["model.hidden_size=65 is not divisible by num_heads"]),
    pretrain("kv-heads-not-divisor", ["model.num_kv_heads=3"], ["num_heads=4 is not divisible by num_kv_heads=3"]),
    pretrain("rope-theta-0", ["model.rope_theta=0"], ["model.rope_theta=0.0", "> 0"]),
    pretrain("beta1-above-1", ["train.beta1=1.5"], ["train.beta1=1.5", "in [0, 1)"]),
    pretrain("grad-clip-negative", ["train.grad_clip=-1"], ["train.grad_clip=-1.0", ">= 0"]),
    pretrain("peak-tflops-0", ["log.peak_tflops=0"], ["log.peak_tflops=0.0", "> 0"]),
    pretrain("verify-unknown", ["checkpoint.verify=md5"], ["checkpoint.verify", "not one of hash, size"]),
    pretrain("precision-unknown", ["train.precision=fp64"], ["train.precision", "not one of"]),
    pretrain("seq-len-1", ["train.seq_len=1"], ["train.seq_len=1", ">= 2"]),
    pretrain("global-batch-not-multiple", ["train.global_batch_size=6"], ["global_batch_size=6 is not a multiple"]),
    pretrain("vocab-below-tokenizer", ["model.vocab_size=100"], ["vocabulary mismatch: model.vocab_size=100"]),
    pretrain("zero-stage-7", ["ds_config={ds}"], ["zero_optimization.stage=7 is not a ZeRO stage"],
             setup=lambda t: _ds(t, '{"zero_optimization": {"stage": 7}}')),
    pretrain("ds-config-not-json", ["ds_config={ds}"], ["ds.json is not valid JSON", "line 1"],
             setup=lambda t: _ds(t, '{"zero_optimization": ')),
    pretrain("ds-config-missing", ["ds_config={tmp}/nope.json"], ["DeepSpeed config not found"]),
    pretrain("unknown-key", ["train.learning_rate=1"], ["unknown key train.learning_rate"]),
    pretrain("override-not-key-value", ["foo"], ["'foo' is not key=value"]),
    pretrain("unbalanced-list", ["data.corpus=[a"], ["not a valid list or mapping"]),
    pretrain("tokenizer-missing", ["tokenizer={tmp}/missing"], ["tokenizer directory not found"]),
    pretrain("resume-from-nowhere", ["checkpoint.resume={tmp}/elsewhere"], ["no checkpoint found"]),
    pretrain("resume-none-over-checkpoints", ["checkpoint.resume=none"], ["already holds checkpoints"],
             setup=_old_checkpoint),
    Case(id="pretrain-recipe-missing", argv=["--config", "{tmp}/nope.yaml"], words=["recipe not found"],
         entry="pretrain"),
    Case(id="pretrain-recipe-not-mapping", argv=["--config", "{recipe}"], words=["must be a mapping"],
         setup=lambda t: _recipe(t, "- a\n- b\n"), entry="pretrain"),
    Case(id="pretrain-recipe-bad-yaml", argv=["--config", "{recipe}"], words=["is not valid YAML"],
         setup=lambda t: _recipe(t, "train: {lr: [\n"), entry="pretrain"),
    # persianllama data pack
    Case(id="pack-block-size-1", argv=["data", "pack", "--corpus", "{corpus}", "--tokenizer", "{tok}",
                                       "--block-size", "1"], words=["--block-size=1", ">= 2"], setup=_assets),
    Case(id="pack-block-size-text", argv=["data", "pack", "--corpus", "{corpus}", "--tokenizer", "{tok}",
                                          "--block-size", "abc"], words=["--block-size", "expected an integer"],
         setup=_assets),
    Case(id="pack-val-fraction-2", argv=["data", "pack", "--corpus", "{corpus}", "--tokenizer", "{tok}",
                                         "--block-size", "64", "--val-fraction", "2"],
         words=["data.val_fraction=2.0", "in [0, 1)"], setup=_assets),
    Case(id="pack-workers-negative", argv=["data", "pack", "--corpus", "{corpus}", "--tokenizer", "{tok}",
                                           "--block-size", "64", "--workers", "-1"],
         words=["data.workers=-1", ">= 0"], setup=_assets),
    Case(id="pack-no-tokenizer", argv=["data", "pack", "--corpus", "{corpus}", "--block-size", "64"],
         words=["needs --tokenizer"], setup=_assets),
    Case(id="pack-overrides-without-config", argv=["data", "pack", "--corpus", "{corpus}", "--tokenizer", "{tok}",
                                                   "--block-size", "64", "train.lr=1"],
         words=["overrides need --config"], setup=_assets),
    Case(id="pack-non-utf8-txt", argv=["data", "pack", "--corpus", "{tmp}/bad.txt", "--tokenizer", "{tok}",
                                       "--block-size", "16", "--cache-dir", "{tmp}/cache"],
         words=["bad.txt", "line 3", "utf-8"], setup=_non_utf8_txt),
    # persianllama export / pretrain-check
    Case(id="export-nothing-there", argv=["export", "{tmp}/nothing"], words=["no checkpoint found"]),
    Case(id="export-onto-a-file", argv=["export", "{tmp}/run", "--out", "{tmp}/a-file"],
         words=["is an existing file"], setup=_fake_checkpoint, check=_file_untouched),
    Case(id="export-onto-the-run", argv=["export", "{tmp}/run", "--out", "{tmp}/run", "--overwrite"],
         words=["holds the input"], setup=_fake_checkpoint),
    Case(id="export-into-the-checkpoints", argv=["export", "{tmp}/run", "--out", "{tmp}/run/checkpoints/x"],
         words=["is inside the input"], setup=_fake_checkpoint),
    Case(id="export-incomplete-step", argv=["export", "{tmp}/run/checkpoints/step_00000009"], words=["is incomplete"],
         setup=lambda t: (t / "run" / "checkpoints" / "step_00000009").mkdir(parents=True) or {}),
    Case(id="pretrain-check-world-0", argv=["pretrain-check", "--config", "{repo}/configs/tiny.yaml",
                                            "--world-size", "0", "tokenizer={tok}", "data.corpus={corpus}"],
         words=["--world-size=0", ">= 1"], setup=_assets),
]
