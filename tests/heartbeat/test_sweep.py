"""The sweep at the HTTP edge (`responses`): who is due, what one failure does, timeouts."""

from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import responses as responses_lib
import time_machine
from django.utils import timezone

from heartbeat.models import HeartbeatRun, HeartbeatWake
from heartbeat.sweep import run_sweep
from sprites.models import UsageRecord, UserSprite
from sprites.models.schedule import heartbeat_slot
from sprites.openclaw import turn_cost
from tests.conftest import API, make_sprite

from .conftest import answer_exec, exec_body

pytestmark = pytest.mark.django_db
NOW = "2026-03-02 10:05:00+00:00"  # the 10:00–10:15 window


@time_machine.travel(NOW, tick=True)
def test_it_wakes_due_sprites_and_skips_the_rest(mocked):
    now = timezone.now()
    never = make_sprite("never")
    old = make_sprite("old", status=UserSprite.Status.ONLINE, last_heartbeat=now - timedelta(minutes=20))
    errored = make_sprite("errored", status=UserSprite.Status.ERROR, last_heartbeat=now - timedelta(hours=2))
    make_sprite("this-window", last_heartbeat=now)  # already woken in its own window
    make_sprite("stopped", status=UserSprite.Status.STOPPED)
    make_sprite("destroyed", status=UserSprite.Status.DESTROYED)
    make_sprite("provisioning", status=UserSprite.Status.PROVISIONING)
    make_sprite("pool", user=False, status=UserSprite.Status.READY)
    make_sprite("leased", heartbeat_lease_until=now + timedelta(minutes=5))
    calls = answer_exec(mocked)

    run = run_sweep()

    assert sorted(calls) == ["errored", "never", "old"]
    assert (run.due, run.woke, run.failed, run.skipped) == (3, 3, 0, 4)  # not destroyed, not pool
    for sprite in (never, old, errored):
        sprite.refresh_from_db()
        assert sprite.last_heartbeat >= now
        assert sprite.heartbeat_lease_until is None
        assert sprite.vm_state == UserSprite.VMState.RUNNING
    assert UsageRecord.objects.filter(kind="active", cause="heartbeat").count() == 3
    assert UsageRecord.objects.filter(kind="llm").count() == 3
    assert run.finished_at is not None and run.billed_usd > 0
    assert run.llm_usd == Decimal("0.01260000")


def test_it_sends_the_configured_command_as_argv(mocked, settings):
    settings.HEARTBEAT_COMMAND = "timeout {timeout} openclaw agent --agent {agent} --json"
    settings.HEARTBEAT_TIMEOUT_SECONDS = 90
    settings.OPENCLAW_AGENT_ID = "ops desk"
    make_sprite("one")
    answer_exec(mocked)

    run_sweep()

    [exec_call] = [c for c in mocked.calls if "/exec" in c.request.url]
    query = parse_qs(urlparse(exec_call.request.url).query)
    assert query["cmd"] == ["bash", "-c", "timeout 90 openclaw agent --agent 'ops desk' --json"]
    assert exec_call.request.headers["Authorization"] == "Bearer test-token"


def test_it_records_one_failure_and_goes_on(mocked):
    for name in ("a", "b", "c"):
        make_sprite(name)
    answer_exec(mocked, {
        "b": exec_body(b"\x1b[31mgateway not reachable\x00\n", exit_code=1),
        "c": requests.ConnectionError("refused"),
    })

    run = run_sweep()

    assert (run.woke, run.failed) == (1, 2)
    b = HeartbeatWake.objects.get(sprite__sprite_name="b")
    assert b.outcome == "failed" and b.exit_code == 1
    assert b.error == "exit 1 (failed): [31mgateway not reachable"  # escapes and NULs stripped
    c = HeartbeatWake.objects.get(sprite__sprite_name="c")
    assert c.outcome == "failed" and c.exit_code is None and "unreachable" in c.error
    # b ran (and is billed); c never reached its sprite (and is not).
    assert set(UsageRecord.objects.filter(kind="active").values_list("sprite__sprite_name", flat=True)) == {"a", "b"}
    b_sprite = UserSprite.objects.get(sprite_name="b")
    assert b_sprite.last_heartbeat is None  # due again next window
    assert b_sprite.last_error.startswith("heartbeat: exit 1")
    # Leased until its own next window opens.
    assert b_sprite.heartbeat_lease_until == heartbeat_slot(b_sprite.pk, timezone.now(), timedelta(minutes=15)) \
        + timedelta(minutes=15)
    assert "b: failed: exit 1" in run.error_summary


def test_it_records_a_timeout_as_a_failure(mocked):
    make_sprite("slow")
    make_sprite("killed")
    make_sprite("fine")
    answer_exec(mocked, {"slow": requests.ReadTimeout("read timed out"), "killed": exec_body(b"", 124)})

    run = run_sweep()

    assert (run.woke, run.failed) == (1, 2)
    slow = HeartbeatWake.objects.get(sprite__sprite_name="slow")
    assert slow.outcome == "timeout" and "no answer within" in slow.error
    killed = HeartbeatWake.objects.get(sprite__sprite_name="killed")
    assert killed.outcome == "timeout" and killed.error.startswith("exit 124 (timed out after 180s)")
    # Both were awake the whole time: billed.
    assert UsageRecord.objects.filter(kind="active").count() == 3


def test_it_clears_its_own_stale_error_on_success_but_not_others(mocked):
    make_sprite("mine", last_error="heartbeat: exit 1 (failed)", last_error_at=timezone.now())
    make_sprite("theirs", last_error="Restore failed: 503", last_error_at=timezone.now())
    answer_exec(mocked)

    run_sweep()

    assert UserSprite.objects.get(sprite_name="mine").last_error == ""
    assert UserSprite.objects.get(sprite_name="theirs").last_error == "Restore failed: 503"


def test_it_counts_a_completed_turn_without_json_as_woken_with_no_model_cost(mocked):
    make_sprite("quiet")
    answer_exec(mocked, {"quiet": exec_body(b"HEARTBEAT_OK\n")})

    run = run_sweep()

    assert (run.woke, run.failed, run.llm_usd) == (1, 0, 0)
    assert not UsageRecord.objects.filter(kind="llm").exists()
    assert HeartbeatWake.objects.get().output_tail == "HEARTBEAT_OK\n"


@pytest.mark.parametrize("stdout, expected", [
    (b'{"meta":{"agentMeta":{"costUsd":0.0123456789}}}', Decimal("0.01234568")),
    (b'[info] starting\n{"meta":{"agentMeta":{"costUsd":"0.5"}}}\n', Decimal("0.50000000")),
    (b'{"result":{"meta":{"agentMeta":{"costUsd":0.25}}}}', Decimal("0.25000000")),
    (b'{"meta":{"agentMeta":{"costUsd":null}}}', None),
    (b'{"meta":{"agentMeta":{"costUsd":true}}}', None),
    (b'{"meta":{"agentMeta":{"costUsd":-1}}}', None),
    (b'{"meta":{"agentMeta":{"costUsd":"NaN"}}}', None),
    (b'{"meta":{"agentMeta":{"costUsd":1e300}}}', None),
    (b'{"meta":"oops"}', None),
    (b'[1, 2]', None),
    (b'{not json', None),
    (b'', None),
])
def test_it_parses_the_agent_cost_defensively(stdout, expected):
    assert turn_cost(stdout.decode()) == expected


def test_it_wakes_a_forced_sprite_again_in_the_same_window_and_bills_both(mocked):
    sprite = make_sprite("again")
    answer_exec(mocked)
    run_sweep()
    sprite.refresh_from_db()
    first = sprite.last_heartbeat

    assert run_sweep(sprite_ids=[sprite.pk]).due == 0  # not due: already woken this window
    run = run_sweep(trigger="staff", sprite_ids=[sprite.pk], force=True)

    assert (run.due, run.woke) == (1, 1)
    assert UsageRecord.objects.filter(kind="active", cause="heartbeat").count() == 1
    assert UsageRecord.objects.filter(kind="active", cause="staff").count() == 1
    sprite.refresh_from_db()
    assert sprite.last_heartbeat > first


def test_it_never_forces_a_stopped_sprite(mocked):
    sprite = make_sprite("stopped", status=UserSprite.Status.STOPPED)
    calls = answer_exec(mocked)

    run = run_sweep(sprite_ids=[sprite.pk], force=True)

    assert calls == [] and (run.due, run.skipped) == (0, 1)


def test_it_writes_nothing_on_a_dry_run(mocked):
    make_sprite("due")
    calls = answer_exec(mocked)

    run = run_sweep(dry_run=True)

    assert calls == []
    assert (run.dry_run, run.due, run.woke) == (True, 1, 0)
    assert not UsageRecord.objects.exists()
    assert UserSprite.objects.get().last_heartbeat is None
    assert run.summary().startswith("dry run, nothing woken or billed: would wake 1;")


def count_sweep_queries(n):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    UserSprite.objects.update(last_heartbeat=timezone.now() - timedelta(days=1))
    for i in range(UserSprite.objects.count(), n):
        make_sprite(f"s{i:03d}")
    with CaptureQueriesContext(connection) as queries:
        run = run_sweep(concurrency=8)
    assert run.woke == n
    return len(queries)


def test_it_keeps_queries_per_sprite_constant(mocked):
    answer_exec(mocked)
    small, large = count_sweep_queries(10), count_sweep_queries(90)
    # 80 more sprites cost only the extra claims (one per 8–16 sprites), no query per sprite.
    assert large - small <= 10, (small, large)
    assert large <= 40


def test_it_survives_a_failing_pool_hook(mocked, monkeypatch):
    from sprites import services

    def fill_pool():
        raise RuntimeError("no capacity")

    monkeypatch.setattr(services, "fill_pool", fill_pool)
    make_sprite("one")
    answer_exec(mocked)

    run = run_sweep()

    assert (run.woke, run.failed) == (1, 0)
    assert "fill_pool failed: no capacity" in run.notes


def test_it_syncs_vm_states_before_waking_and_survives_a_failed_sync(mocked):
    asleep, busy, stopped = make_sprite("asleep"), make_sprite("busy"), make_sprite("stopped")
    UserSprite.objects.filter(pk=stopped.pk).update(status="stopped")
    mocked.replace(responses_lib.GET, f"{API}/sprites", json={
        "sprites": [{"name": "asleep", "status": "cold"}, {"name": "busy", "status": "running"},
                    {"name": "stopped", "status": "warm"}],
        "has_more": False,
    })
    answer_exec(mocked)
    run = run_sweep()
    assert "vm states: 3 synced" in run.notes
    assert UserSprite.objects.get(pk=asleep.pk).status == "sleeping"
    assert UserSprite.objects.get(pk=busy.pk).status == "online"
    assert UserSprite.objects.get(pk=stopped.pk).status == "stopped"  # the user's intent stays

    mocked.replace(responses_lib.GET, f"{API}/sprites", json={"error": "down"}, status=500)
    UserSprite.objects.update(last_heartbeat=None)
    HeartbeatRun.objects.update(housekeeping=False)  # as if a new window: the sync runs once per window
    run = run_sweep()
    assert "vm states failed" in run.notes
    assert run.woke == 2  # the sweep went on


def test_it_tops_the_pool_up_after_the_sweep_but_not_for_one_sprite(mocked, monkeypatch):
    from sprites import services

    fills = []
    monkeypatch.setattr(services, "fill_pool", lambda: fills.append(1) or 2)
    sprite = make_sprite("one")
    answer_exec(mocked)

    run = run_sweep()
    run_sweep(sprite_ids=[sprite.pk], force=True)

    assert fills == [1]
    assert "fill_pool: 2" in run.notes


def test_it_refuses_a_bad_command_template_before_touching_anything(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.HEARTBEAT_COMMAND = "openclaw agent --agent {agnt}"
    with pytest.raises(ImproperlyConfigured, match="HEARTBEAT_COMMAND"):
        run_sweep()
    assert not HeartbeatRun.objects.exists()


def test_it_prunes_wake_records_past_their_retention(mocked, settings):
    settings.HEARTBEAT_WAKE_RETENTION_DAYS = 7
    sprite = make_sprite("one")
    old_run = HeartbeatRun.objects.create()
    HeartbeatWake.objects.create(run=old_run, sprite=sprite, started_at=timezone.now() - timedelta(days=8),
                                 outcome="ok")
    HeartbeatWake.objects.create(run=old_run, sprite=sprite, started_at=timezone.now() - timedelta(days=6),
                                 outcome="ok")
    answer_exec(mocked)

    run_sweep()

    assert HeartbeatWake.objects.count() == 2  # the 6-day-old one and today's
    assert not HeartbeatWake.objects.filter(started_at__lt=timezone.now() - timedelta(days=7)).exists()


@time_machine.travel(NOW, tick=True)
def test_it_tries_a_failing_sprite_once_per_window_however_often_it_writes(mocked, monkeypatch):
    """A sprite that keeps failing (here: gone at the provider) is not re-claimed by the same
    sweep once its batch is written, nor by a second sweep of the window; the next window
    tries it again."""
    from heartbeat import runner

    monkeypatch.setattr(runner, "FLUSH_EVERY", 1)  # a write after every wake
    make_sprite("ghost")
    for i in range(4):
        make_sprite(f"fine{i}")
    calls = answer_exec(mocked, {"ghost": exec_body(b"Not found", exit_code=1)}, delay=0.01)

    first = run_sweep(concurrency=1)
    again = run_sweep(concurrency=1)

    assert calls.count("ghost") == 1
    assert (first.woke, first.failed) == (4, 1) and (again.woke, again.failed) == (0, 0)
    with time_machine.travel(timezone.now() + timedelta(minutes=15), tick=True):
        assert run_sweep(concurrency=1).failed == 1
    assert calls.count("ghost") == 2


def test_a_forced_run_wakes_each_given_sprite_once(mocked, monkeypatch):
    from heartbeat import runner

    monkeypatch.setattr(runner, "FLUSH_EVERY", 1)
    sprites = [make_sprite(f"s{i}") for i in range(3)]
    calls = answer_exec(mocked, {"s1": exec_body(b"", exit_code=1)})

    run = run_sweep(trigger="staff", sprite_ids=[s.pk for s in sprites], force=True, concurrency=1)

    assert sorted(calls) == ["s0", "s1", "s2"] and (run.woke, run.failed) == (2, 1)


def test_the_sync_and_side_jobs_run_once_per_window_not_every_tick(mocked):
    make_sprite("one")
    answer_exec(mocked)
    first, second = run_sweep(), run_sweep()
    assert first.housekeeping and "vm states" in first.notes
    assert not second.housekeeping and "vm states" not in second.notes
