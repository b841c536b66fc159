"""The production recipe, run for real (docs/operations.md "Deploying"): `collectstatic`, then
gunicorn from the repository root (gunicorn.conf.py: 2 gthread workers), DEBUG=0, the suite's
PostgreSQL, JSON logs, the HTTPS redirect on. Everything an operator meets first is asked of it
over loopback HTTP, as a TLS-terminating proxy would (`X-Forwarded-Proto: https`).

- Every stylesheet, script and icon linked by /admin/login/, the sprites changelist and
  /api/docs/ answers 200 (WhiteNoise, hashed names, gzip).
- /healthz is 200 without the proxy header and for a host name nobody configured (probes come
  by IP); /readyz is 200 with the database, its migrations, a recent sweep and a Sprites API
  (the emulator, which checks the token) all there.
- /readyz is 503 with the database stopped. The suite's PostgreSQL server is shared by the
  whole run, so it is not stopped: a second gunicorn is started with DATABASE_URL pointing at
  a loopback port nothing listens on (reserved, then closed), which is what the app sees when
  its database is down: connections refused. That gunicorn's /healthz is still 200.
- /metrics parses with prometheus_client's own parser, and refuses a scrape without the token.
- 30 wrong-password tries at /api/auth/token, each with a different X-Forwarded-For, are
  throttled after THROTTLE_AUTH (10): the made-up header buys nothing, and the count is shared
  by both workers (the database cache).
- No secret (SECRET_KEY, the Sprites token, CRON_SECRET, METRICS_TOKEN, the staff password) is
  in any response body or any line gunicorn's processes wrote, and every line is JSON.

Bounded: about 20 s on the 2-core development machine, loopback only.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from heartbeat.models import HeartbeatRun

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
HTTPS = {"X-Forwarded-Proto": "https"}  # what the TLS-terminating proxy adds
SECRETS = {
    "SECRET_KEY": "recipe-secret-key-" + "k" * 40,
    "SPRITES_API_TOKEN": "acme/1/2/recipe-sprites-token-value",
    "CRON_SECRET": "recipe-cron-secret-0123456789abcdefghij",
    "METRICS_TOKEN": "recipe-metrics-token-0123456789abcdef",
}
STAFF_PASSWORD = "recipe-staff-password-9876"

pytestmark = [
    pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed in this environment"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(port: int | None = None) -> str:
    db = connection.settings_dict
    return (f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{port or db['PORT']}"
            f"/{db['NAME']}")


class Server:
    """One gunicorn, its address and the files its output went to."""

    def __init__(self, env: dict, workdir: Path, name: str, workers: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out, self.err = workdir / f"{name}.out", workdir / f"{name}.err"
        env = {**env, "GUNICORN_BIND": f"127.0.0.1:{self.port}"}
        self.process = subprocess.Popen(
            [str(GUNICORN), "--workers", str(workers)], cwd=ROOT, env=env,
            stdout=self.out.open("wb"), stderr=self.err.open("wb"), start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{self.url}/healthz", timeout=5).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet, or its workers still booting
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"gunicorn did not start:\n{self.err.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def lines(self) -> list[str]:
        return [line for path in (self.out, self.err) for line in path.read_text().splitlines() if line.strip()]


class Recorder(requests.Session):
    """A session that keeps every body it received, for the "no secret anywhere" check."""

    bodies: list[bytes] = []

    def request(self, *args, **kwargs):
        kwargs.setdefault("timeout", 30)
        response = super().request(*args, **kwargs)
        Recorder.bodies.append(response.content)
        return response


@pytest.fixture(scope="module")
def recipe(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        if connection.vendor != "postgresql":
            pytest.skip("the production recipe runs on PostgreSQL: run it with make test")
        url = database_url()
    from sprites_emulator.testing import start_emulator

    workdir = tmp_path_factory.mktemp("recipe")
    emulator = start_emulator(token=SECRETS["SPRITES_API_TOKEN"], setup_seconds=0, exec_seconds=0.05)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DJANGO_", "PYTEST", "GUNICORN_", "DATABASE_"))}
    env.update(SECRETS, DJANGO_SETTINGS_MODULE="clawdirector.settings", DEBUG="0", DEVTOOLS="0",
               DATABASE_URL=url, ALLOWED_HOSTS="127.0.0.1,localhost", STATIC_ROOT=str(workdir / "static"),
               SPRITES_API_URL=emulator.url, LOG_FORMAT="json", LOG_LEVEL="INFO",
               # The test speaks plain HTTP to loopback, where a browser would have TLS: the
               # cookies must travel without it. The redirect itself stays on (the default).
               SESSION_COOKIE_SECURE="0", CSRF_COOKIE_SECURE="0", SPRITE_POOL_SIZE="0",
               GUNICORN_GRACEFUL_TIMEOUT="5")
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env,
                   check=True, timeout=120)
    server = Server(env, workdir, "gunicorn", workers=2)
    try:
        yield server, env, workdir
    finally:
        server.stop()
        emulator.stop()


@pytest.fixture
def staff_user(transactional_db):
    """A superuser whose password hash production's hashers read (the suite's own is MD5)."""
    user = get_user_model().objects.create(username="ops", is_staff=True, is_superuser=True)
    user.password = PBKDF2PasswordHasher().encode(STAFF_PASSWORD, "recipesalt0123456789")
    user.save(update_fields=["password"])
    return user


def assets(html: str, base: str) -> list[str]:
    found = re.findall(r'<link[^>]+rel="(?:stylesheet|icon|shortcut icon)"[^>]*href="([^"]+)"', html)
    found += re.findall(r'<link[^>]+href="([^"]+)"[^>]*rel="(?:stylesheet|icon)"', html)
    found += re.findall(r'<script[^>]+src="([^"]+)"', html)
    return sorted({urljoin(base, url.replace("&amp;", "&")) for url in found})


def assert_all_served(session: Recorder, page: requests.Response) -> list[str]:
    urls = assets(page.text, page.url)
    assert urls, page.text[:500]
    for url in urls:
        response = session.get(url, headers=HTTPS)
        assert response.status_code == 200, (url, response.status_code)
    return urls


def sign_in(session: Recorder, base: str) -> requests.Response:
    page = session.get(f"{base}/admin/login/?next=/admin/", headers=HTTPS)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return session.post(f"{base}/admin/login/?next=/admin/", headers={**HTTPS, "Referer": f"https://{base[7:]}/"},
                        data={"csrfmiddlewaretoken": token, "username": "ops", "password": STAFF_PASSWORD},
                        allow_redirects=False)


def test_every_stylesheet_and_script_is_served(recipe, staff_user):
    server, _, _ = recipe
    session = Recorder()
    login = session.get(f"{server.url}/admin/login/", headers=HTTPS)
    assert login.status_code == 200
    served = assert_all_served(session, login)
    # collectstatic's manifest names (content hash), compressed on the wire
    css = next(url for url in served if re.search(r"/admin/css/base\.[0-9a-f]{12}\.css$", url))
    assert session.get(css, headers={**HTTPS, "Accept-Encoding": "gzip"}).headers["Content-Encoding"] == "gzip"

    assert sign_in(session, server.url).status_code == 302
    changelist = session.get(f"{server.url}/admin/sprites/usersprite/", headers=HTTPS)
    assert changelist.status_code == 200
    assert any("/console/live." in url for url in assert_all_served(session, changelist))

    docs = session.get(f"{server.url}/api/docs/", headers=HTTPS)
    assert docs.status_code == 200
    assert any("swagger-ui" in url for url in assert_all_served(session, docs))


def test_everything_else_still_redirects_to_https(recipe, transactional_db):
    server, _, _ = recipe
    response = Recorder().get(f"{server.url}/admin/login/", allow_redirects=False)
    assert response.status_code == 301 and response.headers["Location"].startswith("https://")


def test_health_and_readiness(recipe, transactional_db):
    server, env, workdir = recipe
    session = Recorder()
    # A probe: plain HTTP, by an address that is not a configured host name.
    assert session.get(f"{server.url}/healthz", headers={"Host": "10.0.0.7:8000"}).status_code == 200

    assert session.get(f"{server.url}/readyz").status_code == 503  # no sweep has ever run
    run = HeartbeatRun.objects.create(trigger="command", finished_at=timezone.now())
    HeartbeatRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(minutes=3))
    ready = session.get(f"{server.url}/readyz")
    assert ready.status_code == 200, ready.text
    assert {name for name, check in ready.json()["checks"].items() if check["ok"]} == {
        "database", "migrations", "heartbeat", "tasks", "sprites_api"}

    closed = free_port()  # reserved and released: nothing listens there
    down = Server({**env, "DATABASE_URL": database_url(port=closed)}, workdir, "no-database", workers=1)
    try:
        assert session.get(f"{down.url}/healthz").status_code == 200
        not_ready = session.get(f"{down.url}/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["checks"]["database"] == {"ok": False, "detail": "unreachable (OperationalError)"}
    finally:
        down.stop()


def test_metrics_parse_with_prometheus_client(recipe, transactional_db):
    server, _, _ = recipe
    session = Recorder()
    assert session.get(f"{server.url}/metrics").status_code == 401
    # One sweep through the endpoint, so the figures have something to say: a run, and the
    # Sprites API calls a worker made for it (persisted, then read back by whichever worker).
    sweep = session.post(f"{server.url}/api/cron/heartbeat",
                         headers={**HTTPS, "Authorization": f"Bearer {SECRETS['CRON_SECRET']}"})
    assert sweep.status_code == 200, sweep.text
    response = session.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {SECRETS['METRICS_TOKEN']}"})
    assert response.status_code == 200
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    for name in ("clawdirector_sprites", "clawdirector_pool_ready", "clawdirector_heartbeat_runs",
                 "clawdirector_heartbeat_wake_duration_seconds", "clawdirector_fleet_cost_month_usd",
                 "clawdirector_sprites_api_calls"):
        assert name in families, sorted(families)
    calls = [s for s in families["clawdirector_sprites_api_calls"].samples if s.labels["endpoint"] == "GET /sprites"]
    assert calls and calls[0].value >= 1
    runs = {(s.labels["trigger"], s.labels["outcome"]): s.value for s in families["clawdirector_heartbeat_runs"].samples}
    assert runs[("endpoint", "ok")] == 1


def test_made_up_forwarded_for_headers_buy_no_password_guesses(recipe, transactional_db):
    server, _, _ = recipe
    session = Recorder()
    codes = [
        session.post(f"{server.url}/api/auth/token", json={"username": "ops", "password": f"wrong-{n}"},
                     headers={**HTTPS, "X-Forwarded-For": f"203.0.113.{n}"}).status_code
        for n in range(30)
    ]
    # THROTTLE_AUTH is 10/minute, counted once for both workers: the 11th try is refused.
    assert codes == [400] * 10 + [429] * 20, codes


def test_no_secret_in_any_body_or_log_line(recipe, transactional_db):
    server, _, _ = recipe
    session = Recorder()
    # The requests most likely to echo one: a wrong and a right cron secret, a bad metrics token.
    cron = f"{server.url}/api/cron/heartbeat"
    assert session.post(cron, headers={**HTTPS, "Authorization": "Bearer not-the-secret"}).status_code == 401
    assert session.post(cron, headers={**HTTPS, "Authorization": f"Bearer {SECRETS['CRON_SECRET']}"}).status_code == 200
    session.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {SECRETS['METRICS_TOKEN']}x"})
    time.sleep(0.5)  # let the access log lines land

    lines = server.lines()
    assert any('"path": "/api/cron/heartbeat"' in line for line in lines)
    for line in lines:
        record = json.loads(line)  # LOG_FORMAT=json: every line, gunicorn's own included
        if record.get("logger") == "gunicorn.access":
            assert record["request_id"] and record["path"] not in ("/healthz", "/readyz", "/metrics")
    everything = "\n".join(lines).encode() + b"\n".join(Recorder.bodies)
    for secret in [*SECRETS.values(), STAFF_PASSWORD]:
        assert secret.encode() not in everything, secret
