"""Instruction data formats in, checked conversations out; bad records counted with file and line."""

from __future__ import annotations

import json

import pytest

from persianllama.errors import UserError
from persianllama.sft.data import read_conversations, split_heldout, to_messages
from tests.sft.conftest import INSTRUCTIONS


def test_bundled_sample_files_read_in_every_layout():
    convs, report = read_conversations([str(INSTRUCTIONS / "conversations.jsonl")])
    assert len(convs) == 212 and report.formats == {"messages": 212} and not report.broken
    assert sum(c.messages[0]["role"] == "system" for c in convs) == 30
    alpaca, r1 = read_conversations([str(INSTRUCTIONS / "alpaca.json")])
    sharegpt, r2 = read_conversations([str(INSTRUCTIONS / "sharegpt.jsonl")])
    assert (len(alpaca), r1.formats) == (16, {"alpaca": 16}) and (len(sharegpt), r2.formats) == (15, {"sharegpt": 15})
    assert all(c.messages[-1]["role"] == "assistant" for c in alpaca + sharegpt)


def test_parquet_and_folders(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"instruction": "سلام کن.", "input": "", "output": "سلام!"},
            {"instruction": "ترجمه کن.", "input": "hello", "output": "سلام"}]
    (tmp_path / "d").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d" / "a.parquet")
    convs, _ = read_conversations([str(tmp_path / "d")])
    assert [c.messages[0]["content"] for c in convs] == ["سلام کن.", "ترجمه کن.\n\nhello"]


def test_bad_records_are_counted_with_file_and_line(tmp_path):
    good = {"messages": [{"role": "user", "content": "سلام"}, {"role": "assistant", "content": "سلام!"}]}
    lines = [json.dumps(good, ensure_ascii=False), "{not json", json.dumps({"messages": [{"role": "user", "content": "x"}]}),
             json.dumps({"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]}),
             json.dumps({"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "y"}]}),
             json.dumps({"conversations": [{"from": "alien", "value": "x"}]}), json.dumps({"text": "plain"}),
             json.dumps([1, 2]), json.dumps(good, ensure_ascii=False)]
    f = tmp_path / "mixed.jsonl"
    f.write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfe\n")
    convs, report = read_conversations([str(f)])
    assert len(convs) == 2 and report.records == 10
    assert report.broken == {"invalid_json": 1, "no_answer": 1, "role_order": 1, "wrong_type": 2, "bad_role": 1,
                             "no_layout": 1, "invalid_utf8": 1}
    assert report.examples[0].startswith(f"{f}:2: invalid_json")
    with pytest.raises(UserError, match=r"no usable conversation in .* \(2 record\(s\) read\)"):
        f2 = tmp_path / "bad.jsonl"
        f2.write_text("{oops\n" + json.dumps({"text": "x"}) + "\n")
        read_conversations([str(f2)])


def test_forced_format_normalizer_and_system_prompt():
    rec = {"messages": [{"role": "user", "content": "كتاب هاي من"}, {"role": "assistant", "content": "باشد"}],
           "instruction": "ignored", "output": "ignored"}
    assert to_messages(rec)[0] == "messages"
    assert to_messages(rec, "alpaca")[1][0]["content"] == "ignored"
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "x.jsonl"
        f.write_text(json.dumps(rec, ensure_ascii=False) + "\n", encoding="utf-8")
        (c,), _ = read_conversations([str(f)], system_prompt="تو دستیار هستی.")
        assert c.messages[0] == {"role": "system", "content": "تو دستیار هستی."}
        assert c.messages[1]["content"] == "کتاب‌های من"  # Arabic letters and the plural suffix normalized
        (raw,), _ = read_conversations([str(f)], normalize=False)
        assert raw.messages[0]["content"] == "كتاب هاي من"


def test_missing_inputs_and_offline_hub_ids(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="no such file or folder"):
        read_conversations([str(tmp_path / "nope.jsonl")])
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(UserError, match="not .jsonl, .json or .parquet"):
        read_conversations([str(tmp_path / "x.txt")])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="offline"):
        read_conversations(["nobody-xyz/persian-chats"])


def test_heldout_split_is_stable_and_never_empty():
    convs, _ = read_conversations([str(INSTRUCTIONS / "conversations.jsonl")])
    train, held = split_heldout(convs, 0.05)
    train2, held2 = split_heldout(list(reversed(convs)), 0.05)
    assert {c.key for c in held} == {c.key for c in held2} and 0 < len(held) < 30
    assert len(train) + len(held) == len(convs)
    assert len(split_heldout(convs[:3], 0.001)[1]) == 1
