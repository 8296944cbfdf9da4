"""The weak-to-strong losses against openai/weak-to-strong's own code and hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from persianllama.w2s.loss import (
    aux_coefficient,
    class_quotas,
    confidence_loss,
    hardened_predictions,
    soft_cross_entropy,
)


# openai/weak-to-strong, weak_to_strong/loss.py (commit 6b450f2), logconf_loss_fn.__call__, verbatim but for the
# class wrapper. Copyright 2023 OpenAI, MIT license.
def reference_logconf(logits, labels, step_frac, aux_coef=0.5, warmup_frac=0.1):
    logits = logits.float()
    labels = labels.float()
    coef = 1.0 if step_frac > warmup_frac else step_frac
    coef = coef * aux_coef
    preds = torch.softmax(logits, dim=-1)
    mean_weak = torch.mean(labels, dim=0)
    assert mean_weak.shape == (2,)
    threshold = torch.quantile(preds[:, 0], mean_weak[1])
    strong_preds = torch.cat(
        [(preds[:, 0] >= threshold)[:, None], (preds[:, 0] < threshold)[:, None]],
        dim=1,
    )
    target = labels * (1 - coef) + strong_preds.detach() * coef
    loss = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    return loss.mean()


@pytest.mark.parametrize("step_frac", [0.0, 0.03, 0.1, 0.5, 0.99])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_loss_equals_the_reference(step_frac, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(16, 2, generator=g) * 2
    weak = torch.softmax(torch.randn(16, 2, generator=g) * 3, dim=-1)  # soft weak labels
    coef = aux_coefficient(step_frac, 0.5, 0.1, "reference")
    ours, _ = confidence_loss(logits, weak, coef)
    assert ours.mean().item() == pytest.approx(reference_logconf(logits, weak, step_frac).item(), abs=1e-6)
    # the gradient too (the hardened labels carry none)
    a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    confidence_loss(a, weak, coef)[0].mean().backward()
    reference_logconf(b, weak, step_frac).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-7)


def test_linear_ramp_reaches_alpha_at_the_end_of_warmup():
    # ours: a * step_frac / warmup during the warm-up, then a; the reference: a * step_frac, then a jump to a
    assert aux_coefficient(0.05, 0.5, 0.1) == pytest.approx(0.25)
    assert aux_coefficient(0.1, 0.5, 0.1) == pytest.approx(0.5)
    assert aux_coefficient(0.7, 0.5, 0.1) == 0.5
    assert aux_coefficient(0.1, 0.5, 0.1, "reference") == pytest.approx(0.05)  # never reaches a before the jump
    assert aux_coefficient(0.11, 0.5, 0.1, "reference") == 0.5
    assert aux_coefficient(0.0, 0.75, 0.0) == 0.75
    # after the warm-up both ramps give the reference's loss
    g = torch.Generator().manual_seed(5)
    logits, weak = torch.randn(8, 2, generator=g), torch.softmax(torch.randn(8, 2, generator=g), -1)
    ours, _ = confidence_loss(logits, weak, aux_coefficient(0.5, 0.5, 0.1, "linear"))
    assert ours.mean().item() == pytest.approx(reference_logconf(logits, weak, 0.5).item(), abs=1e-6)


def test_soft_cross_entropy_by_hand():
    logits = torch.tensor([[1.0, 0.0, -1.0]])
    target = torch.tensor([[0.5, 0.25, 0.25]])
    z = math.log(math.e + 1 + math.exp(-1))
    want = -(0.5 * (1 - z) + 0.25 * (0 - z) + 0.25 * (-1 - z))
    assert soft_cross_entropy(logits, target).item() == pytest.approx(want, rel=1e-6)
    # with one-hot targets it is torch's cross-entropy
    y = torch.tensor([2])
    assert soft_cross_entropy(logits, torch.nn.functional.one_hot(y, 3).float()).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-6)


def test_quotas_follow_the_weak_class_balance():
    assert class_quotas(torch.tensor([0.5, 0.3, 0.2]), 10).tolist() == [5, 3, 2]
    assert class_quotas(torch.tensor([0.45, 0.35, 0.2]), 4).tolist() == [2, 1, 1]  # 1.8, 1.4, 0.8 -> largest rests
    assert class_quotas(torch.tensor([1 / 3, 1 / 3, 1 / 3]), 4).tolist() == [2, 1, 1]  # ties: lower class first
    assert int(class_quotas(torch.tensor([0.1, 0.0, 0.9]), 7).sum()) == 7


def test_multiclass_hardening_by_hand():
    # Weak labels: 2 of class 0, 1 of class 1, 1 of class 2 (quotas 2, 1, 1).
    weak = torch.nn.functional.one_hot(torch.tensor([0, 0, 1, 2]), 3).float()
    probs = torch.tensor([[0.90, 0.05, 0.05],   # the most confident pair: row 0 -> class 0
                          [0.80, 0.15, 0.05],   # row 1 -> class 0 (class 0 is now full)
                          [0.70, 0.20, 0.10],   # wants class 0 (full); next its 0.20 -> class 1
                          [0.60, 0.30, 0.10]])  # 0.30 for class 1 comes before row 2's 0.20: row 3 -> class 1 ...
    # sorted pairs: (0,0).90 (1,0).80 (2,0).70x (3,0).60x (3,1).30 -> row 3 class 1; (2,1).20x class 1 full;
    # (1,1).15 taken; (2,2).10 -> row 2 class 2
    hard = hardened_predictions(probs, weak)
    assert hard.argmax(1).tolist() == [0, 0, 2, 1]
    assert hard.sum(0).tolist() == [2.0, 1.0, 1.0]  # the weak labels' balance, not the argmax's (4, 0, 0)
    # target = (1 - a) * weak + a * hardened, loss = CE against it
    logits = probs.log()
    loss, _ = confidence_loss(logits, weak, 0.25)
    target = 0.75 * weak + 0.25 * hard
    want = -(target * torch.log_softmax(logits, -1)).sum(-1)
    assert torch.allclose(loss, want)


def test_binary_hardening_keeps_the_balance():
    g = torch.Generator().manual_seed(3)
    probs = torch.softmax(torch.randn(32, 2, generator=g), -1)
    weak = torch.nn.functional.one_hot((torch.arange(32) % 4 == 0).long(), 2).float()  # 24 of class 0, 8 of class 1
    hard = hardened_predictions(probs, weak)
    assert abs(hard[:, 0].sum().item() - 24) <= 1  # torch.quantile interpolates: within one example
    chosen = probs[:, 0][hard[:, 0] == 1]
    assert chosen.min() >= probs[:, 0][hard[:, 0] == 0].max()  # class 0 goes to the most class-0-confident rows
