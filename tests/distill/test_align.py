"""Byte alignment of two tokenizations of the same Persian text: a byte-level BPE (the student's) and a LLaMA-style
SentencePiece with byte fallback and a dummy prefix (the teacher's)."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoTokenizer

from persianllama.distill import align, crossvocab
from persianllama.errors import UserError
from tests.distill.conftest import HARD


@pytest.fixture(scope="module")
def toks(distill_assets):
    return (AutoTokenizer.from_pretrained(str(distill_assets.tok)),
            AutoTokenizer.from_pretrained(str(distill_assets.spm_tok)))


def test_both_tokenizers_spell_the_text_back(toks):
    for tok in toks:
        pieces = align.Pieces.of(tok)
        for text in HARD:
            ids = tok(text, add_special_tokens=False)["input_ids"]
            ends = pieces.ends(ids, text.encode("utf-8"))
            assert ends[-1] == len(text.encode("utf-8"))
            assert np.all(np.diff(ends) >= 0)
        align.check_round_trip(tok, HARD, "test")


def test_the_teacher_spells_unseen_characters_in_byte_fallback_pieces(toks):
    _, teacher = toks
    pieces = teacher.convert_ids_to_tokens(teacher("ژاله 😊", add_special_tokens=False)["input_ids"])
    assert any(p.startswith("<0x") for p in pieces), pieces
    assert sum(p.startswith("<0x") for p in pieces) >= 4 + 2  # 😊 is 4 bytes, ژ is 2


def test_aligned_positions_have_read_the_same_bytes(toks):
    student, teacher = toks
    sp, tp = align.Pieces.of(student), align.Pieces.of(teacher)
    for text in HARD:
        raw = text.encode("utf-8")
        s_ids = student(text, add_special_tokens=False)["input_ids"]
        t_ids = teacher(text, add_special_tokens=False)["input_ids"]
        s_pos, t_pos = align.aligned_positions(sp.ends(s_ids, raw), tp.ends(t_ids, raw))
        assert len(s_pos) >= 3
        s_spelled = [b"".join(sp.table[i] for i in s_ids[:p + 1]) for p in s_pos]
        t_spelled = [b"".join(tp.table[i] for i in t_ids[:p + 1]).removeprefix(b" ") for p in t_pos]
        assert s_spelled == t_spelled  # both sides have read exactly the same prefix
        assert all(raw.startswith(x) for x in s_spelled)
        # every boundary both sides share is used (one inside a character is fine when both spell it in bytes:
        # both have read the same first byte and predict the next)
        s_b = set(sp.ends(s_ids, raw).tolist())
        t_b = set(tp.ends(t_ids, raw).tolist())
        assert len(s_pos) == len((s_b & t_b) - {0})


def test_a_packed_block_becomes_teacher_pieces(toks):
    """Two documents in one block (EOS between), the first cut in the middle of a character by the block start."""
    student, teacher = toks
    sp, tp = align.Pieces.of(student), align.Pieces.of(teacher)
    a = student(HARD[0], add_special_tokens=False)["input_ids"]
    b = student(HARD[2], add_special_tokens=False)["input_ids"]
    row = a + [student.eos_token_id, student.bos_token_id] + b
    # the block starts inside a multi-byte character (a Persian digit the student spells in two byte pieces)
    cut = next(i for i in range(len(a)) if sp.table[a[i]] and sp.table[a[i]][0] & 0xC0 == 0x80)
    block = np.array([row[cut:]])
    plan = crossvocab.plan(block, sp, teacher, tp)
    assert plan.skipped == 0 and len(plan.teacher_ids) == 2
    texts = [teacher.decode(ids, skip_special_tokens=True) for ids in plan.teacher_ids]
    assert texts[1] == HARD[2] and HARD[0].endswith(texts[0])
    assert all(ids[0] == teacher.bos_token_id for ids in plan.teacher_ids)  # the teacher's own BOS
    for _sr, spos, tr, tpos in zip(plan.student_rows, plan.student_pos, plan.teacher_row, plan.teacher_pos):
        for p, q in zip(spos, tpos):
            # the student's bytes since its piece began end where the teacher's do
            s_bytes = b"".join(sp.table[t] for t in block[0][: p + 1])
            t_bytes = b"".join(tp.table[t] for t in plan.teacher_ids[tr[0]][: q + 1]).removeprefix(b" ")
            assert s_bytes.endswith(t_bytes)


def test_a_tokenizer_that_changes_text_is_refused(tmp_path, toks):
    from tokenizers import normalizers

    student, _ = toks
    changed = AutoTokenizer.from_pretrained(student.name_or_path)
    changed.backend_tokenizer.normalizer = normalizers.Lowercase()
    with pytest.raises(UserError, match="changes the text"):
        align.check_round_trip(changed, ["مدل LLaMA"], "teacher")
