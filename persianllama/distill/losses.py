"""The knowledge-distillation terms, as plain functions of logits (no model, no data: tests check them by hand).

    L = (1 - alpha) * CE + alpha * T^2 * D(p_teacher^T, p_student^T)

Every function returns the mean over the positions it is given; the caller picks the positions (those that
predict a real next token). Log-probabilities are computed in fp32 whatever the model's precision.

Same vocabulary: `divergence` on full distributions, or `bucket_logprobs` first, which folds a distribution onto
the teacher's top-k tokens plus one bucket for the rest of the mass (what the teacher cache stores).
Different vocabularies: `uld` (sorted-probability distance) and `matched_kl` on pieces both vocabularies share.
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["forward_kl", "reverse_kl", "jsd"]


def tempered_logprobs(logits, temperature: float):
    """log softmax(logits / T) in fp32."""
    import torch

    return torch.log_softmax(logits.float() / temperature, dim=-1)


LOG_FLOOR = -1.0e4
"""The log of an empty bucket (the rest of the mass when the top-k holds all of it): exp() of it is exactly 0 in
fp32, and unlike -inf it keeps 0 * (log p - log q) at 0, so `_kl` needs no mask over the whole vocabulary."""


def _kl(p_log, q_log):
    """KL(p || q) per row; log-probabilities are finite (`LOG_FLOOR` for empty buckets), so no mask is needed."""
    return (p_log.exp() * (p_log - q_log)).sum(-1)


def divergence(student_log, teacher_log, kind: Kind):
    """Per-row divergence between two distributions given as log-probabilities over the same support.

    forward_kl = KL(t || s); reverse_kl = KL(s || t); jsd = (KL(t || m) + KL(s || m)) / 2 with m = (t + s) / 2."""
    import math

    import torch

    if kind == "forward_kl":
        return _kl(teacher_log, student_log)
    if kind == "reverse_kl":
        return _kl(student_log, teacher_log)
    if kind == "jsd":
        m_log = torch.logsumexp(torch.stack([teacher_log, student_log]), dim=0) - math.log(2.0)
        return 0.5 * (_kl(teacher_log, m_log) + _kl(student_log, m_log))
    raise ValueError(f"unknown divergence {kind!r}")


def topk_buckets(teacher_log, k: int):
    """The teacher's k most likely tokens per row, their log-probabilities and the log of the rest's mass:
    (indices [N, k] int64, log-probs [N, k], log tail [N]); what the cache stores."""

    values, indices = teacher_log.topk(k, dim=-1)
    tail = teacher_log.scatter(-1, indices, float("-inf")).logsumexp(-1).clamp(min=LOG_FLOOR)
    return indices, values, tail


def bucket_logprobs(log_probs, indices, tail=None):
    """A full distribution folded onto k + 1 buckets: the tokens `indices` and everything else.

    `tail` (the rest's log mass) is computed from `log_probs` when not given."""
    import torch

    picked = log_probs.gather(-1, indices)
    if tail is None:
        tail = log_probs.scatter(-1, indices, float("-inf")).logsumexp(-1).clamp(min=LOG_FLOOR)
    return torch.cat([picked, tail.unsqueeze(-1)], dim=-1)


def kd_term(student_logits, teacher_log_t, kind: Kind, temperature: float):
    """T^2 * mean divergence between the student's tempered distribution and the teacher's, for rows of
    `student_logits` [N, V] and `teacher_log_t` (the teacher's tempered log-probs [N, V])."""
    student_log = tempered_logprobs(student_logits, temperature)
    return temperature ** 2 * divergence(student_log, teacher_log_t, kind).mean()


def kd_term_topk(student_logits, indices, teacher_values, teacher_tail, kind: Kind, temperature: float):
    """`kd_term` on k + 1 buckets: the teacher's top-k tokens (its log-probs `teacher_values`, tempered) and the
    rest (`teacher_tail`); the student's distribution is folded onto the same buckets."""
    import torch

    student = bucket_logprobs(tempered_logprobs(student_logits, temperature), indices)
    teacher = torch.cat([teacher_values.float(), teacher_tail.float().unsqueeze(-1)], dim=-1)
    return temperature ** 2 * divergence(student, teacher, kind).mean()


def uld(student_logits, teacher_logits, temperature: float):
    """Universal Logit Distillation (Boizard et al. 2024): per row, sum |sorted p_s - sorted p_t|, the two
    probability vectors sorted in decreasing order and the shorter one padded with zeros (the closed form of the
    Wasserstein distance when every token is one unit from every other). Blind to which token is which: it
    teaches how sure the teacher is, not what it prefers."""
    import torch
    import torch.nn.functional as F

    ps = tempered_logprobs(student_logits, temperature).exp().sort(dim=-1, descending=True).values
    pt = tempered_logprobs(teacher_logits, temperature).exp().sort(dim=-1, descending=True).values
    width = max(ps.shape[-1], pt.shape[-1])
    ps = F.pad(ps, (0, width - ps.shape[-1]))
    pt = F.pad(pt, (0, width - pt.shape[-1]))
    return torch.abs(ps - pt).sum(-1).mean()


def matched_kl(student_logits, teacher_logits, student_ids, teacher_ids, temperature: float, kind: Kind = "forward_kl"):
    """T^2 * divergence on the pieces both vocabularies share (`student_ids[i]` and `teacher_ids[i]` decode to the
    same bytes), each distribution folded onto those pieces plus one bucket for everything else."""
    s = bucket_logprobs(tempered_logprobs(student_logits, temperature), student_ids.expand(student_logits.shape[0], -1))
    t = bucket_logprobs(tempered_logprobs(teacher_logits, temperature), teacher_ids.expand(teacher_logits.shape[0], -1))
    return temperature ** 2 * divergence(s, t, kind).mean()


def mix(ce, kd, alpha: float):
    """(1 - alpha) * CE + alpha * KD; alpha = 0 gives `ce` itself (bit for bit: the KD term is not added at all)."""
    if alpha == 0:
        return ce
    return (1.0 - alpha) * ce + alpha * kd
