"""Label-word scoring on a tiny LLaMA, the task rows, and `persianllama w2s` end to end on the bundled sample."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from persianllama.w2s.data import collate, encode, load_task
from persianllama.w2s.score import class_logits, resolve_mode

TASKS = Path(__file__).resolve().parents[2] / "corpora" / "sample" / "tasks"
REPO = TASKS.parents[2]


def test_tasks_read_through_the_eval_harness():
    t = load_task("parsinlu_sentiment", str(TASKS))
    assert len(t.train) == 8 and len(t.test) == 24  # food + movie, dev stands in for train (the reader's rule)
    assert t.choices[0] == "بدون نظر" and len(t.choices) == 7
    assert t.test[0].text.startswith("نظر: ") and t.test[0].text.endswith("\nپاسخ:")
    f = load_task("farstail", str(TASKS))
    assert f.choices == ["درست", "نادرست", "نامشخص"] and len(f.test) == 24


def _model(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(str(path)).eval(), AutoTokenizer.from_pretrained(str(path))


def test_label_sequence_scores_are_the_label_words_log_likelihood(w2s_assets):
    net, tok = _model(w2s_assets.strong)
    t = load_task("farstail", str(TASKS))
    rows = t.test[:3]
    enc = encode(tok, rows, t.choices, t.delimiter, 256)
    batch, _ = collate(enc, range(3), tok.pad_token_id, "label_sequence")
    with torch.no_grad():
        got = class_logits(net, batch, "label_sequence", 3)
        for i, r in enumerate(rows):  # one unpadded sequence per (row, word), summed by hand
            for c, w in enumerate(t.choices):
                p = tok(r.text)["input_ids"]
                word = tok(t.delimiter + w, add_special_tokens=False)["input_ids"]
                logp = torch.log_softmax(net(torch.tensor([p + word])).logits[0].float(), -1)
                want = sum(logp[len(p) - 1 + j, word[j]].item() for j in range(len(word)))
                assert got[i, c].item() == pytest.approx(want, abs=1e-4)


def test_last_token_scores_are_the_first_token_logits(w2s_assets):
    net, tok = _model(w2s_assets.weak)
    t = load_task("parsinlu_qqp", str(TASKS))
    rows = t.test[:4]
    enc = encode(tok, rows, t.choices, t.delimiter, 256)
    mode = resolve_mode("auto", enc.choices)
    if mode != "last_token":
        pytest.skip("the tiny tokenizer starts both label words with one token")
    batch, _ = collate(enc, range(4), tok.pad_token_id, mode)
    with torch.no_grad():
        got = class_logits(net, batch, mode, 2)
        for i, r in enumerate(rows):
            logits = net(torch.tensor([tok(r.text)["input_ids"]])).logits[0, -1]
            assert torch.allclose(got[i], logits[[w[0] for w in enc.choices]], atol=1e-4)


def test_w2s_end_to_end_on_the_bundled_sentiment(w2s_assets, tmp_path, capsys):
    from persianllama.cli import main

    out = tmp_path / "w2s"
    argv = ["w2s", "--task", "parsinlu_sentiment", "--data-dir", str(TASKS), "--weak", str(w2s_assets.weak),
            "--strong", str(w2s_assets.strong), "--output", str(out), "--recipe", str(REPO / "configs" / "w2s_tiny.yaml"),
            "runs=1", "train.max_steps=4", "train.warmup_steps=1", "aux.warmup_frac=0.5"]
    assert main(argv) == 0
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    for m in ("weak", "strong_ceiling", "w2s_ce", "w2s_aux"):
        res = json.loads((out / "run0" / m / "result.json").read_text(encoding="utf-8"))
        assert rep[m]["runs"] == [res["test_accuracy"]] and rep[m]["mean"] == res["test_accuracy"]
        assert rep[m]["std"] == 0.0 and 0 <= res["test_accuracy"] <= 1 and res["test_rows"] == 24
        assert res["steps"] == 4 and (out / "run0" / m / "adapter" / "adapter_config.json").is_file()
    w, c = rep["weak"]["mean"], rep["strong_ceiling"]["mean"]
    for key, m in (("pgr_ce", "w2s_ce"), ("pgr_aux", "w2s_aux")):
        if c - w >= 0.01:
            assert rep[key] == pytest.approx((rep[m]["mean"] - w) / (c - w))
        else:
            assert rep[key] is None and "min_gap" in rep["pgr_note"]
    assert len(json.loads((out / "run0" / "weak" / "result.json").read_text())["soft_labels"]) == 4  # half B
    assert rep["halves"] == [{"a": 4, "b": 4, "seed": 0}] and rep["test_rows"] == 24
    # the confidence loss's coefficient ramps 0 -> a over the first half of the 4 steps (linear), then holds
    coefs = [json.loads(line)["aux_coef"] for line in (out / "run0" / "w2s_aux" / "metrics.jsonl").open()
             if '"train"' in line]
    assert coefs == pytest.approx([0.0, 0.25, 0.5, 0.5])
    assert (out / "report.png").stat().st_size > 1000 and "PGR" in (out / "report.md").read_text(encoding="utf-8")
    assert "w2s parsinlu_sentiment (1 runs)" in capsys.readouterr().out
    # a second call finds every model finished (none trains again: its metrics stay as they were) and writes the
    # same report
    logs = {p: p.read_bytes() for p in (out / "run0").glob("*/metrics.jsonl")}
    assert len(logs) == 4
    assert main(argv) == 0
    assert all(p.read_bytes() == before for p, before in logs.items())
    again = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert all(again[m] == rep[m] for m in ("weak", "strong_ceiling", "w2s_ce", "w2s_aux"))
    assert not math.isnan(again["gap"])
