"""The heartbeat under the provider's running cap (emulator over HTTP): wakes admitted only
while a slot is free, a 429 concurrent_sprite_limit_exceeded as backpressure (not a failure,
not billed, retried in the window), and the per-sprite pacing rule in SQL and Python alike."""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.utils import timezone

from heartbeat.capacity import Gate
from heartbeat.models import HeartbeatWake
from heartbeat.sweep import run_sweep
from sprites.client import get_client
from sprites.models import UsageRecord, UserSprite
from sprites.models.schedule import heartbeat_offset_seconds, heartbeat_slot
from sprites_emulator.testing import start_emulator
from tests.conftest import make_sprite

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_plan(settings):
    """An org of 4 running slots whose sprites sleep 0.3 s after their turn."""
    handle = start_emulator(running_limit=4, idle_seconds=0.3, cold_seconds=1, exec_seconds=0.1, setup_seconds=0)
    settings.SPRITES_API_URL = handle.url
    settings.SPRITE_IDLE_SECONDS = 0.3
    try:
        yield handle
    finally:
        handle.stop()


def _fleet(n: int) -> list[UserSprite]:
    client = get_client()
    sprites = []
    for i in range(n):
        client.create_sprite(f"cap-{i:03d}")
        sprites.append(make_sprite(f"cap-{i:03d}"))
    return sprites


def test_forty_due_with_four_slots_all_wake_once_none_fail_and_the_cap_is_never_passed(small_plan):
    sprites = _fleet(40)

    run = run_sweep(concurrency=16)

    assert (run.woke, run.failed) == (40, 0)
    assert UserSprite.objects.filter(last_heartbeat__isnull=True).count() == 0
    assert UsageRecord.objects.filter(kind="active").count() == 40  # each billed once
    meter = small_plan.meter()["sprites"]
    assert all(meter[s.sprite_name]["wakes"] == 1 for s in sprites)
    cap = small_plan.cap()
    assert cap["peak_running"] <= 4
    assert HeartbeatWake.objects.filter(late_seconds__isnull=False).count() == 40


def test_a_429_is_backpressure_released_retried_and_never_billed(small_plan, settings):
    # The gate believes 16 slots are free (it was told so), the provider has 4: the 429s
    # that follow must not fail or bill anything, and every sprite still wakes once.
    sprites = _fleet(12)
    import heartbeat.runner as runner_module
    from sprites.client import OrgInfo

    real_gate = runner_module.Gate

    def optimistic_gate(**kwargs):
        return real_gate(**{**kwargs, "read_org": lambda: OrgInfo(running=0, running_limit=100)})

    runner_module.Gate = optimistic_gate
    try:
        run = run_sweep(concurrency=12)
    finally:
        runner_module.Gate = real_gate

    assert run.failed == 0 and run.woke == 12
    assert run.deferred > 0  # the provider refused some: they waited and woke later
    assert small_plan.cap()["capacity_rejected"] == run.deferred
    assert UsageRecord.objects.filter(kind="active").count() == 12
    assert not UserSprite.objects.exclude(last_error="").exists()
    assert all(small_plan.meter()["sprites"][s.sprite_name]["wakes"] == 1 for s in sprites)


def test_the_gate_admits_what_the_cap_leaves_and_follows_its_own_wakes():
    from sprites.client import OrgInfo

    now, others = [100.0], [3]
    gate = Gate(concurrency=8, idle_seconds=2.0, read_org=lambda: OrgInfo(running=others[0], running_limit=5),
                clock=lambda: now[0])
    assert gate.admissible(0) == 2
    gate.started(2)
    assert gate.admissible(2) == 0
    gate.finished(reached=True)  # its idle tail holds the slot 2 s more
    assert gate.admissible(1) == 0
    now[0] += 2.1
    others[0] = 4  # the org now: 3 others + our wake still in flight
    assert gate.admissible(1) == 1
    gate.finished(reached=False, deferred=True, retry_after=0.5)
    assert gate.admissible(0) == 0  # backing off
    assert 0 < gate.next_change() <= 0.5


def test_pacing_spreads_offsets_over_the_interval_and_sql_agrees_with_python(settings):
    interval = timedelta(minutes=15)
    offsets = sorted(heartbeat_offset_seconds(pk, interval) for pk in range(1, 61))
    assert len(set(offsets)) == 60 and offsets[0] < 60 and offsets[-1] > 840  # spread, not bunched
    sprites = [make_sprite(f"pace-{i}") for i in range(20)]
    now = timezone.now()
    for sprite in sprites:
        slot = heartbeat_slot(sprite.pk, now, interval)
        assert slot <= now < slot + interval
        assert heartbeat_slot(sprite.pk, slot, interval) == slot  # stable
        # Half an interval before its slot: due; at the slot: done for this window.
        UserSprite.objects.filter(pk=sprite.pk).update(last_heartbeat=slot - interval / 2 - timedelta(seconds=1))
        assert UserSprite.objects.due(now=now, interval=interval).filter(pk=sprite.pk).exists()
        UserSprite.objects.filter(pk=sprite.pk).update(last_heartbeat=slot)
        assert not UserSprite.objects.due(now=now, interval=interval).filter(pk=sprite.pk).exists()


def test_a_late_wake_is_not_followed_by_another_until_half_an_interval_has_passed():
    interval = timedelta(minutes=15)
    sprite = make_sprite("late")
    slot = heartbeat_slot(sprite.pk, timezone.now() + interval, interval)  # a window about to open
    # Woken a second before its window opened (the last one ran 14:59 late, the cap was full).
    UserSprite.objects.filter(pk=sprite.pk).update(last_heartbeat=slot - timedelta(seconds=1))
    due = lambda at: UserSprite.objects.due(now=at, interval=interval).filter(pk=sprite.pk).exists()  # noqa: E731
    assert not due(slot + timedelta(minutes=1))  # its new window is open, but it just ran
    assert not due(slot + interval / 2 - timedelta(seconds=2))
    assert due(slot + interval / 2)  # woken once in this window too, only later in it


def test_a_slot_is_aligned_to_the_epoch_plus_the_sprites_offset():
    interval = timedelta(minutes=15)
    at = datetime(2026, 3, 2, 10, 20, tzinfo=dt_timezone.utc)
    slot = heartbeat_slot(7, at, interval)
    assert (slot.timestamp() - heartbeat_offset_seconds(7, interval)) % 900 == 0


def test_the_plan_says_how_large_a_fleet_the_cap_carries_and_warns_past_90_percent(settings):
    from io import StringIO

    from django.core.management import call_command

    from heartbeat.plan import capacity_plan

    settings.SPRITE_IDLE_SECONDS = 30
    for i in range(10):
        make_sprite(f"plan-{i}")
    plan = capacity_plan(cap=2, interval_minutes=15, turn_seconds=120)
    assert plan.occupancy_seconds == 150 and plan.max_fleet == 12  # 2 × 900 ÷ 150
    assert plan.cap_needed == 2 and plan.warning == ""  # 10 of 12 = 83%: below 90%
    out = StringIO()
    call_command("heartbeat", "--plan", "--cap", "1", "--turn", "60", stdout=out)
    text = out.getvalue()
    assert "largest fleet this cap carries: 10" in text  # 1 × 900 ÷ 90
    assert "WARNING" in text  # 10 of 10


def test_the_operations_table_of_caps_needed_is_the_plans_arithmetic():
    """docs/operations.md's table (2-minute turn + 30 s tail) is what Plan.cap_needed says."""
    import re
    from pathlib import Path

    from heartbeat.plan import Plan

    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    header = re.search(r"^\| Fleet \| (.+) \|$", doc, flags=re.M)
    intervals = [int(re.search(r"\d+", cell)[0]) for cell in header[1].split(" | ")]
    rows = re.findall(r"^\| ([\d,]+) \| ([\d ,|]+) \|$", doc[header.end():], flags=re.M)
    assert len(rows) == 5
    for fleet, cells in rows:
        for minutes, cell in zip(intervals, cells.split(" | "), strict=True):
            plan = Plan(fleet=int(fleet.replace(",", "")), cap=None, interval_seconds=minutes * 60,
                        turn_seconds=120, idle_seconds=30, measured_wakes=0)
            assert plan.cap_needed == int(cell.replace(",", "")), (fleet, minutes)


def test_a_fleet_past_90_percent_of_what_the_cap_carries_notifies_the_operator(small_plan, settings):
    from sprites.models import Notification

    settings.SPRITE_IDLE_SECONDS, settings.HEARTBEAT_INTERVAL_MINUTES = 30, 1
    _fleet(10)  # 4 slots × 60 s ÷ (turn + 30 s tail) carry fewer than 10
    run = run_sweep()
    assert run.running_limit == 4 and "capacity: The fleet (10) is larger than the running cap carries" in run.notes
    note = Notification.objects.get(kind="capacity")
    assert note.subject == "Capacity warning: heartbeat running cap" and "Raise the cap" in note.body
    run_sweep(force=True, sprite_ids=[UserSprite.objects.first().pk])  # not a whole tick: no housekeeping
    assert Notification.objects.filter(kind="capacity").count() == 1
