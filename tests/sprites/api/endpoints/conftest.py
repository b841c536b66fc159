"""The sprites API endpoint by endpoint (test_*.py here): alice (owner) succeeds, bob gets
404, anonymous is refused, bad ids and bodies get 4xx JSON; Sprites is the emulator over HTTP.
The kit: throttle counters cleared, clients, alice's online sprite, `url`, `assert_error`."""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from sprites import services

SPRITE_ACTIONS = ["start", "stop", "rotate-token", "dashboard-link"]


@pytest.fixture(autouse=True)
def _setup(db):
    cache.clear()  # throttle counters live in the cache (the database's, as in production)


def client_for(user=None, *, csrf=False) -> APIClient:
    client = APIClient(enforce_csrf_checks=csrf)
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def as_alice(alice):
    return client_for(alice)


@pytest.fixture
def as_bob(bob):
    return client_for(bob)


@pytest.fixture
def sprite(emulator, alice):
    """alice's online sprite, from the warm pool."""
    services.fill_pool(target=1)
    row, _ = services.provision_sprite(user=alice)
    return row


def url(sprite, action=""):
    return f"/api/sprites/{sprite.public_id}/" + (f"{action}" if action else "")


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == code
    return response.json()
