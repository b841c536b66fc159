"""The Sprites client against `responses` (test_client*.py): its API root and fixtures."""

import pytest

from sprites.client import SpritesClient
from sprites.client import http as sprites_client

API = "https://api.sprites.test/v1"


@pytest.fixture
def api():
    return SpritesClient(base_url="https://api.sprites.test", token="org/1/2/secret-token", backoff=0.001, max_retries=2)


@pytest.fixture
def sleeps(monkeypatch):
    """Record the backoff delays instead of sleeping them."""
    slept = []
    monkeypatch.setattr(sprites_client.time, "sleep", slept.append)
    return slept
