"""The admin's sign-in is throttled per client address, like the API's token endpoint."""

import pytest
from django.core.cache import cache
from django.test import override_settings
from rest_framework.throttling import SimpleRateThrottle


@pytest.fixture(autouse=True)
def _three_a_minute(db, monkeypatch):
    cache.clear()
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"admin_login": "3/minute"})


def attempt(client, **meta):
    return client.post("/admin/login/", {"username": "staff", "password": "wrong"}, **meta).status_code


def test_it_throttles_password_guesses(client, staff):
    assert [attempt(client) for _ in range(4)] == [200, 200, 200, 429]
    response = client.post("/admin/login/", {"username": "staff", "password": "staff-password-1"})
    assert response.status_code == 429 and int(response["Retry-After"]) > 0  # even the right one, for now
    assert client.get("/admin/login/").status_code == 200  # the form itself is not an attempt


def test_a_made_up_x_forwarded_for_does_not_buy_more_tries(client, staff):
    codes = [attempt(client, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}") for n in range(5)]
    assert codes == [200, 200, 200, 429, 429]


@override_settings(REST_FRAMEWORK={"NUM_PROXIES": 1})
def test_behind_a_trusted_proxy_each_client_has_its_own_budget(client, staff):
    from rest_framework.settings import api_settings

    api_settings.reload()
    try:
        assert [attempt(client, HTTP_X_FORWARDED_FOR="203.0.113.1") for _ in range(4)] == [200, 200, 200, 429]
        assert attempt(client, HTTP_X_FORWARDED_FOR="203.0.113.2") == 200
    finally:
        api_settings.reload()


def test_a_good_sign_in_still_works(client, staff):
    response = client.post("/admin/login/?next=/admin/", {"username": "staff", "password": "staff-password-1"})
    assert response.status_code == 302 and response["Location"] == "/admin/"
