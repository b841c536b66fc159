"""Failures that show: django-crontab's job keeps the command's exit status, and every whole
sweep tells a dead man's switch (HEARTBEAT_PING_URL) how it went."""

import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from heartbeat import cron
from heartbeat.ping import ping
from tests.conftest import make_sprite

from .conftest import answer_exec, exec_body

ROOT = Path(__file__).resolve().parents[2]


class Exited(Exception):
    def __init__(self, status):
        self.status = status


@pytest.fixture
def exits(monkeypatch):
    def fake_exit(status):
        raise Exited(status)

    monkeypatch.setattr(cron.os, "_exit", fake_exit)
    monkeypatch.setattr(cron.logging, "shutdown", lambda: None)  # pytest's handlers stay open


@pytest.mark.parametrize("raised, status", [
    (None, 0),
    (SystemExit(1), 1),  # a sprite failed
    (CommandError("Heartbeat misconfigured: HEARTBEAT_TIMEOUT_SECONDS must be …"), 1),
    (RuntimeError("the database went away"), 1),
])
def test_it_exits_with_the_commands_status(exits, monkeypatch, raised, status, capsys):
    def fake_call_command(name, **options):
        assert name == "heartbeat" and options == {"budget": 50}  # one tick, as every minute
        if raised is not None:
            raise raised

    monkeypatch.setattr(cron, "call_command", fake_call_command)
    with pytest.raises(Exited) as exited:
        cron.run()
    assert exited.value.status == status
    if isinstance(raised, CommandError):
        assert "CommandError: Heartbeat misconfigured" in capsys.readouterr().err


def test_crontab_run_exits_1_on_a_broken_setting(tmp_path):
    """For real, as cron runs it: `manage.py crontab run <hash>` with HEARTBEAT_TIMEOUT_SECONDS=0.
    django-crontab alone exits 0 here (its bare `except:`); the wrapper makes it 1."""
    from django_crontab.crontab import Crontab

    with Crontab() as crontab:
        job_hash = crontab._Crontab__hash_job(__import__("django.conf").conf.settings.CRONJOBS[0])
    env = {**os.environ, "DEBUG": "1", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
           "HEARTBEAT_TIMEOUT_SECONDS": "0", "DJANGO_SETTINGS_MODULE": "clawdirector.settings",
           "SPRITES_API_URL": "http://127.0.0.1:9"}
    result = subprocess.run([sys.executable, "manage.py", "crontab", "run", job_hash], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "HEARTBEAT_TIMEOUT_SECONDS" in result.stderr


# --- the dead man's switch ----------------------------------------------------------------------------


@pytest.fixture
def monitor(settings):
    """A healthchecks.io stand-in on a loopback port: records the paths it was pinged on."""
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.HEARTBEAT_PING_URL = f"http://127.0.0.1:{server.server_port}/ping/3f0e-secret"
    settings.HEARTBEAT_PING_FAIL_URL = ""
    try:
        yield hits
    finally:
        server.shutdown()
        server.server_close()


def test_it_pings_on_success(db, mocked, monitor):
    make_sprite("one")
    answer_exec(mocked)
    call_command("heartbeat")
    assert monitor == ["/ping/3f0e-secret"]


def test_it_pings_the_fail_url_when_a_sprite_failed(db, mocked, monitor):
    make_sprite("broken")
    answer_exec(mocked, default=exec_body(b"boom\n", exit_code=1))
    with pytest.raises(SystemExit):
        call_command("heartbeat")
    assert monitor == ["/ping/3f0e-secret/fail"]


def test_it_pings_the_fail_url_when_misconfigured(db, monitor, settings):
    settings.HEARTBEAT_TIMEOUT_SECONDS = 0
    settings.HEARTBEAT_PING_FAIL_URL = settings.HEARTBEAT_PING_URL.replace("/ping/", "/custom-fail/")
    with pytest.raises(CommandError):
        call_command("heartbeat")
    assert monitor == ["/custom-fail/3f0e-secret"]


def test_it_does_not_ping_for_a_dry_run_or_a_few_sprites(db, mocked, monitor):
    sprite = make_sprite("one")
    answer_exec(mocked)
    call_command("heartbeat", "--dry-run")
    call_command("heartbeat", "--sprite", sprite.sprite_name, "--force")
    assert monitor == []


def test_the_endpoint_pings_too(client, db, mocked, monitor):
    make_sprite("one")
    answer_exec(mocked)
    response = client.post("/api/cron/heartbeat", HTTP_AUTHORIZATION="Bearer cron-secret-for-tests-0123456789abcdef")
    assert response.status_code == 200
    assert monitor == ["/ping/3f0e-secret"]


def test_a_monitor_that_is_down_never_fails_the_sweep_nor_leaks_its_url(settings, caplog):
    settings.HEARTBEAT_PING_URL = "http://127.0.0.1:9/ping/3f0e-secret"  # nothing listens
    assert ping(ok=True) is False
    assert "3f0e-secret" not in caplog.text
    assert "ping failed" in caplog.text


def test_it_does_nothing_without_a_ping_url(settings):
    settings.HEARTBEAT_PING_URL = ""
    assert ping(ok=False) is False
