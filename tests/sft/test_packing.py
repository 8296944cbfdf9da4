"""Packing without cross-talk: a packed row gives each conversation the logits it gets alone, so the loss of a
packed batch equals the sum of the conversations' losses computed one by one."""

from __future__ import annotations

import pytest

from persianllama.sft.packing import IGNORE, Example, collate, pack


def _examples(tok, convs):
    from persianllama.sft.template import encode, ensure_template

    ensure_template(tok)
    return [Example(*encode(tok, c)) for c in convs]


def _nll(logits, labels):
    import torch

    logp = torch.log_softmax(logits[:, :-1].double(), -1)
    target = labels[:, 1:]
    keep = target != IGNORE
    return -logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)[keep].sum()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_loss_equals_the_sum_of_the_examples_alone(attn, sft_assets):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(sft_assets.tok))
    model = AutoModelForCausalLM.from_pretrained(str(sft_assets.base), attn_implementation=attn).eval()
    examples = _examples(tok, sft_assets.conversations)
    packed = pack(examples, 128)
    assert len(packed.rows) < len(examples)  # several conversations share a row
    batch, n_tokens = collate(packed, range(len(packed.rows)), 0, attn)
    assert n_tokens == sum(len(e.ids) for e in packed.examples)
    labels = batch.pop("labels")
    with torch.no_grad():
        logits = model(**batch).logits
        alone = []
        for e in packed.examples:
            ids = torch.tensor([e.ids])
            alone.append(_nll(model(input_ids=ids).logits, torch.tensor([e.labels])))
    assert float(_nll(logits, labels)) == pytest.approx(float(sum(alone)), rel=1e-5)
    # and the row logits of each conversation are its logits alone
    r0 = packed.rows[0]
    at = 0
    for i in r0:
        e = packed.examples[i]
        with torch.no_grad():
            solo = model(input_ids=torch.tensor([e.ids])).logits[0]
        assert torch.allclose(logits[0, at:at + len(e.ids)], solo, atol=1e-5)
        at += len(e.ids)


def test_first_fit_drop_truncate_and_no_target_across_a_boundary():
    exs = [Example([1, 2, 3, 4, 5], [IGNORE, IGNORE, 3, 4, 5]), Example([1, 7, 8], [1, 7, 8]),
           Example(list(range(20)), list(range(20))), Example([1, 9], [IGNORE, IGNORE])]
    p = pack(exs, 8)
    assert p.dropped == 2 and p.truncated == 0 and p.rows == [[0, 1]]  # too long, and nothing to learn: dropped
    assert all(e.labels[0] == IGNORE for e in p.examples)  # a row's next conversation never becomes a target
    t = pack(exs, 8, too_long="truncate", packing=False)
    assert t.truncated == 1 and t.dropped == 1 and len(t.rows) == 3
    batch, n = collate(p, [0], 0, "sdpa")
    assert batch["position_ids"][0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2] and n == 8
    assert batch["attention_mask"].shape == (1, 1, 8, 8) and not bool(batch["attention_mask"][0, 0, 5, 4])
