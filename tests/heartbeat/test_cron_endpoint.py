"""GET /api/cron/heartbeat: a sweep only with the right bearer secret."""

import logging

import pytest

from heartbeat.models import HeartbeatRun
from tests.conftest import make_sprite

from .conftest import answer_exec

pytestmark = pytest.mark.django_db
URL = "/api/cron/heartbeat"
SECRET = "cron-secret-for-tests-0123456789abcdef"  # tests/conftest.py


def test_it_refuses_a_request_without_the_header(client):
    response = client.get(URL)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not HeartbeatRun.objects.exists()


@pytest.mark.parametrize("header", [
    "Bearer wrong-secret",
    f"Bearer {SECRET}x",
    f"Token {SECRET}",
    SECRET,
    "Bearer ",
])
def test_it_refuses_a_wrong_secret_without_echoing_it(client, header, caplog):
    with caplog.at_level(logging.DEBUG):
        response = client.get(URL, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert SECRET not in response.content.decode() and SECRET not in caplog.text
    assert not HeartbeatRun.objects.exists()


def test_it_answers_503_when_the_secret_is_unset(client, settings):
    settings.CRON_SECRET = ""
    response = client.get(URL, HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 503
    assert response.json()["code"] == "cron_secret_unset"
    assert not HeartbeatRun.objects.exists()


@pytest.mark.parametrize("url", [URL, URL + "/"])
def test_it_runs_a_sweep_with_the_right_secret(client, mocked, url):
    make_sprite("one")
    make_sprite("two")
    answer_exec(mocked)

    response = client.get(url, HTTP_AUTHORIZATION=f"Bearer {SECRET}")

    assert response.status_code == 200
    body = response.json()
    assert (body["woke"], body["failed"], body["ok"], body["trigger"]) == (2, 0, True, "endpoint")
    assert body["summary"].startswith("woke 2, skipped 0, failed 0, billed $")
    assert HeartbeatRun.objects.get().trigger == "endpoint"


def test_it_runs_one_tick_within_its_budget_and_leaves_the_rest_due(client, mocked, monkeypatch, settings):
    from heartbeat import views
    from sprites.models import UserSprite

    settings.HEARTBEAT_CONCURRENCY = 1
    for name in ("one", "two", "three"):
        make_sprite(name)
    answer_exec(mocked, delay=0.3)
    monkeypatch.setattr(views, "TICK_BUDGET", 0.2)  # time for one wake to start, not three

    body = client.post("/api/cron/heartbeat", HTTP_AUTHORIZATION=f"Bearer {SECRET}").json()

    assert 1 <= body["woke"] < 3 and body["failed"] == 0
    assert UserSprite.objects.filter(last_heartbeat__isnull=True).count() == 3 - body["woke"]


def test_it_ignores_session_auth_and_csrf(client, staff, mocked):
    client.force_login(staff)
    assert client.get(URL).status_code == 401  # a staff session is not the cron secret


def test_it_runs_a_sweep_on_post_too(client, mocked):
    make_sprite("one")
    answer_exec(mocked)
    response = client.post(URL, HTTP_AUTHORIZATION=f"Bearer {SECRET}")  # schedulers that only POST
    assert response.status_code == 200
    assert response.json()["woke"] == 1


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_it_refuses_other_methods(client, method):
    response = getattr(client, method)(URL, HTTP_AUTHORIZATION=f"Bearer {SECRET}")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert response["Allow"] == "GET, POST"
    assert not HeartbeatRun.objects.exists()


def test_it_reports_bad_configuration_as_json(client, settings):
    settings.HEARTBEAT_TIMEOUT_SECONDS = 0
    response = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {SECRET}")
    assert response.status_code == 503
    assert response.json()["code"] == "misconfigured"
