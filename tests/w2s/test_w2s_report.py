"""PGR arithmetic, the spread over runs, and the halves."""

from __future__ import annotations

import pytest

from persianllama.w2s.data import Row, split_halves
from persianllama.w2s.report import pgr, spread


def test_pgr_arithmetic():
    assert pgr(0.60, 0.80, 0.70, 0.01) == pytest.approx(0.5)
    assert pgr(0.60, 0.80, 0.80, 0.01) == pytest.approx(1.0)
    assert pgr(0.60, 0.80, 0.60, 0.01) == pytest.approx(0.0)
    assert pgr(0.60, 0.80, 0.55, 0.01) == pytest.approx(-0.25)  # worse than its weak teacher
    assert pgr(0.60, 0.80, 0.90, 0.01) == pytest.approx(1.5)    # better than the ceiling
    # no gap to recover: undefined, not a huge or negative ratio
    assert pgr(0.60, 0.605, 0.70, 0.01) is None
    assert pgr(0.60, 0.60, 0.70, 0.0) is None
    assert pgr(0.70, 0.60, 0.65, 0.01) is None  # the "strong" model is weaker


def test_spread():
    s = spread([0.5, 0.6, 0.7])
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(0.1)
    assert (s["min"], s["max"], s["runs"]) == (0.5, 0.7, [0.5, 0.6, 0.7])
    assert spread([0.4])["std"] == 0.0


def test_halves_are_seeded_disjoint_and_capped():
    rows = [Row(f"متن {i}", i % 3) for i in range(21)]
    a, b = split_halves(rows, 7)
    assert len(a) == len(b) == 10
    assert not {r.text for r in a} & {r.text for r in b}
    assert (a, b) == split_halves(rows, 7)
    assert split_halves(rows, 8)[0] != a
    ca, cb = split_halves(rows, 7, cap=4)
    assert ca == a[:4] and cb == b[:4]
