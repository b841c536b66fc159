"""The OpenClaw contract suite runs the real `openclaw` package, so it is opt-in: every test
in this directory skips unless OPENCLAW_CONTRACT=1 and scripts/openclaw_cache.sh has installed
the pinned version (OPENCLAW_VERSION, default 2026.9.6) into its cache."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from . import harness

HERE = Path(__file__).resolve().parent


def _skip_reason() -> str | None:
    if os.environ.get("OPENCLAW_CONTRACT") != "1":
        return "OpenClaw contract suite: set OPENCLAW_CONTRACT=1 (make test-openclaw) to run it"
    if harness.locate() is None:
        return f"OpenClaw contract suite: no install in {harness.cache_dir()}; run scripts/openclaw_cache.sh"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _skip_reason()
    if reason is None:
        return
    marker = pytest.mark.skip(reason=reason)
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(marker)


@pytest.fixture(scope="session")
def openclaw_install() -> harness.Install:
    return harness.require_install()


@pytest.fixture
def openclaw_home(tmp_path, openclaw_install):
    """A fresh HOME with an empty ~/.openclaw (0700)."""
    return harness.new_home(tmp_path)


@pytest.fixture
def gateway_token() -> str:
    return secrets.token_urlsafe(48)


@pytest.fixture
def fake_model():
    with harness.fake_model_server() as model:
        yield model
