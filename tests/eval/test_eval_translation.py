"""Persian <-> English translation tasks: parallel-text readers (line-aligned folders like ParsiNLU's Quran
translations, TSV, JSONL) and chrF / BLEU recomputed with sacrebleu from the logged generations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sacrebleu

from persianllama.errors import UserError
from persianllama.eval import data as D
from persianllama.eval import metrics as M
from persianllama.eval.config import EvalConfig
from persianllama.eval.runner import evaluate

SAMPLE = Path(__file__).parent / "data" / "parallel_sample.tsv"


def test_tsv_sample_pairs_with_extra_references():
    pairs = D.load_parallel("test", data={"translation": str(SAMPLE)}).records
    assert len(pairs) == 8
    assert pairs[0]["fa"] == ["امروز هوا آفتابی است.", "هوا امروز آفتابی است."]
    assert pairs[0]["en"] == ["The weather is sunny today."]
    assert (
        D.load_parallel("train", data={"translation": str(SAMPLE)}).records == []
    )  # one file: no few-shot pool


def test_jsonl_and_split_folder(tmp_path):
    folder = tmp_path / "par"
    folder.mkdir()
    for split, n in (("test", 3), ("train", 2)):
        rows = [{"fa": f"جمله {split} {i}", "en": [f"sentence {split} {i}", f"line {i}"]} for i in range(n)]
        rows.append({"fa": "", "en": "dropped: no Persian side"})
        (folder / f"{split}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8"
        )
    test = D.load_parallel("test", data={"translation": str(folder)})
    assert len(test.records) == 3 and test.records[1]["en"] == ["sentence test 1", "line 1"]
    assert dict(test.skipped) == {"empty fa or en": 1}
    assert len(D.load_parallel("train", data={"translation": str(folder)}).records) == 2


def _aligned(folder: Path, n: int, fa_names=("fa.makarem.txt", "fa.other.txt"), en_lines=None):
    folder.mkdir(parents=True, exist_ok=True)
    for name in fa_names:
        folder.joinpath(name).write_text("".join(f"آیهٔ {i} ({name})\n" for i in range(n)), "utf-8")
    folder.joinpath("en.one.txt").write_text("".join(f"verse {i}\n" for i in range(en_lines or n)), "utf-8")
    return folder


def test_line_aligned_folder_like_the_quran_translations(tmp_path):
    folder = _aligned(tmp_path / "quran", 25, fa_names=("fa.ayati.txt", "fa.makarem.txt"))
    test = D.load_parallel("test", data={"translation": str(folder)})
    assert [p["id"] for p in test.records] == ["1", "11", "21"]  # every 10th line
    assert test.records[0]["fa"][0] == "آیهٔ 0 (fa.makarem.txt)"  # Makarem's translation is the fa->en source
    assert len(test.records[0]["fa"]) == 2  # every Persian translation is an en->fa reference
    assert len(D.load_parallel("train", data={"translation": str(folder)}).records) == 22

    bad = _aligned(tmp_path / "bad", 5, en_lines=4)
    with pytest.raises(
        UserError, match=r"not line-aligned \(lines: fa.makarem.txt 5, fa.other.txt 5, en.one.txt 4\)"
    ):
        D.load_parallel("test", data={"translation": str(bad)})
    (tmp_path / "no-en").mkdir()
    (tmp_path / "no-en" / "fa.x.txt").write_text("الف\n", "utf-8")
    with pytest.raises(UserError, match="no en.*.txt file"):
        D.load_parallel("test", data={"translation": str(tmp_path / "no-en")})
    tsv = tmp_path / "wrong.tsv"
    tsv.write_text("persian\tenglish\nالف\ta\n", "utf-8")
    with pytest.raises(
        UserError,
        match=r"wrong.tsv:1: header \['persian', 'english'\] needs tab-separated columns 'fa' and 'en'",
    ):
        D.load_parallel("test", data={"translation": str(tsv)})


def test_translation_scores_are_sacrebleu_on_the_generations(model_dir, tmp_path):
    out = tmp_path / "out"
    res = evaluate(
        EvalConfig(
            model=str(model_dir),
            tasks=["persian_translation"],
            output=str(out),
            data={"translation": str(SAMPLE)},
            batch_size=4,
            bootstrap_iters=0,
            dtype="fp32",
            device="cpu",
            max_gen_tokens=6,
        )
    )
    pairs = D.load_parallel("test", data={"translation": str(SAMPLE)}).records
    for task, src, tgt in (
        ("persian_translation_en_fa", "en", "fa"),
        ("persian_translation_fa_en", "fa", "en"),
    ):
        rows = [
            json.loads(line) for line in (out / "samples" / f"{task}.jsonl").read_text("utf-8").splitlines()
        ]
        assert [r["doc"]["source"] for r in rows] == [p[src][0] for p in pairs]
        hyps = [M.normalize_translation(r["filtered_resps"][0].strip().split("\n")[0], tgt) for r in rows]
        width = max(len(p[tgt]) for p in pairs)
        refs = [
            [M.normalize_translation(p[tgt][i], tgt) if i < len(p[tgt]) else None for p in pairs]
            for i in range(width)
        ]
        assert res["results"][task]["chrf,none"] == pytest.approx(sacrebleu.corpus_chrf(hyps, refs).score)
        assert res["results"][task]["bleu,none"] == pytest.approx(sacrebleu.corpus_bleu(hyps, refs).score)
    assert "persian_translation_en_fa" in (out / "report.md").read_text("utf-8")


def test_multi_reference_scoring_and_persian_normalization():
    # the second reference matches exactly: multi-reference chrF is perfect
    assert M.corpus_chrf([(["چیز دیگری", "هوا آفتابی است"], "هوا آفتابی است")]) == pytest.approx(100.0)
    # Arabic yeh/kaf in the output are not penalised once normalized
    hyp = M.normalize_translation("كتاب روي ميز است", "fa")
    ref = M.normalize_translation("کتاب روی میز است", "fa")
    assert hyp == ref
    assert M.normalize_translation("Books  are here", "en") == "Books  are here"
