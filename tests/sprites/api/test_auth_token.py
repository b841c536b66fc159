"""Signing in for an API token: the cross-origin path for a frontend."""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient


@pytest.fixture(autouse=True)
def _fresh_throttles(db):
    cache.clear()  # the throttle counters: the database cache, as in production
    yield
    cache.clear()


def test_it_returns_the_users_token_for_good_credentials(alice):
    response = APIClient().post("/api/auth/token", {"username": "alice", "password": "alice-password-1"}, format="json")
    assert response.status_code == 200
    token = response.json()["token"]
    listing = APIClient().get("/api/sprites/", HTTP_AUTHORIZATION=f"Token {token}")
    assert listing.status_code == 200


def test_it_refuses_wrong_credentials_with_json(alice):
    response = APIClient().post("/api/auth/token", {"username": "alice", "password": "nope"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "token" not in response.json()


def test_it_refuses_a_malformed_body_with_json(db):
    response = APIClient().post("/api/auth/token", "not json", content_type="application/json")
    assert response.status_code == 400
    assert "code" in response.json()


def test_it_refuses_json_nested_past_the_recursion_limit_with_json(db):
    response = APIClient().post("/api/auth/token", "[" * 100_000, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_it_throttles_password_guessing(alice, settings):
    rates = dict(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], auth="3/minute")
    settings.REST_FRAMEWORK = dict(settings.REST_FRAMEWORK, DEFAULT_THROTTLE_RATES=rates)
    from rest_framework.throttling import ScopedRateThrottle

    ScopedRateThrottle.THROTTLE_RATES = rates
    try:
        client = APIClient()
        codes = [client.post("/api/auth/token", {"username": "alice", "password": "x"}, format="json").status_code
                 for _ in range(4)]
    finally:
        from rest_framework.settings import api_settings

        ScopedRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    assert codes == [400, 400, 400, 429]


def test_a_made_up_x_forwarded_for_does_not_buy_more_guesses(alice, monkeypatch):
    """TRUSTED_PROXY_COUNT = 0 (DRF's NUM_PROXIES): the socket's peer is the client."""
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth": "3/minute"})
    client = APIClient()
    codes = [client.post("/api/auth/token", {"username": "alice", "password": "x"}, format="json",
                         HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code for n in range(5)]
    assert codes == [400, 400, 400, 429, 429]


def test_it_counts_in_the_shared_database_cache(settings):
    """Every worker and host sees the same counters: the database cache, not process memory."""
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.db.DatabaseCache"
    assert settings.REST_FRAMEWORK["NUM_PROXIES"] == settings.TRUSTED_PROXY_COUNT == 0
