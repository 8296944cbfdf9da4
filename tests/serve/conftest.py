"""Fixtures for the playground's tests: the demo run folder (tests/serve/assets.py) and a server on it."""

from __future__ import annotations

import pytest

from tests.serve import assets


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> dict:
    return assets.build_demo_runs(tmp_path_factory.mktemp("serve") / "demo")


@pytest.fixture(scope="session")
def server(demo):
    """One server on the demo runs for the read-only API and browser tests (limits as shipped)."""
    srv = assets.LocalServer([demo["root"]])
    yield srv
    srv.close()
