"""What `tokenizer train` checks before it trains: UTF-8 (file and line named), the Persian share of the
letters (recorded in the card), and the output folder. The one-line CLI messages are rows of
tests/bad_input/cases_tokenizer.py; these tests cover the functions behind them."""

from __future__ import annotations

import logging

import pytest
from tokenizer_testdata import ENGLISH, SENTENCES

from persianllama.errors import UserError
from persianllama.tokenizer import corpus as corpus_mod
from persianllama.tokenizer.train import TokenizerTrainConfig, persian_share, train


def test_utf8_check_names_the_line_across_read_blocks(tmp_path, monkeypatch):
    """Lines and multi-byte characters cut by the block boundary are read whole; the bad line is named."""
    monkeypatch.setattr(corpus_mod, "UTF8_CHECK_BLOCK", 7)  # cut every few bytes, inside characters too
    good = tmp_path / "good.txt"
    good.write_text("\n".join(SENTENCES[:5]) + "\n" + "یک خط بی‌پایان" * 3, encoding="utf-8")
    corpus_mod.check_utf8(good)
    bad = tmp_path / "bad.txt"
    bad.write_bytes("\n".join(SENTENCES[:4]).encode() + b"\n" + "سلام".encode() + b"\xff\xfe\n" + "آخر\n".encode())
    with pytest.raises(UserError, match=r"bad.txt line 5 is not valid UTF-8 \(invalid start byte at byte 8 of the "
                                        r"line\)"):
        corpus_mod.check_utf8(bad)
    last = tmp_path / "last.txt"  # no newline at the end, the bad byte on the last line
    last.write_bytes("خط اول\nخط دوم ".encode() + b"\xc3")
    with pytest.raises(UserError, match=r"last.txt line 2 is not valid UTF-8"):
        corpus_mod.check_utf8(last)


@pytest.mark.parametrize("backend", ["bpe", "sentencepiece"])
def test_non_utf8_text_is_refused_before_training(tmp_path, backend):
    path = tmp_path / "mixed.txt"
    path.write_bytes(("\n".join(SENTENCES * 2) + "\n").encode() + SENTENCES[0].encode("cp1256", "replace") + b"\n")
    with pytest.raises(UserError, match=rf"mixed.txt line {2 * len(SENTENCES) + 1} is not valid UTF-8"):
        train(TokenizerTrainConfig(input=[str(path)], output=str(tmp_path / "out"), backend=backend, vocab_size=300))
    assert not (tmp_path / "out").exists()


def test_persian_share_uses_the_corpus_builder_letters(tmp_path):
    fa = tmp_path / "fa.txt"
    fa.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    en = tmp_path / "en.txt"
    en.write_text("\n".join(ENGLISH) + "\n", encoding="utf-8")
    found = persian_share(corpus_mod.resolve([str(fa)]))
    assert 0.85 < found.share < 1.0  # the sentences hold some Latin words (Python, Netflix, URLs)
    assert found.files == 1 and found.lowest is None
    mixed = persian_share(corpus_mod.resolve([str(fa), str(en)]))
    assert mixed.lowest == (str(en), 0.0) and 0.5 < mixed.share < found.share


def test_every_file_is_sampled(tmp_path, monkeypatch):
    """A small sample still reaches every file: an English file behind a big Persian one counts."""
    monkeypatch.setattr(corpus_mod, "SAMPLE_CHARS", 1000)
    monkeypatch.setattr(corpus_mod, "SAMPLE_MIN_CHARS_PER_FILE", 300)
    big = tmp_path / "a-big.txt"
    big.write_text("\n".join(SENTENCES * 50) + "\n", encoding="utf-8")
    en = tmp_path / "z-en.txt"
    en.write_text("\n".join(ENGLISH * 50) + "\n", encoding="utf-8")
    sample = corpus_mod.resolve([str(big), str(en)]).sample()
    assert [p.name for p, _ in sample] == ["a-big.txt", "z-en.txt"]
    assert all(300 <= len(text) <= 500 for _, text in sample)


def test_english_corpus_refused_then_allowed_with_a_warning(tmp_path, caplog):
    en = tmp_path / "en.txt"
    en.write_text("\n".join(ENGLISH * 4) + "\n", encoding="utf-8")
    config = TokenizerTrainConfig(input=[str(en)], output=str(tmp_path / "tok"), vocab_size=300, threads=1)
    with pytest.raises(UserError, match=r"^the corpus is not Persian text: 0.000 of [\d,]+ letters are Arabic-script "
                                        r".*below min_persian_share=0.5; check --input, or pass --allow-non-persian"):
        train(config)
    assert not (tmp_path / "tok").exists()
    config.allow_non_persian = True
    with caplog.at_level(logging.WARNING, logger="persianllama.tokenizer.train"):
        train(config)
    assert any("training anyway (--allow-non-persian)" in r.getMessage() for r in caplog.records)
    card = (tmp_path / "tok" / "tokenizer_card.md").read_text(encoding="utf-8")
    assert "below it: trained with --allow-non-persian" in card


def test_card_records_the_persian_share(bpe_dir, sp_dir):
    for folder in (bpe_dir, sp_dir):
        row = next(line for line in (folder / "tokenizer_card.md").read_text(encoding="utf-8").splitlines()
                   if line.startswith("| Persian share |"))
        share = float(row.split("|")[2].split()[0])
        assert 0.85 < share <= 1.0 and "threshold 0.5" in row and "below it" not in row


def test_a_stray_english_file_is_warned_about(tmp_path, corpus_file, caplog):
    en = tmp_path / "notes.txt"
    en.write_text("\n".join(ENGLISH) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="persianllama.tokenizer.train"):
        train(TokenizerTrainConfig(input=[str(corpus_file), str(en)], output=str(tmp_path / "tok"), vocab_size=300,
                          threads=1, multiword_fraction=0))
    assert any("notes.txt: only 0.000 of its letters are Arabic-script" in r.getMessage() for r in caplog.records)


def test_output_checked_before_the_corpus_is_read(tmp_path):
    """An output that is a file is named even when the corpus is missing: it is the first check."""
    out = tmp_path / "out.txt"
    out.write_text("keep me")
    with pytest.raises(UserError, match=r"^--output .*out.txt is a file, not a folder"):
        train(TokenizerTrainConfig(input=[str(tmp_path / "missing.txt")], output=str(out)))
    assert out.read_text() == "keep me"


def test_many_files_are_sampled_evenly(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_mod, "SAMPLE_CHARS", 1000)
    monkeypatch.setattr(corpus_mod, "SAMPLE_MIN_CHARS_PER_FILE", 250)  # room for 4 files of the 10
    for i in range(10):
        (tmp_path / f"part-{i}.txt").write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    sample = corpus_mod.resolve([str(tmp_path)]).sample()
    assert [p.name for p, _ in sample] == ["part-0.txt", "part-3.txt", "part-6.txt", "part-9.txt"]
