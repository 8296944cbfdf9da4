"""The readers and task YAMLs on the real data sets in ../shared/data (skipped when it is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from persianllama.eval import data as D

SHARED_DATA = (
    Path(os.environ.get("PERSIANLLAMA_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "data"
)
pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(not (SHARED_DATA / "parsinlu").is_dir(), reason=f"no shared data at {SHARED_DATA}"),
]

# Counts from each folder's PROVENANCE.txt (minus the records the upstream release leaves unlabeled).
EXPECTED = {
    "parsinlu_multiple_choice": 1050,
    "parsinlu_entailment": 1675 - 2,  # two rows labeled "-"
    "parsinlu_sentiment_food": 1344,
    "parsinlu_sentiment_movie": 816,
    "parsinlu_qqp": 1916,
    "parsinlu_reading_comprehension": 570,
    "farstail": 1564,
    "persianqa": 930,
}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_real_test_splits_read_completely(key):
    loaded = D.load_split(key, "test", data_dir=str(SHARED_DATA))
    assert len(loaded.records) == EXPECTED[key]
    if key == "parsinlu_entailment":
        assert sum(loaded.skipped.values()) == 2
    else:
        assert not loaded.skipped


def test_real_details():
    mc = D.load_split("parsinlu_multiple_choice", "test", data_dir=str(SHARED_DATA)).records
    assert {
        c: sum(r["category"] == c for r in mc) for c in ("literature", "common_knowledge", "math_and_logic")
    } == {"literature": 350, "common_knowledge": 350, "math_and_logic": 350}
    qa = D.load_split("persianqa", "test", data_dir=str(SHARED_DATA)).records
    assert sum(r["is_impossible"] for r in qa) == 279
    assert D.load_split("persianqa", "train", data_dir=str(SHARED_DATA)).records == []  # not in the snapshot
    fs = D.load_split("farstail", "train", data_dir=str(SHARED_DATA)).records
    assert len(fs) == 7266
    texts = [d for s in D.resolve_text_source(data_dir=str(SHARED_DATA)) for d in D.read_text_documents(s)]
    assert len(texts) == 600 + 1455


def test_every_task_yaml_loads_the_real_data():
    from persianllama.eval.runner import check_tasks, expand_tasks, task_manager

    manager = task_manager(data_dir=str(SHARED_DATA))
    sizes = check_tasks(
        expand_tasks(["persian_nlu", "persian_generation", "persian_chat", "persian_translation"], manager),
        manager,
        num_fewshot=None,
    )
    assert sizes["parsinlu_mc_literature"] == 350 and sizes["farstail"] == 1564 and sizes["persianqa"] == 930
    assert sizes["parsinlu_sentiment_food"] == 1344 and sizes["persian_generation"] == 16
    assert sizes["parsinlu_mc_chat_literature"] == 350 and sizes["farstail_chat"] == 1564
    assert sizes["persian_translation_en_fa"] == sizes["persian_translation_fa_en"] == 624


def test_real_subsets_majority_classes_and_quran_pairs():
    from collections import Counter

    from persianllama.eval import metrics as M

    ent = D.load_split("parsinlu_entailment", "test", data_dir=str(SHARED_DATA)).records
    # natural-wiki 590 + natural-voa 134 + natural-miras 126; translation-train 713 + -dev 112, less the 2 '-' rows
    assert Counter(r["subset"] for r in ent) == {"natural": 850, "translated": 823}
    qqp = D.load_split("parsinlu_qqp", "test", data_dir=str(SHARED_DATA)).records
    assert Counter(r["subset"] for r in qqp) == {"natural": 1438, "translated": 478}
    # the constant answers the issue was about: "no sentiment expressed" is 70% / 73% of the rows
    for key, share in (("parsinlu_sentiment_food", 943 / 1344), ("parsinlu_sentiment_movie", 593 / 816)):
        golds = [r["label"] for r in D.load_split(key, "test", data_dir=str(SHARED_DATA)).records]
        majority = M.majority_baseline(golds)
        assert majority["class"] == 0 and majority["acc"] == pytest.approx(share)
        assert majority["macro_f1"] < 0.125  # what the same constant answer scores in macro-F1 (7 classes)
    pairs = D.load_parallel("test", data_dir=str(SHARED_DATA)).records
    assert len(pairs) == 624 and all(len(p["fa"]) == 10 and len(p["en"]) == 1 for p in pairs)
    assert pairs[0]["fa"][0] == "به نام خداوند بخشنده بخشایشگر"  # Makarem's translation first
    # 6236 verses (`wc -l` says 6235: the last line has no newline)
    assert len(D.load_parallel("train", data_dir=str(SHARED_DATA)).records) == 6236 - 624
