"""`tokenizer train`: both backends on the test sentences, loading, round trip, bad input."""

from __future__ import annotations

import json

import pytest
from tokenizer_testdata import RAW_SENTENCES, SENTENCES

from persianllama.errors import UserError
from persianllama.text.normalize import normalize
from persianllama.tokenizer.pretokenize import PHRASE_PATTERN, pretokens
from persianllama.tokenizer.train import TokenizerTrainConfig, train

ROUND_TRIP = [
    "می‌روند و کتاب‌ها را می‌آورند",  # ZWNJ
    "سال ۱۴۰۳، سال ٢٠٢٤ و سال 2024",  # Persian, Arabic-Indic and Latin digits
    "این مدل را با PyTorch 2.3 روی GPU آموزش دادیم.",  # mixed Persian-English
    "خیلی ممنون 🙏😀 👨‍👩‍👧",  # emoji, ZWJ sequences
    "tab\there, two  spaces and a new\nline",
    "ℵ ∑ 𝔘 ﷽ \u0301",  # rare characters: bytes, never <unk>
]


# --------------------------------------------------------------------------- pre-tokenizer


def test_pretokenizer_keeps_zwnj_inside_words():
    assert pretokens("او می‌رود و کتاب‌ها را می‌خواند") == [
        "او", " می\u200cرود", " و", " کتاب\u200cها", " را", " می\u200cخواند"]


def test_pretokenizer_splits_digits_and_punctuation():
    assert pretokens("سال ۱۴۰۳، 2024 و ٣٤!") == [
        "سال", " ", "۱", "۴", "۰", "۳", "،", " ", "2", "0", "2", "4", " و", " ", "٣", "٤", "!"]
    assert pretokens("«سلام»") == ["«", "سلام", "»"]


def test_phrase_pattern_joins_words_only_across_single_spaces():
    from tokenizers import Regex, pre_tokenizers

    split = pre_tokenizers.Split(Regex(PHRASE_PATTERN), behavior="isolated")
    pieces = [p for p, _ in split.pre_tokenize_str("در این کتاب‌ها، ۲ بار  دیدم")]
    assert pieces == ["در این کتاب\u200cها", "،", " ", "۲", " بار", " ", " دیدم"]


# --------------------------------------------------------------------------- byte-level BPE


def test_bpe_files_and_autotokenizer(bpe_dir):
    from transformers import AutoTokenizer

    assert {"tokenizer.json", "tokenizer_config.json", "tokenizer_card.md"} <= {p.name for p in bpe_dir.iterdir()}
    from tokenizers import Tokenizer

    tok = AutoTokenizer.from_pretrained(str(bpe_dir))
    # The tiny corpus runs out of pairs before 700; the size is whatever training reached.
    assert 500 < len(tok) == Tokenizer.from_file(str(bpe_dir / "tokenizer.json")).get_vocab_size() <= 700
    assert [tok.unk_token_id, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id] == [0, 1, 2, 3]
    ids = tok("کتاب‌ها")["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.eos_token_id not in ids
    batch = tok(["سلام", "سلام دنیا"], padding=True)
    assert batch["input_ids"][0][-1] == tok.pad_token_id
    config = json.loads((bpe_dir / "tokenizer_config.json").read_text())
    assert config["add_bos_token"] is True and config["add_eos_token"] is False


@pytest.mark.parametrize("text", ROUND_TRIP + SENTENCES[:5])
def test_bpe_round_trip(bpe_dir, text):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(bpe_dir))
    ids = tok(text)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == normalize(text)


@pytest.mark.parametrize("raw", RAW_SENTENCES)
def test_bpe_normalizes_raw_text_itself(bpe_dir, raw):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(bpe_dir))
    assert tok(raw)["input_ids"] == tok(normalize(raw))["input_ids"]


def test_bpe_multiword_tokens_join_whole_words(bpe_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(bpe_dir))
    texts = [tok.convert_tokens_to_string([t]) for t in tok.get_vocab()]
    multi = [t for t in texts if " " in t.strip()]
    assert multi, "expected some multi-word tokens"
    words = set(" ".join(SENTENCES + [normalize(s) for s in RAW_SENTENCES]).split())
    for t in multi:
        # every word inside a multi-word token is a whole word of the corpus
        assert all(w in words for w in t.split()[:-1]), t


def test_bpe_card(bpe_dir):
    card = (bpe_dir / "tokenizer_card.md").read_text()
    for needle in ["persian.txt", "MB on disk", "Training time", "multi-word tokens", "<s>=1"]:
        assert needle in card


def test_bpe_word_level_only(tmp_path, corpus_file):
    from tokenizers import Tokenizer

    train(TokenizerTrainConfig(input=[str(corpus_file)], output=str(tmp_path), vocab_size=500, multiword_fraction=0,
                      threads=1))
    tok = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert not [t for t in tok.get_vocab() if "Ġ" in t[1:]]


def test_bpe_from_parquet_corpus_dir_ignores_hidden_dirs(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tokenizers import Tokenizer

    corpus = tmp_path / "corpus"
    (corpus / "shard").mkdir(parents=True)
    (corpus / ".work").mkdir()
    pq.write_table(pa.table({"text": SENTENCES * 3, "id": list(range(len(SENTENCES) * 3))}),
                   corpus / "shard" / "00000.parquet", row_group_size=7)
    # A hidden work dir (the corpus builder's) holds text that must not be read.
    pq.write_table(pa.table({"text": ["ZZZZ QQQQ XXXX " * 50] * 50}), corpus / ".work" / "tmp.parquet")
    out = tmp_path / "tok"
    result = train(TokenizerTrainConfig(input=[str(corpus)], output=str(out), vocab_size=400, threads=1))
    assert result.documents == len(SENTENCES) * 3
    vocab = Tokenizer.from_file(str(out / "tokenizer.json")).get_vocab()
    assert "ZZZZ" not in vocab and "ĠQQQQ" not in vocab


# --------------------------------------------------------------------------- SentencePiece backend


def test_sentencepiece_backend(sp_dir):
    import sentencepiece as spm
    from transformers import AutoTokenizer

    assert (sp_dir / "tokenizer.model").is_file()
    sp = spm.SentencePieceProcessor(model_file=str(sp_dir / "tokenizer.model"))
    assert [sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()] == [0, 1, 2, 3]
    hf = AutoTokenizer.from_pretrained(str(sp_dir))
    assert len(hf) == sp.get_piece_size() == 600
    for text in ROUND_TRIP + SENTENCES:
        norm = normalize(text)
        ids = sp.encode(norm)
        assert hf(text)["input_ids"] == [sp.bos_id()] + ids  # HF normalizes raw text itself
        assert sp.decode(ids) == norm
        assert hf.decode(ids) == norm


def test_sentencepiece_splits_persian_digits(sp_dir):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(sp_dir / "tokenizer.model"))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not sp.is_byte(i)]
    assert not [p for p in pieces if sum(ch.isdigit() for ch in p) > 1]


# --------------------------------------------------------------------------- bad input


def test_empty_corpus(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n")
    with pytest.raises(UserError, match="empty"):
        train(TokenizerTrainConfig(input=[str(empty)], output=str(tmp_path / "out")))


def test_missing_corpus(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        train(TokenizerTrainConfig(input=[str(tmp_path / "nope.txt")], output=str(tmp_path / "out")))


def test_directory_without_text(tmp_path):
    (tmp_path / "c").mkdir()
    with pytest.raises(UserError, match="no \\*.parquet"):
        train(TokenizerTrainConfig(input=[str(tmp_path / "c")], output=str(tmp_path / "out")))


@pytest.mark.parametrize("backend", ["bpe", "sentencepiece"])
def test_vocab_smaller_than_bytes_plus_specials(tmp_path, corpus_file, backend):
    from persianllama.config import RuleError

    with pytest.raises(RuleError, match=r"^vocab_size=259 is out of range: it must be >= 260 \(the byte alphabet, "
                                        r"256, plus 4 special tokens"):
        train(TokenizerTrainConfig(input=[str(corpus_file)], output=str(tmp_path), vocab_size=259, backend=backend))


def test_parquet_without_text_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["سلام"]}), tmp_path / "x.parquet")
    with pytest.raises(UserError, match="no 'text' column"):
        train(TokenizerTrainConfig(input=[str(tmp_path / "x.parquet")], output=str(tmp_path / "out")))
