"""Every combination that cannot work is refused with a clear one-line message *before* the model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from persianllama.lora.cli import main


@pytest.fixture(autouse=True)
def no_model_loading(monkeypatch):
    """A refusal that came after loading the base would be too late: loading fails the test."""
    from persianllama.lora import model

    def boom(*a, **k):
        raise AssertionError("the base model was loaded before the refusal")

    monkeypatch.setattr(model, "load_base", boom)
    monkeypatch.setattr("persianllama.data.pack", boom)


def refuse(assets, tmp_path, capsys, *extra, tokenizer=None, base=None, quantization="8bit") -> str:
    out = tmp_path / "out"
    args = ["train", "--config", str(Path(__file__).parents[2] / "configs" / "lora_tiny.yaml"),
            "--base", str(base or assets.base), "--tokenizer", str(tokenizer or assets.ext_tok),
            "--corpus", str(assets.corpus), "--output", str(out), "--quantization", quantization,
            f"data.cache_dir={assets.cache}", *extra]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0]


def test_8bit_with_zero3(assets, tmp_path, capsys):
    ds = tmp_path / "ds z3.json"
    ds.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    msg = refuse(assets, tmp_path, capsys, f"deepspeed={ds}")
    assert "ZeRO-3" in msg and "Int8Params" in msg and "cannot partition" in msg


def test_4bit_with_zero3(assets, tmp_path, capsys):
    ds = tmp_path / "z3.json"
    ds.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    msg = refuse(assets, tmp_path, capsys, f"deepspeed={ds}", quantization="4bit")
    assert "ZeRO-3" in msg and "Params4bit" in msg


def test_any_deepspeed_config(assets, tmp_path, capsys):
    ds = tmp_path / "z2.json"
    ds.write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    assert "one device" in refuse(assets, tmp_path, capsys, f"deepspeed={ds}")


def test_tokenizer_smaller_than_base(assets, odd_tokenizers, tmp_path, capsys):
    msg = refuse(assets, tmp_path, capsys, tokenizer=odd_tokenizers.small)
    assert "fewer than the base tokenizer" in msg and "(320)" in msg


def test_tokenizer_that_is_not_an_extension(assets, odd_tokenizers, tmp_path, capsys):
    msg = refuse(assets, tmp_path, capsys, tokenizer=odd_tokenizers.other)
    assert "does not extend the base tokenizer" in msg and "id " in msg


def test_extension_with_frozen_embeddings(assets, tmp_path, capsys):
    msg = refuse(assets, tmp_path, capsys, "lora.embeddings=none")
    assert "adds 10 tokens" in msg and "lora.embeddings=full or new_rows" in msg


def test_new_rows_without_extension(assets, tmp_path, capsys):
    msg = refuse(assets, tmp_path, capsys, "lora.embeddings=new_rows", tokenizer=assets.base_tok)
    assert "adds no tokens" in msg


def test_init_adapter_with_another_vocabulary(assets, tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    adapter = tmp_path / "old adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))
    save_file({"base_model.model.model.embed_tokens.weight": torch.zeros(999, 64)},
              str(adapter / "adapter_model.safetensors"))
    msg = refuse(assets, tmp_path, capsys, f"lora.init_adapter={adapter}")
    assert "vocabulary of 999 tokens" in msg and "gives 330" in msg


def test_resume_from_a_checkpoint_with_another_vocabulary(assets, tmp_path, capsys):
    ck = tmp_path / "out" / "checkpoints" / "step_00000005"
    (ck / "adapter").mkdir(parents=True)
    (ck / "adapter" / "adapter_config.json").write_text("{}")
    (ck / "trainer_state.json").write_text(json.dumps({"step": 5, "samples": 40, "identity": {"vocabulary size": 320}}))
    msg = refuse(assets, tmp_path, capsys)
    assert "cannot resume" in msg and "vocabulary size=320" in msg and "vocabulary size=330" in msg


def test_resume_none_over_existing_checkpoints(assets, tmp_path, capsys):
    ck = tmp_path / "out" / "checkpoints" / "step_00000005"
    ck.mkdir(parents=True)
    (ck / "trainer_state.json").write_text(json.dumps({"step": 5}))
    assert "checkpoint.resume=none would overwrite" in refuse(assets, tmp_path, capsys, "--resume", "none")


def test_base_saved_in_8bit(assets, tmp_path, capsys):
    import shutil

    q = tmp_path / "quantized base"
    shutil.copytree(assets.base, q)
    cfg = json.loads((q / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_8bit": True}
    (q / "config.json").write_text(json.dumps(cfg))
    assert "saved already quantized" in refuse(assets, tmp_path, capsys, base=q)


@pytest.mark.parametrize("extra,needle", [
    (["train.device=cuda"], "no CUDA GPU is visible"),
    (["train.precision=fp16"], "fp16 is not supported on CPU"),
    (["train.seq_len=1024"], "longer than the base model's context (256"),
    (["lora.target_modules=[q_proj,attn_out]"], "attn_out is not a projection"),
    (["train.global_batch_size=10"], "not a multiple of micro_batch_size"),
    (["lora.r=0"], "lora.r=0 is out of range: it must be >= 1"),
    (["lora.dropout=1.5"], "lora.dropout=1.5 is out of range: it must be in [0, 1)"),
])
def test_settings(assets, tmp_path, capsys, extra, needle):
    import torch

    if "cuda" in extra[0] and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert needle in refuse(assets, tmp_path, capsys, *extra)


def test_missing_base_model(assets, tmp_path, capsys):
    msg = refuse(assets, tmp_path, capsys, base=tmp_path / "no such model")
    assert "no such model: no such file or directory" in msg


# --- merge ------------------------------------------------------------------------------------------


def test_merge_refuses_8bit(capsys):
    with pytest.raises(SystemExit):
        main(["merge", "--base", "b", "--adapter", "a", "--output", "o", "--dtype", "int8"])
    from persianllama.errors import UserError
    from persianllama.lora.merge import merge

    with pytest.raises(UserError, match="never 8-bit"):
        merge("b", "a", "o", dtype="int8")


def test_merge_refuses_adapter_of_another_vocabulary(assets, tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))
    save_file({"base_model.model.model.embed_tokens.weight": torch.zeros(325, 64)},
              str(adapter / "adapter_model.safetensors"))
    code = main(["merge", "--base", str(assets.base), "--adapter", str(adapter), "--output", str(tmp_path / "m"),
                 "--tokenizer", str(assets.ext_tok)])
    err = capsys.readouterr().err
    assert code == 2 and "vocabulary mismatch" in err and "330 tokens" in err and "325" in err


def test_merge_refuses_non_empty_output(assets, tmp_path, capsys):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 8}))
    out = tmp_path / "m"
    out.mkdir()
    (out / "x").write_text("keep me")
    code = main(["merge", "--base", str(assets.base), "--adapter", str(adapter), "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "--overwrite" in err and (out / "x").read_text() == "keep me"


def test_merge_refuses_a_folder_that_is_not_an_adapter(assets, tmp_path, capsys):
    (tmp_path / "not an adapter").mkdir()
    code = main(["merge", "--base", str(assets.base), "--adapter", str(tmp_path / "not an adapter"),
                 "--output", str(tmp_path / "m")])
    assert code == 2 and "no adapter_config.json" in capsys.readouterr().err
    assert not (tmp_path / "m").exists() and not list(tmp_path.glob(".m.tmp-*"))  # nothing left behind
