"""The chat template round trip: training tokens are exactly what apply_chat_template gives, the generation
prompt is a prefix of them, and only assistant tokens (every turn) carry labels."""

from __future__ import annotations

import pytest

from persianllama.sft.data import read_conversations
from persianllama.sft.template import DEFAULT_TEMPLATE, encode, ensure_template, prompt_ids
from tests.sft.conftest import INSTRUCTIONS


@pytest.fixture(scope="module")
def tok(sft_assets):
    from transformers import AutoTokenizer

    t = AutoTokenizer.from_pretrained(str(sft_assets.tok))
    assert "default" in ensure_template(t)
    return t


def test_training_tokens_equal_apply_chat_template_on_every_sample_conversation(tok):
    convs, _ = read_conversations([str(INSTRUCTIONS / "conversations.jsonl")])
    for c in convs:
        ids, labels = encode(tok, c.messages)
        assert ids == list(tok.apply_chat_template(c.messages, tokenize=True, return_dict=True)["input_ids"])
        replies = [m["content"] for m in c.messages if m["role"] == "assistant"]
        trained = tok.decode([t for t, lab in zip(ids, labels) if lab != -100])
        assert trained == tok.eos_token.join(replies) + tok.eos_token  # every reply and its EOS, nothing else
        for k, m in enumerate(c.messages):
            if m["role"] == "assistant":  # what generation is prompted with is what training saw
                p = prompt_ids(tok, c.messages[:k])
                assert ids[: len(p)] == p and labels[len(p) - 1] == -100 and labels[len(p)] != -100


def test_train_on_all_and_templates_without_generation_markers(tok, sft_assets):
    msgs = sft_assets.conversations[6]
    ids, labels = encode(tok, msgs)
    assert encode(tok, msgs, train_on="all") == (ids, ids)
    plain = tok.chat_template.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    saved = tok.chat_template
    try:
        tok.chat_template = plain  # a hub model's template: the assistant tokens found by rendering prefixes
        assert encode(tok, msgs) == (ids, labels)
    finally:
        tok.chat_template = saved


def test_a_tokenizer_keeps_its_own_template_and_a_file_overrides(sft_assets, tmp_path):
    from transformers import AutoTokenizer

    t = AutoTokenizer.from_pretrained(str(sft_assets.tok))
    t.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    assert ensure_template(t) == "the tokenizer's own"
    f = tmp_path / "t.jinja"
    f.write_text(DEFAULT_TEMPLATE)
    assert ensure_template(t, str(f)).startswith("file") and t.chat_template == DEFAULT_TEMPLATE
