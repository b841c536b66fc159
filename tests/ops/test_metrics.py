"""/metrics: Prometheus text, read from the database at scrape time, behind a bearer secret or an
address allow-list."""

from datetime import timedelta
from decimal import Decimal

import pytest
import responses
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from heartbeat.models import HeartbeatRun
from heartbeat.sweep import run_sweep
from sprites import billing
from sprites.client import SpritesError, get_client
from sprites.client.tally import tally
from sprites.models import UserSprite
from sprites.services import persist_api_calls
from tests.conftest import API, make_sprite, usage
from tests.heartbeat.conftest import answer_exec, exec_body

TOKEN = "metrics-token-for-tests-0123456789abcdef"


@pytest.fixture(autouse=True)
def _metrics(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = []
    tally.drain()  # calls other tests made outside a request


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{API}/sprites", json={"sprites": [], "has_more": False, "next_continuation_token": None})
        yield rsps


def scrape(client, **headers) -> dict:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


# --- who may scrape -------------------------------------------------------------------------------


def test_it_answers_503_when_nobody_is_allowed(client, db, settings):
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics")
    assert response.status_code == 503
    assert response.json()["code"] == "metrics_unconfigured"


@pytest.mark.parametrize("header", ["", "Bearer wrong", f"Token {TOKEN}", f"Bearer {TOKEN}x"])
def test_it_refuses_a_wrong_or_missing_secret(client, db, header):
    response = client.get("/metrics", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert TOKEN not in response.content.decode()


def test_it_allows_an_address_on_the_allow_list(client, db, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8", "127.0.0.1"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.9").status_code == 401


def test_it_believes_x_forwarded_for_only_through_trusted_proxies(client, db, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    spoofed = {"REMOTE_ADDR": "192.0.2.9", "HTTP_X_FORWARDED_FOR": "10.1.2.3"}
    assert client.get("/metrics", **spoofed).status_code == 401  # TRUSTED_PROXY_COUNT = 0
    with override_settings(TRUSTED_PROXY_COUNT=1):
        # behind one proxy (at 192.0.2.9): the address it appended is the client's
        assert client.get("/metrics", **spoofed).status_code == 200
        assert client.get("/metrics", REMOTE_ADDR="192.0.2.9",
                          HTTP_X_FORWARDED_FOR="10.1.2.3, 198.51.100.4").status_code == 401


# --- what it says ---------------------------------------------------------------------------------


def test_it_counts_the_fleet_by_status_and_vm_state(client, db, settings):
    settings.SPRITE_POOL_SIZE = 3
    make_sprite("a", status="online", vm_state="running")
    make_sprite("b", status="online", vm_state="running")
    make_sprite("c", status="sleeping", vm_state="cold")
    make_sprite("pool-1", user=None, status="ready", golden_checkpoint_id="v1")
    make_sprite("gone", status="destroyed")
    samples = scrape(client)
    assert value(samples, "clawdirector_sprites", status="online", vm_state="running") == 2
    assert value(samples, "clawdirector_sprites", status="sleeping", vm_state="cold") == 1
    assert value(samples, "clawdirector_sprites", status="ready", vm_state="") == 1
    assert value(samples, "clawdirector_sprites", status="destroyed", vm_state="") == 1
    assert value(samples, "clawdirector_pool_ready") == 1
    assert value(samples, "clawdirector_pool_target") == 3


def test_it_reports_the_fleet_cost_from_the_ledger(client, db):
    sprite = make_sprite("a", status="online")
    billing.record_usage([usage(sprite, started_at=timezone.now() - timedelta(minutes=5), cost="1.25")])
    samples = scrape(client)
    assert value(samples, "clawdirector_fleet_cost_month_usd") == pytest.approx(1.25)
    assert value(samples, "clawdirector_fleet_cost_usd_total") == pytest.approx(1.25)
    assert value(samples, "clawdirector_fleet_cost_projected_month_usd") > 0


def test_it_reports_sweeps_wakes_and_their_histograms(client, db, mocked, settings):
    make_sprite("ok-1", status="online")
    make_sprite("ok-2", status="sleeping")
    make_sprite("broken", status="online")
    answer_exec(mocked, {"broken": exec_body(b"boom\n", exit_code=1)})
    run = run_sweep(trigger="command")
    assert (run.woke, run.failed) == (2, 1)
    HeartbeatRun.objects.create(trigger="endpoint", finished_at=timezone.now())  # an empty, good one
    killed = HeartbeatRun.objects.create(trigger="command")
    HeartbeatRun.objects.filter(pk=killed.pk).update(started_at=timezone.now() - timedelta(hours=2))

    samples = scrape(client)
    assert value(samples, "clawdirector_heartbeat_runs_total", trigger="command", outcome="failed") == 1
    assert value(samples, "clawdirector_heartbeat_runs_total", trigger="command", outcome="aborted") == 1
    assert value(samples, "clawdirector_heartbeat_runs_total", trigger="endpoint", outcome="ok") == 1
    assert value(samples, "clawdirector_heartbeat_wakes_total", outcome="ok") == 2
    assert value(samples, "clawdirector_heartbeat_wakes_total", outcome="failed") == 1
    assert value(samples, "clawdirector_heartbeat_wake_duration_seconds_count", outcome="ok") == 2
    assert value(samples, "clawdirector_heartbeat_wake_duration_seconds_bucket", outcome="ok", le="+Inf") == 2
    assert value(samples, "clawdirector_heartbeat_wake_duration_seconds_bucket", outcome="ok", le="1.0") == 2
    assert value(samples, "clawdirector_heartbeat_wake_lateness_seconds_count") == 3
    assert value(samples, "clawdirector_heartbeat_wake_lateness_seconds_bucket", le="900.0") == 3
    assert value(samples, "clawdirector_heartbeat_last_run_start_timestamp_seconds") > 0
    assert value(samples, "clawdirector_heartbeat_interval_seconds") == 900
    # The sweep's own API calls (the VM-state list and three execs) were persisted as it went.
    assert value(samples, "clawdirector_sprites_api_calls_total", endpoint="POST /sprites/{name}/exec") == 3
    assert value(samples, "clawdirector_sprites_api_calls_total", endpoint="GET /sprites") >= 1


def test_it_counts_sprites_api_errors_by_kind(client, db, mocked, settings):
    settings.SPRITES_MAX_RETRIES = 1
    mocked.get(f"{API}/sprites/claw-x", status=503, json={"error": "down"})
    mocked.post(f"{API}/sprites/claw-x/exec", status=429,
                json={"error": "concurrent_sprite_limit_exceeded", "limit": 3}, headers={"Retry-After": "1"})
    client_ = get_client()
    for call in (lambda: client_.get_sprite("claw-x"), lambda: client_.exec("claw-x", ["true"])):
        with pytest.raises(SpritesError):
            call()
    persist_api_calls()
    samples = scrape(client)
    assert value(samples, "clawdirector_sprites_api_calls_total", endpoint="GET /sprites/{name}") == 2  # + 1 retry
    assert value(samples, "clawdirector_sprites_api_errors_total", endpoint="GET /sprites/{name}",
                 kind="server_error") == 2
    assert value(samples, "clawdirector_sprites_api_errors_total", endpoint="POST /sprites/{name}/exec",
                 kind="concurrent_sprite_limit_exceeded") == 1


def test_it_keeps_a_constant_number_of_queries(client, db, django_assert_max_num_queries):
    for n in range(20):
        make_sprite(f"s{n}", status="online")
    with django_assert_max_num_queries(9):  # + the projection's one GROUP BY over the last 7 days of the ledger
        scrape(client)


def test_it_is_not_cached_and_shows_no_secret(client, db, settings):
    make_sprite("a", status="online", gateway_token="gw-secret-token-0123456789")
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response["Cache-Control"] == "no-store"
    text = response.content.decode()
    for secret in ("gw-secret-token-0123456789", TOKEN, settings.SECRET_KEY, settings.CRON_SECRET):
        assert secret not in text
    assert Decimal(str(value(scrape(client), "clawdirector_fleet_cost_usd_total"))) == 0
    assert UserSprite.objects.count() == 1
