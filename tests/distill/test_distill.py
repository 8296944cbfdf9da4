"""`persianllama distill` runs: alpha = 0 is plain pretraining, the cached teacher equals the online one, resume is
exact, and the cross-vocabulary and sequence paths run end to end (tiny models, CPU, one process)."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from persianllama.cli import main
from tests.distill.conftest import ROOT, student_args


def train_records(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    return [r for r in rows if r.get("kind") == "train"]


def test_alpha_zero_is_plain_pretraining(distill_assets, tmp_path):
    from persianllama.train.pretrain import main as pretrain

    a = distill_assets
    args = student_args(a, tmp_path / "distill", ["--teacher", str(a.teacher)], "kd.alpha=0")
    assert main(["distill", *args]) == 0
    settings = [x for x in args if "=" in x and not x.startswith("kd.")]
    plain = ["--config", str(ROOT / "configs" / "tiny.yaml"), f"tokenizer={a.tok}", f"data.corpus=[{a.corpus}]",
             f"out_dir={tmp_path / 'plain'}", *settings]
    assert pretrain(plain) == 0
    d, p = train_records(tmp_path / "distill"), train_records(tmp_path / "plain")
    assert [r["loss"] for r in d] == [r["loss"] for r in p]  # bit for bit
    assert [r["grad_norm"] for r in d] == [r["grad_norm"] for r in p]
    assert all(r["loss_ce"] == r["loss"] for r in d) and not any("loss_kd" in r for r in d)
    from safetensors.torch import load_file

    wd = load_file(str(tmp_path / "distill" / "hf" / "model.safetensors"))
    wp = load_file(str(tmp_path / "plain" / "hf" / "model.safetensors"))
    assert wd.keys() == wp.keys() and all(torch.equal(wd[k], wp[k]) for k in wd)


@pytest.fixture(scope="module")
def packed(distill_assets):
    from persianllama.data import pack

    return pack(distill_assets.corpus, distill_assets.tok, block_size=64, cache_dir=distill_assets.cache,
                val_fraction=0.02, progress=False)


def _loss_fn(distill_assets, tmp_path, packed, *overrides):
    from transformers import AutoTokenizer

    from persianllama import config as configlib
    from persianllama.distill.config import DistillConfig
    from persianllama.distill.run import make_loss

    cfg = configlib.load(DistillConfig, None, [f"teacher.model={distill_assets.teacher}", f"out_dir={tmp_path}",
                                               f"tokenizer={distill_assets.tok}", *overrides])
    tok = AutoTokenizer.from_pretrained(str(distill_assets.tok))
    return make_loss(cfg, {})(packed, tok, "cpu", SimpleNamespace(rank=0, local_rank=0))


@pytest.mark.parametrize("kind", ["forward_kl", "reverse_kl", "jsd"])
def test_cached_and_online_teacher_give_the_same_loss(distill_assets, tmp_path, packed, kind):
    from transformers import AutoModelForCausalLM

    student = AutoModelForCausalLM.from_pretrained(str(distill_assets.teacher))  # any model of this vocabulary
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # ... that is not the teacher
    cached = _loss_fn(distill_assets, tmp_path / "c", packed, "kd.top_k=5", f"kd.loss={kind}")
    online = _loss_fn(distill_assets, tmp_path / "o", packed, "kd.top_k=5", "kd.cache=false", f"kd.loss={kind}")
    assert len(list((tmp_path / "c" / "teacher_cache").glob("*/shard_*.safetensors"))) == 1
    assert not (tmp_path / "o" / "teacher_cache").exists()
    idx = np.array([3, 0, 17])
    x = torch.from_numpy(packed.batch(idx).astype(np.int64))
    results = []
    for fn in (cached, online):
        loss, parts = fn(student, {"input_ids": x, "labels": x, "block_index": torch.from_numpy(idx)})
        results.append((float(loss), float(parts["loss_ce"]), float(parts["loss_kd"])))
    assert results[0] == pytest.approx(results[1], rel=1e-6, abs=1e-7)
    assert results[0][2] > 0
    # the loss is the formula: (1 - a) * CE + a * KD, with the default a = 0.5
    assert results[0][0] == pytest.approx(0.5 * results[0][1] + 0.5 * results[0][2], rel=1e-6)


def test_resume_after_sigterm_is_exact(distill_assets, tmp_path, monkeypatch):
    a = distill_assets
    extra = ["kd.top_k=4", f"kd.cache_dir={tmp_path / 'shared cache'}"]
    straight = student_args(a, tmp_path / "straight", ["--teacher", str(a.teacher)], *extra, steps=4)
    assert main(["distill", *straight]) == 0
    interrupted = student_args(a, tmp_path / "cut", ["--teacher", str(a.teacher)], *extra, steps=4)
    monkeypatch.setenv("PERSIANLLAMA_TEST_SIGTERM_AT", "2")
    assert main(["distill", *interrupted]) == 128 + signal.SIGTERM
    assert not (tmp_path / "cut" / "hf").exists()
    monkeypatch.delenv("PERSIANLLAMA_TEST_SIGTERM_AT")
    assert main(["distill", *interrupted, "checkpoint.resume=auto"]) == 0
    keys = ("step", "loss", "loss_ce", "loss_kd", "grad_norm")
    assert [[r[k] for k in keys] for r in train_records(tmp_path / "cut")] == \
        [[r[k] for k in keys] for r in train_records(tmp_path / "straight")]
    assert len(list((tmp_path / "shared cache").glob("topk-*"))) == 1  # both runs read one cache
    summary = json.loads((tmp_path / "cut" / "distill_summary.json").read_text(encoding="utf-8"))
    assert summary["kl_to_teacher"] > 0 and summary["kd"]["kd.top_k"] == 4
    card = (tmp_path / "cut" / "hf" / "README.md").read_text(encoding="utf-8")
    assert str(a.teacher) in card and "top-4" in card and "held-out KL" in card


def test_a_changed_kd_setting_is_listed_on_resume(distill_assets, tmp_path, caplog):
    a = distill_assets
    args = student_args(a, tmp_path / "run", ["--teacher", str(a.teacher)], steps=2)
    assert main(["distill", *args]) == 0
    caplog.clear()
    assert main(["distill", *args, "train.max_steps=3", "kd.temperature=4", "checkpoint.resume=auto"]) == 0
    assert "kd.temperature" in caplog.text


def _adapter(base: Path, out: Path) -> Path:
    """A real PEFT LoRA adapter on `base` whose update is not zero (a teacher different from its base)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    net = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base)),
                         LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for n, p in net.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.2)
    net.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(out))
    return out


def test_cross_vocabulary_lora_teacher_to_zero_student(distill_assets, tmp_path):
    from transformers import AutoModelForCausalLM

    a = distill_assets
    adapter = _adapter(a.other_teacher, tmp_path / "adapter")
    out = tmp_path / "run"
    args = student_args(a, out, ["--teacher", str(a.other_teacher), "--teacher-adapter", str(adapter)],
                        "kd.loss=uld", steps=3)
    assert main(["distill", *args]) == 0
    recs = train_records(out)
    assert all(r["kd_positions"] > 0 and r["loss_uld"] > 0 and r["loss_matched_kl"] > 0 for r in recs)
    assert all(r["loss"] == pytest.approx(0.5 * r["loss_ce"] + 0.5 * r["loss_kd"], rel=1e-5) for r in recs)
    model = AutoModelForCausalLM.from_pretrained(str(out / "hf"))
    assert model.config.hidden_size == 32
    card = (out / "hf" / "README.md").read_text(encoding="utf-8")
    assert "ULD" in card and str(adapter) in card


def test_same_vocabulary_loss_refuses_a_teacher_with_another_tokenizer(distill_assets, tmp_path, capsys):
    a = distill_assets
    args = student_args(a, tmp_path / "run", ["--teacher", str(a.other_teacher)], steps=1)
    assert main(["distill", *args]) == 2
    assert "kd.loss=uld" in capsys.readouterr().err


def test_sequence_kd_trains_on_the_teachers_texts(distill_assets, tmp_path, caplog):
    a = distill_assets
    out = tmp_path / "run"
    args = student_args(a, out, ["--teacher", str(a.other_teacher)], "kd.mode=sequence", "kd.sequence_prompts=6",
                        "kd.sequence_new_tokens=12", steps=2)
    assert main(["distill", *args]) == 0
    import pyarrow.parquet as pq

    texts = pq.read_table(out / "teacher_corpus" / "data" / "teacher.parquet").column("text").to_pylist()
    assert len(texts) == 6 and all(texts)
    config = (out / "config.yaml").read_text(encoding="utf-8")
    assert "teacher_corpus" in config
    caplog.clear()  # a second run with more steps reuses the teacher's texts
    assert main(["distill", *args, "train.max_steps=3", "checkpoint.resume=auto"]) == 0
    assert "teacher wrote" not in caplog.text


def test_sequence_kd_on_instruction_data_tunes_the_student_with_the_sft_track(distill_assets, tmp_path):
    """The teacher (a chat model: its tokenizer has a chat template) answers the bundled conversations' questions;
    the student is instruction-tuned on those answers by `persianllama sft`'s own run."""
    import shutil

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from persianllama.sft.template import ensure_template

    a = distill_assets
    chat_teacher = tmp_path / "chat teacher"
    shutil.copytree(a.teacher, chat_teacher)
    tok = AutoTokenizer.from_pretrained(str(chat_teacher))
    ensure_template(tok)
    tok.save_pretrained(str(chat_teacher))
    out = tmp_path / "run"
    args = ["--teacher", str(chat_teacher), "--student", str(a.teacher), "--instructions",
            str(ROOT / "corpora" / "sample" / "instructions" / "conversations.jsonl"), "--output", str(out),
            "--steps", "2", "kd.sequence_prompts=6", "kd.sequence_new_tokens=6",
            f"kd.sft_recipe={ROOT / 'configs' / 'sft_tiny.yaml'}", "log.progress_bar=false"]
    assert main(["distill", *args]) == 0
    answers = [json.loads(line) for line in (out / "teacher_answers.jsonl").read_text(encoding="utf-8").splitlines()]
    assert 0 < len(answers) <= 6 and all(r["messages"][-1]["role"] == "assistant" for r in answers)
    assert max(r["step"] for r in train_records(out)) == 2
    base = AutoModelForCausalLM.from_pretrained(str(a.teacher))
    PeftModel.from_pretrained(base, str(out / "adapter"))  # a PEFT adapter on the student, with a chat template
    assert AutoTokenizer.from_pretrained(str(out / "adapter")).chat_template


def test_instruction_data_needs_a_chat_teacher(distill_assets, tmp_path, capsys):
    a = distill_assets
    args = ["--teacher", str(a.teacher), "--student", str(a.teacher), "--instructions",
            str(ROOT / "corpora" / "sample" / "instructions" / "conversations.jsonl"), "--output", str(tmp_path / "r")]
    assert main(["distill", *args]) == 2
    assert "chat template" in capsys.readouterr().err


def test_student_started_from_a_model(distill_assets, tmp_path):
    """--student MODEL: the student is that model (its architecture and weights), trained on with the teacher."""
    from transformers import AutoConfig

    a = distill_assets
    out = tmp_path / "run"
    args = ["--teacher", str(a.teacher), "--student", str(a.teacher), "--tokenizer", str(a.tok), "--corpus",
            str(a.corpus), "--output", str(out), "--steps", "2", "train.seq_len=64", "train.micro_batch_size=4",
            f"data.cache_dir={a.cache}", "log.progress_bar=false", "ds_config=" + str(ROOT / "ds_configs" / "zero0.json")]
    assert main(["distill", *args]) == 0
    assert AutoConfig.from_pretrained(str(out / "hf")).hidden_size == AutoConfig.from_pretrained(str(a.teacher)).hidden_size
    first = train_records(out)[0]
    assert first["loss_kd"] < 1e-6  # the student starts as the teacher: nothing to learn from it yet
