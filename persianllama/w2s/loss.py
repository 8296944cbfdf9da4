"""The losses of a weak-to-strong run, on class scores (one logit per label word, see `persianllama.w2s.score`).

- ``soft_cross_entropy``: cross-entropy against a distribution over the classes. With one-hot targets it is the
  ordinary classification loss (the weak model on half A, the strong ceiling on half B); with the weak model's
  class probabilities it is the naive weak-to-strong baseline (openai/weak-to-strong's ``xent_loss`` on soft labels).
- ``confidence_loss``: the auxiliary confidence loss of Burns et al. (2023), openai/weak-to-strong
  ``weak_to_strong/loss.py: logconf_loss_fn``: the target is ``(1 - a) * weak + a * hardened strong``, where the
  strong model's own predictions are hardened with a per-batch threshold chosen so that the hardened labels keep
  the weak labels' class balance.

Two choices differ from (or extend) the reference, and say why:

1. The ramp of ``a``. The reference computes ``coef = 1.0 if step_frac > warmup_frac else step_frac`` and then
   ``coef * aux_coef``: during the warm-up the coefficient grows as ``step_frac`` itself, so it reaches only
   ``warmup_frac * aux_coef`` (0.05 with the defaults 0.1 and 0.5) and then jumps to ``aux_coef``. We ramp linearly
   from 0 to ``a`` over the warm-up (``a * min(1, step_frac / warmup_frac)``) and hold ``a`` after it, which is what
   the paper describes and has no jump. ``aux.ramp=reference`` reproduces the reference exactly (the tests check
   both against the reference code).
2. More than two classes. The reference is binary only (it asserts two classes): class 0 goes to the examples
   whose strong probability of class 0 is at least the ``mean_weak[1]``-quantile of those probabilities. With two
   classes we do exactly that (same torch ops, same result). With C > 2 classes (sentiment has 7, NLI 3) the same
   idea is a capacity-constrained argmax: each class may take ``round(mean_weak[c] * B)`` examples (largest
   remainders, so the quotas add up to B), and the (example, class) pairs are taken in order of decreasing strong
   probability, each example getting the first class that still has room. For two classes that is the
   threshold rule again (the two classes fill from the two ends of the sorted probabilities); only the rounding of
   the quota can differ from torch.quantile's interpolation by one example.

The threshold is computed over the examples of one loss call. The reference calls its loss once per optimizer
batch; the shared trainer calls it once per micro-batch, so set ``train.micro_batch_size`` equal to
``train.global_batch_size`` (the w2s recipes do) to get the reference's per-batch balance.
"""

from __future__ import annotations

from typing import Literal

Ramp = Literal["linear", "reference"]


def soft_cross_entropy(logits, targets):
    """Per-example ``-sum_c targets[c] * log softmax(logits)[c]`` in fp32 (targets: rows of class probabilities)."""
    import torch

    return -(targets.float() * torch.log_softmax(logits.float(), dim=-1)).sum(dim=-1)


def aux_coefficient(step_frac: float, alpha: float, warmup_frac: float, ramp: Ramp = "linear") -> float:
    """The weight ``a`` of the hardened strong predictions at `step_frac` (steps done / total steps)."""
    if ramp == "reference":
        return alpha * (1.0 if step_frac > warmup_frac else step_frac)
    if warmup_frac <= 0:
        return alpha
    return alpha * min(1.0, step_frac / warmup_frac)


def class_quotas(mean_weak, n: int):
    """Integer counts per class that add up to `n`, proportional to `mean_weak` (largest remainders; ties go to the
    lower class index)."""
    import torch

    share = mean_weak.double() * n
    quota = torch.floor(share).long()
    left = n - int(quota.sum())
    if left > 0:
        frac = share - quota.double()
        # stable descending order of the remainders: lower class index first among equals
        order = sorted(range(len(frac)), key=lambda c: (-float(frac[c]), c))
        for c in order[:left]:
            quota[c] += 1
    return quota


def hardened_predictions(probs, weak):
    """One-hot hardened strong predictions ``[B, C]`` whose class counts follow the weak labels' mean (see the
    module docstring: the reference's quantile threshold for C = 2, capacity-constrained argmax for C > 2)."""
    import torch

    probs = probs.detach().float()
    mean_weak = weak.float().mean(dim=0)
    n, c = probs.shape
    if c == 2:  # openai/weak-to-strong logconf_loss_fn, op for op
        threshold = torch.quantile(probs[:, 0], mean_weak[1])
        return torch.cat([(probs[:, 0] >= threshold)[:, None], (probs[:, 0] < threshold)[:, None]], dim=1).float()
    left = class_quotas(mean_weak, n).tolist()
    assigned = [-1] * n
    for k in torch.argsort(probs.flatten(), descending=True, stable=True).tolist():
        i, cls = divmod(k, c)
        if assigned[i] < 0 and left[cls] > 0:
            assigned[i] = cls
            left[cls] -= 1
    return torch.nn.functional.one_hot(torch.tensor(assigned, device=probs.device), c).float()


def confidence_loss(logits, weak, coef: float):
    """Per-example auxiliary confidence loss: cross-entropy against ``(1 - coef) * weak + coef * hardened``; also
    returns the hardened predictions (for the metrics)."""
    import torch

    logits = logits.float()
    hard = hardened_predictions(torch.softmax(logits, dim=-1), weak)
    target = weak.float() * (1 - coef) + hard * coef
    return soft_cross_entropy(logits, target), hard
