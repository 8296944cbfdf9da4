"""Every bad input of every command, from one table: one line (exit 2) naming what and where, or the
fault handled with every good record kept. The rows are in ``cases_*.py`` beside this file."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

from tests.bad_input import runner

CASES: list[runner.Case] = []
for _info in sorted(pkgutil.iter_modules([str(runner.Path(__file__).parent)]),
                    key=lambda i: i.name):
    if _info.name.startswith("cases_"):
        CASES.extend(importlib.import_module(f"tests.bad_input.{_info.name}").CASES)

_ids = [c.id for c in CASES]
assert len(_ids) == len(set(_ids)), "bad-input case ids must be unique"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input(case: runner.Case, tmp_path, capsys, monkeypatch):
    result = runner.run_case(case, tmp_path, capsys, monkeypatch)
    runner.assert_case(case, result, tmp_path)
