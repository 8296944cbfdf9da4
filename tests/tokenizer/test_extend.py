"""`tokenizer extend`: base ids kept, SentencePiece and HF agree, sizes from the files, bad input."""

from __future__ import annotations

import json

import pytest
from tokenizer_testdata import ENGLISH, SENTENCES, shared_data

from persianllama.errors import UserError
from persianllama.text.normalize import normalize
from persianllama.tokenizer import spm
from persianllama.tokenizer.extend import ExtendConfig, candidates, extend, reachable

TEXTS = [normalize(s) for s in SENTENCES] + ENGLISH + ["  two leading spaces", "کتاب  با دو فاصله", "😀 ok"]


@pytest.fixture(scope="module")
def extended(tmp_path_factory, llama_like_base, sp_dir):
    out = tmp_path_factory.mktemp("extended")
    result = extend(ExtendConfig(base=str(llama_like_base), persian=str(sp_dir), output=str(out)))
    return out, result


def test_base_ids_unchanged_and_no_duplicates(extended, llama_like_base):
    out, result = extended
    base = spm.load_proto(llama_like_base)
    ext = spm.load_proto(out / "tokenizer.model")
    assert result.base_size == len(base.pieces) == 500  # read from the file, not assumed
    assert [(p.piece, p.score, p.type) for p in ext.pieces[:500]] == [(p.piece, p.score, p.type) for p in base.pieces]
    pieces = [p.piece for p in ext.pieces]
    assert len(pieces) == len(set(pieces)) == result.new_size > 500
    assert ext.trainer_spec.vocab_size == len(ext.pieces)


def test_new_tokens_json_maps_new_ids_to_pieces(extended):
    out, result = extended
    mapping = json.loads((out / "new_tokens.json").read_text(encoding="utf-8"))
    ext = spm.load_proto(out / "tokenizer.model")
    assert {int(i) for i in mapping} == set(range(result.base_size, result.new_size))
    assert all(ext.pieces[int(i)].piece == p for i, p in mapping.items())


def test_sentencepiece_and_hf_agree(extended):
    import sentencepiece
    from transformers import AutoTokenizer

    out, _ = extended
    sp = sentencepiece.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    hf = AutoTokenizer.from_pretrained(str(out))
    assert len(hf) == sp.get_piece_size()
    for text in TEXTS:
        ids = sp.encode(text)
        assert hf(text, add_special_tokens=False)["input_ids"] == ids, text
        assert hf(text)["input_ids"] == [sp.bos_id()] + ids
        assert hf.decode(ids) == sp.decode(ids) == text


def test_transformers_own_conversion_agrees_too(extended, tmp_path):
    """Scores fall as ids rise, so even converting tokenizer.model alone gives the same tokens."""
    import shutil

    import sentencepiece
    from transformers import AutoTokenizer

    out, _ = extended
    shutil.copy(out / "tokenizer.model", tmp_path / "tokenizer.model")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
    hf = AutoTokenizer.from_pretrained(str(tmp_path))
    sp = sentencepiece.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    persian = [normalize(s) for s in SENTENCES]
    assert [hf(t, add_special_tokens=False)["input_ids"] for t in persian] == sp.encode(persian)


def test_extension_helps_persian_and_keeps_english(extended, llama_like_base):
    import sentencepiece

    out, _ = extended
    base = sentencepiece.SentencePieceProcessor(model_file=str(llama_like_base))
    ext = sentencepiece.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    persian = [normalize(s) for s in SENTENCES]
    assert sum(map(len, ext.encode(persian))) < 0.7 * sum(map(len, base.encode(persian)))
    assert ext.encode(ENGLISH) == base.encode(ENGLISH)


def test_max_new_caps_and_keeps_the_most_useful(tmp_path, llama_like_base, sp_dir):
    result = extend(ExtendConfig(base=str(llama_like_base), persian=str(sp_dir), output=str(tmp_path), max_new=40))
    assert len(result.added) == 40
    base, persian = spm.load_proto(llama_like_base), spm.load_proto(sp_dir / "tokenizer.model")
    assert list(result.added.values()) == candidates(base, persian)[:40]


def test_only_persian_pieces_by_default(extended):
    from persianllama.tokenizer.extend import is_persian_piece

    _, result = extended
    assert all(is_persian_piece(p) for p in result.added.values())
    assert is_persian_piece("▁می\u200c") and not is_persian_piece("▁the") and is_persian_piece("۱")


def test_reachable():
    assert reachable(["ab", "abc", "xyz"], {"a", "b", "c", "ab", "abc", "xyz"}) == ["ab", "abc"]


def test_hf_directory_as_base(tmp_path, extended, sp_dir):
    """An HF directory holding tokenizer.model works as --base (here: extend the extension again)."""
    out, _ = extended
    with pytest.raises(UserError, match="already contains all"):
        extend(ExtendConfig(base=str(out), persian=str(sp_dir), output=str(tmp_path / "again")))


def test_hf_base_with_added_token_keeps_its_id(tmp_path, llama_like_base, sp_dir):
    """An HF LLaMA directory often adds <pad> after the SentencePiece pieces; its id must not move."""
    import shutil

    from transformers import AutoTokenizer

    base_dir = tmp_path / "base"
    spm.save_hf(spm.load_proto(llama_like_base), base_dir)
    tok = AutoTokenizer.from_pretrained(str(base_dir))
    tok.add_special_tokens({"pad_token": "<pad>"})
    tok.save_pretrained(str(base_dir))
    shutil.copy(llama_like_base, base_dir / "tokenizer.model")
    pad_id = tok.pad_token_id
    assert pad_id == 500
    out = tmp_path / "ext"
    result = extend(ExtendConfig(base=str(base_dir), persian=str(sp_dir), output=str(out)))
    ext = AutoTokenizer.from_pretrained(str(out))
    assert ext.convert_tokens_to_ids("<pad>") == pad_id
    assert min(result.added) == pad_id + 1


# --------------------------------------------------------------------------- bad input


def test_base_that_is_not_a_tokenizer(tmp_path, sp_dir):
    junk = tmp_path / "tokenizer.model"
    junk.write_bytes(b"\x00\x01 not a model")
    with pytest.raises(UserError, match="not a SentencePiece model"):
        extend(ExtendConfig(base=str(junk), persian=str(sp_dir), output=str(tmp_path / "o")))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(UserError, match="not a SentencePiece model"):
        extend(ExtendConfig(base=str(text), persian=str(sp_dir), output=str(tmp_path / "o")))


def test_base_directory_without_model(tmp_path, sp_dir, bpe_dir):
    with pytest.raises(UserError, match="no tokenizer.model"):
        extend(ExtendConfig(base=str(bpe_dir), persian=str(sp_dir), output=str(tmp_path / "o")))


def test_persian_byte_level_model_is_refused(tmp_path, llama_like_base, bpe_dir):
    with pytest.raises(UserError, match="--backend sentencepiece"):
        extend(ExtendConfig(base=str(llama_like_base), persian=str(bpe_dir), output=str(tmp_path / "o")))


def test_base_already_has_every_piece(tmp_path, sp_dir):
    with pytest.raises(UserError, match="already contains all"):
        extend(ExtendConfig(base=str(sp_dir), persian=str(sp_dir), output=str(tmp_path / "o")))


def test_unigram_base_is_refused(tmp_path, sp_dir):
    import sentencepiece

    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(ENGLISH * 10), model_prefix=str(tmp_path / "uni"), model_type="unigram",
        vocab_size=60, minloglevel=2, num_threads=1)
    with pytest.raises(UserError, match="Unigram"):
        extend(ExtendConfig(base=str(tmp_path / "uni.model"), persian=str(sp_dir), output=str(tmp_path / "o")))


def test_max_new_below_one(tmp_path, llama_like_base, sp_dir):
    from persianllama.config import RuleError

    with pytest.raises(RuleError, match=r"^max_new=0 is out of range: it must be >= 1$"):
        extend(ExtendConfig(base=str(llama_like_base), persian=str(sp_dir), output=str(tmp_path / "o"), max_new=0))


# --------------------------------------------------------------------------- real LLaMA-2 (opt-in data)


@pytest.mark.shared
def test_llama2_extension_agrees_on_real_text(tmp_path, sp_dir):
    import sentencepiece
    from transformers import AutoTokenizer

    llama = shared_data("tokenizers/llama2_sentencepiece/tokenizer.model")
    ud = shared_data("ud_persian_seraji/fa_seraji-ud-test.conllu")
    english = shared_data("parsinlu/data/translation/quran/en.yusufali.txt")
    persian = [ln[len("# text = "):] for ln in ud.read_text(encoding="utf-8").split("\n") if ln.startswith("# text = ")]
    english_lines = english.read_text(encoding="utf-8").split("\n")[:500]
    result = extend(ExtendConfig(base=str(llama), persian=str(sp_dir), output=str(tmp_path)))
    assert result.base_size == 32000
    base = spm.load_proto(llama)
    ext = spm.load_proto(tmp_path / "tokenizer.model")
    assert [p.piece for p in ext.pieces[:32000]] == [p.piece for p in base.pieces]
    sp = sentencepiece.SentencePieceProcessor(model_file=str(tmp_path / "tokenizer.model"))
    hf = AutoTokenizer.from_pretrained(str(tmp_path))
    for texts in (persian, [normalize(t) for t in persian], english_lines):
        want = sp.encode(texts)
        got = [e.ids for e in hf.backend_tokenizer.encode_batch(texts, add_special_tokens=False)]
        assert sum(a == b for a, b in zip(want, got)) == len(texts)
