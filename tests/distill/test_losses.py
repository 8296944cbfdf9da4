"""The KD terms against hand computations in numpy (T^2 included), both vocabulary cases and the top-k cache's
buckets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from persianllama.distill import losses

RNG = np.random.default_rng(0)
S = RNG.normal(size=(3, 7)) * 2
TT = RNG.normal(size=(3, 7)) * 2


def softmax(x, T=1.0):
    z = x / T - (x / T).max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def kl(p, q):
    return (p * np.log(p / q)).sum(-1)


@pytest.mark.parametrize("T", [1.0, 2.0, 0.5])
def test_same_vocabulary_divergences_by_hand(T):
    ps, pt = softmax(S, T), softmax(TT, T)
    m = (ps + pt) / 2
    expect = {"forward_kl": T * T * kl(pt, ps).mean(), "reverse_kl": T * T * kl(ps, pt).mean(),
              "jsd": T * T * (0.5 * kl(pt, m) + 0.5 * kl(ps, m)).mean()}
    t_log = losses.tempered_logprobs(torch.tensor(TT), T)
    for kind, value in expect.items():
        got = losses.kd_term(torch.tensor(S), t_log, kind, T)
        assert float(got) == pytest.approx(value, rel=1e-5), kind
    # the T^2 factor: the same divergence without it is T^2 times smaller
    plain = losses.divergence(losses.tempered_logprobs(torch.tensor(S), T), t_log, "forward_kl").mean()
    assert float(losses.kd_term(torch.tensor(S), t_log, "forward_kl", T)) == pytest.approx(T * T * float(plain), rel=1e-6)


def test_topk_with_tail_mass_by_hand():
    T, k = 2.0, 3
    ps, pt = softmax(S, T), softmax(TT, T)
    expect = []
    for r in range(3):
        top = np.argsort(-pt[r])[:k]
        rest = np.setdiff1d(np.arange(7), top)
        bt = np.append(pt[r, top], pt[r, rest].sum())
        bs = np.append(ps[r, top], ps[r, rest].sum())
        expect.append(kl(bt, bs))
    t_log = losses.tempered_logprobs(torch.tensor(TT), T)
    idx, val, tail = losses.topk_buckets(t_log, k)
    assert np.allclose(np.exp(tail.numpy()) + np.exp(val.numpy()).sum(-1), 1.0)
    got = losses.kd_term_topk(torch.tensor(S), idx, val, tail, "forward_kl", T)
    assert float(got) == pytest.approx(T * T * np.mean(expect), rel=1e-5)
    # with k = the whole vocabulary the tail is empty (zero mass costs nothing) and it is the full KL
    idx, val, tail = losses.topk_buckets(t_log, 7)
    full = losses.kd_term_topk(torch.tensor(S), idx, val, tail, "forward_kl", T)
    assert float(full) == pytest.approx(float(losses.kd_term(torch.tensor(S), t_log, "forward_kl", T)), rel=1e-5)


def test_uld_by_hand_with_different_vocabulary_sizes():
    T = 1.5
    s = RNG.normal(size=(4, 5))
    t = RNG.normal(size=(4, 9))
    expect = []
    for r in range(4):
        a = np.sort(softmax(s[r], T))[::-1]
        b = np.sort(softmax(t[r], T))[::-1]
        a = np.pad(a, (0, 4))
        expect.append(np.abs(a - b).sum())
    got = losses.uld(torch.tensor(s), torch.tensor(t), T)
    assert float(got) == pytest.approx(np.mean(expect), rel=1e-5)
    # blind to which token is which: permuting the teacher's vocabulary changes nothing
    perm = torch.tensor(t)[:, torch.randperm(9)]
    assert float(losses.uld(torch.tensor(s), perm, T)) == pytest.approx(float(got), rel=1e-6)


def test_matched_pieces_kl_by_hand():
    T = 2.0
    s = RNG.normal(size=(2, 5))
    t = RNG.normal(size=(2, 6))
    s_ids, t_ids = np.array([0, 3]), np.array([4, 1])  # student 0 = teacher 4, student 3 = teacher 1
    ps, pt = softmax(s, T), softmax(t, T)
    expect = []
    for r in range(2):
        bs = np.append(ps[r, s_ids], 1 - ps[r, s_ids].sum())
        bt = np.append(pt[r, t_ids], 1 - pt[r, t_ids].sum())
        expect.append(kl(bt, bs))
    got = losses.matched_kl(torch.tensor(s), torch.tensor(t), torch.tensor(s_ids), torch.tensor(t_ids), T)
    assert float(got) == pytest.approx(T * T * np.mean(expect), rel=1e-5)


def test_mix_alpha_zero_is_the_ce_itself():
    ce, kd = torch.tensor(2.5), torch.tensor(float("nan"))
    assert losses.mix(ce, kd, 0.0) is ce
    assert float(losses.mix(ce, torch.tensor(1.0), 0.25)) == pytest.approx(0.75 * 2.5 + 0.25 * 1.0)
