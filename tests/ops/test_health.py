"""/healthz (alive, touches nothing) and /readyz (database, migrations, last sweep, Sprites API:
one entry each, 503 when any fails), answered before the host check and the HTTPS redirect."""

from datetime import timedelta

import pytest
import responses
from django.test import override_settings
from django.utils import timezone

from heartbeat.models import HeartbeatRun
from ops import health
from tests.conftest import API


@pytest.fixture(autouse=True)
def _fresh_checks():
    health.forget()
    yield
    health.forget()


@pytest.fixture
def sprites_api():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{API}/sprites", json={"sprites": [], "has_more": False})
        yield rsps


def recent_sweep(minutes_ago: float = 5, **fields) -> HeartbeatRun:
    run = HeartbeatRun.objects.create(finished_at=timezone.now(), **fields)
    HeartbeatRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(minutes=minutes_ago))
    return run


def test_healthz_answers_without_the_database(client):
    # No `db` fixture: pytest-django would raise on any query.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/healthz", "/healthz/"])
@override_settings(SECURE_SSL_REDIRECT=True, ALLOWED_HOSTS=["clawdirector.example.com"])
def test_probes_skip_the_https_redirect_and_the_host_check(client, path):
    """A load balancer or Docker's health check asks http://10.0.0.7:8000/healthz."""
    assert client.get(path, HTTP_HOST="10.0.0.7:8000").status_code == 200
    assert client.get("/admin/login/", HTTP_HOST="10.0.0.7:8000").status_code == 400  # the rest: still checked


@override_settings(SECURE_SSL_REDIRECT=True)
def test_the_rest_still_redirects_to_https(client):
    assert client.get("/admin/login/").status_code == 301


def test_readyz_is_200_with_one_entry_per_check(client, db, sprites_api):
    recent_sweep()
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert list(body["checks"]) == ["database", "migrations", "heartbeat", "tasks", "sprites_api"]
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["heartbeat"]["detail"] == "last sweep started 5 min ago"
    assert len(response.content.decode().strip().splitlines()) == 10  # a line per check


def test_readyz_is_503_when_no_sweep_ever_ran(client, db, sprites_api):
    body = client.get("/readyz")
    assert body.status_code == 503
    assert body.json()["checks"]["heartbeat"] == {"ok": False, "detail": "no sweep has run yet"}


def test_readyz_is_503_when_the_last_sweep_is_3_intervals_old(client, db, sprites_api, settings):
    settings.HEARTBEAT_INTERVAL_MINUTES = 15
    recent_sweep(minutes_ago=46)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["heartbeat"]["detail"] == "last sweep started 46 min ago (limit 45)"
    recent_sweep(minutes_ago=1, dry_run=True)  # a dry run wakes nothing: it does not count
    recent_sweep(minutes_ago=1, trigger="staff")  # nor does a staff "run now" of a few sprites
    assert client.get("/readyz").status_code == 503


def test_readyz_is_503_when_the_sprites_api_refuses_the_token(client, db, settings):
    recent_sweep()
    with responses.RequestsMock() as rsps:
        rsps.get(f"{API}/sprites", status=401, json={"error": "unauthorized"})
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["sprites_api"] == {"ok": False, "detail": "auth_failed"}
        client.get("/readyz")
        assert len(rsps.calls) == 1  # remembered for a while: probes are not API traffic
    assert "test-token" not in response.content.decode()


def test_readyz_is_503_when_the_sprites_api_is_unreachable(client, db, settings):
    recent_sweep()
    settings.SPRITES_API_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["sprites_api"] == {"ok": False, "detail": "connection_error"}


def test_readyz_reports_unapplied_migrations(client, db, sprites_api, monkeypatch):
    recent_sweep()
    monkeypatch.setattr("django.db.migrations.executor.MigrationExecutor.migration_plan",
                        lambda self, targets: [("sprites", "0099_future")])
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == {
        "ok": False, "detail": "1 not applied: run `manage.py migrate`"}


def test_readyz_is_503_when_the_database_is_down(client, db, sprites_api, monkeypatch):
    """The real outage (a server that refuses connections) is in tests/deploy/; here the cursor fails."""
    from django.db import OperationalError
    from django.db.backends.base import base

    def refuse(self, *args, **kwargs):
        raise OperationalError("connection refused")

    with monkeypatch.context() as patch:  # undone before the test database is cleaned up
        patch.setattr(base.BaseDatabaseWrapper, "cursor", refuse)
        response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == {"ok": False, "detail": "unreachable (OperationalError)"}
    assert checks["migrations"]["ok"] is False and checks["heartbeat"]["ok"] is False
    assert checks["sprites_api"]["ok"] is True  # each check answers for itself


def test_probes_accept_only_get_and_head(client, db):
    assert client.post("/healthz").status_code == 405
    head = client.head("/healthz")
    assert head.status_code == 200 and head.content == b""
