"""What a sweep bills: exact Decimal arithmetic, storage by the whole hour, and idempotency
when a sweep dies half-way and runs again.

Rounding (sprites/billing.py): seconds are rounded half-up to the millisecond, each row's
cost half-up to 8 decimal places; totals are exact sums of the rounded rows.
"""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from heartbeat import record, runner
from heartbeat.config import load_config
from heartbeat.models import HeartbeatWake
from heartbeat.sweep import run_sweep
from sprites.billing import record_usage
from sprites.models import UsageRecord, UserSprite
from sprites.models.schedule import heartbeat_slot
from sprites.services import WakeResult, accrue_storage
from sprites.services.storage import STORAGE_BACKFILL_HOURS
from tests.conftest import assert_ledger_consistent, make_sprite

from .conftest import answer_exec

pytestmark = pytest.mark.django_db
UTC = dt_timezone.utc
WINDOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def wake(sprite, *, wall, llm=None, outcome="ok", reached=True):
    return WakeResult(sprite_id=sprite.pk, name=sprite.sprite_name, started_at=WINDOW + timedelta(minutes=1),
                      wall_seconds=wall, outcome=outcome, llm_usd=llm, reached=reached)


@time_machine.travel("2026-03-02 10:03:00+00:00", tick=False)
def test_it_bills_wall_time_plus_the_idle_tail_at_the_active_rate():
    sprite = make_sprite("one")
    rows = wake(sprite, wall=90.0, llm=Decimal("0.01234568")).usages(cause="heartbeat", slot=WINDOW)
    record_usage(rows)

    active = UsageRecord.objects.get(kind="active")
    assert active.seconds == Decimal("120.000")
    assert active.cost_usd == Decimal("0.00600000")  # 120 s × $0.18/h
    assert active.idempotency_key == f"active:{sprite.pk}:heartbeat:2026-03-02T10:00:00+00:00"
    assert active.ended_at - active.started_at == timedelta(seconds=120)
    llm = UsageRecord.objects.get(kind="llm")
    assert llm.cost_usd == Decimal("0.01234568")
    assert llm.idempotency_key == f"llm:{sprite.pk}:heartbeat:2026-03-02T10:00:00+00:00"
    sprite.refresh_from_db()
    assert sprite.total_cost_usd == Decimal("0.01834568")
    assert sprite.total_runtime_seconds == Decimal("120.000")


def test_it_rounds_half_up_to_eight_places_under_the_published_rate_card(settings):
    settings.SPRITE_ACTIVE_USD_PER_HOUR = Decimal("0.735")  # 8 vCPU + 4 GB, sprites-api.md §7
    settings.SPRITE_IDLE_SECONDS = 3
    sprite = make_sprite("one")
    [active] = wake(sprite, wall=4.0004).usages(cause="heartbeat", slot=WINDOW)
    # 4.0004 s → 4.000 s (ms, half-up) + 3 s idle = 7 s; 7 × 0.735 / 3600 = 0.001429166… → 0.00142917
    assert active.seconds == Decimal("7.000")
    assert active.cost_usd == Decimal("0.00142917")


def test_it_bills_nothing_for_a_wake_that_never_reached_the_sprite():
    sprite = make_sprite("one")
    assert wake(sprite, wall=0.2, outcome="failed", reached=False).usages(cause="heartbeat", slot=WINDOW) == []


def test_it_bills_a_window_once_however_often_it_is_recorded():
    sprite = make_sprite("one")
    first = wake(sprite, wall=60).usages(cause="heartbeat", slot=WINDOW)
    again = wake(sprite, wall=75).usages(cause="heartbeat", slot=WINDOW)
    assert len(record_usage(first)) == 1
    assert record_usage(again) == []
    assert UsageRecord.objects.count() == 1
    assert_ledger_consistent()


def test_it_accrues_storage_once_per_whole_hour_across_sweeps(mocked):
    answer_exec(mocked)
    with time_machine.travel("2026-03-02 07:30:00+00:00", tick=False):
        pool = make_sprite("pool", user=False, status=UserSprite.Status.READY)
        owned = make_sprite("owned")
        make_sprite("gone", status=UserSprite.Status.DESTROYED)
    for at in ("2026-03-02 10:05:00+00:00", "2026-03-02 10:20:00+00:00", "2026-03-02 10:59:59+00:00"):
        with time_machine.travel(at, tick=False):
            run_sweep()

    for sprite in (pool, owned):
        hours = list(UsageRecord.objects.filter(sprite=sprite, kind="storage")
                     .order_by("started_at").values_list("started_at", "cost_usd"))
        # 07:00 (created in it), 08:00, 09:00; 10:00 has not ended yet.
        assert [h.hour for h, _ in hours] == [7, 8, 9]
        assert {cost for _, cost in hours} == {Decimal("0.00300000")}  # 10 GB × $0.0003
        sprite.refresh_from_db()
        assert sprite.storage_billed_until == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert not UsageRecord.objects.filter(sprite__sprite_name="gone").exists()

    with time_machine.travel("2026-03-02 11:00:01+00:00", tick=False):
        assert accrue_storage() == Decimal("0.00600000")  # hour 10 for both
        assert accrue_storage() == Decimal("0")
    assert_ledger_consistent()


def test_it_caps_the_storage_backfill_per_sweep_and_catches_up_later():
    with time_machine.travel("2026-03-01 00:00:00+00:00", tick=False):
        sprite = make_sprite("old")
    with time_machine.travel("2026-03-04 00:30:00+00:00", tick=False):  # 72 whole hours later
        accrue_storage()
        assert UsageRecord.objects.filter(kind="storage").count() == STORAGE_BACKFILL_HOURS
        accrue_storage()
    assert UsageRecord.objects.filter(kind="storage").count() == 72
    sprite.refresh_from_db()
    assert sprite.total_cost_usd == Decimal("0.21600000")


@time_machine.travel("2026-03-02 10:01:00+00:00", tick=True)
def test_it_bills_nothing_twice_and_loses_nothing_when_killed_half_way(mocked, monkeypatch):
    sprites = [make_sprite(f"s{i}") for i in range(6)]
    answer_exec(mocked, delay=0.02)  # one at a time, so the batches stay small
    monkeypatch.setattr(runner, "FLUSH_EVERY", 2)
    real_flush = record.flush
    calls = []

    def dying_flush(results, **kwargs):
        calls.append(len(results))
        if len(calls) > 1:
            raise KeyboardInterrupt  # the process dies while writing its second batch
        return real_flush(results, **kwargs)

    monkeypatch.setattr(record, "flush", dying_flush)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(concurrency=1)
    first_batch = calls[0]
    assert 2 <= first_batch < 6
    assert UsageRecord.objects.filter(kind="active").count() == first_batch
    assert UserSprite.objects.filter(last_heartbeat__isnull=False).count() == first_batch
    assert_ledger_consistent()

    monkeypatch.setattr(record, "flush", real_flush)
    # Leases of wakes that ran but were never recorded expire (10 min), still in this window.
    time_machine_offset = timedelta(seconds=load_config().lease.total_seconds() + 1)
    later = timezone.now() + time_machine_offset
    # Each sprite has its own window: one recorded at 10:01 whose window opens again before
    # `later` is due again (a new window, billed as its own wake); the rest are not.
    recorded = dict(UserSprite.objects.filter(last_heartbeat__isnull=False).values_list("pk", "last_heartbeat"))
    new_window = {pk for pk, at in recorded.items() if heartbeat_slot(pk, later, timedelta(minutes=15)) > at}
    with time_machine.travel(later, tick=True):
        again = run_sweep(concurrency=1)

    assert again.woke == 6 - first_batch + len(new_window)
    for sprite in sprites:
        windows = 2 if sprite.pk in new_window else 1
        assert UsageRecord.objects.filter(sprite=sprite, kind="active").count() == windows
        assert UsageRecord.objects.filter(sprite=sprite, kind="llm").count() == windows
    assert UserSprite.objects.filter(last_heartbeat__isnull=True).count() == 0
    assert_ledger_consistent()


@time_machine.travel("2026-03-02 10:01:00+00:00", tick=True)
def test_it_writes_ledger_rows_and_last_heartbeat_in_one_transaction(mocked, monkeypatch):
    sprite = make_sprite("one")
    answer_exec(mocked)

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(HeartbeatWake.objects, "bulk_create", broken)  # the batch's last write
    with pytest.raises(RuntimeError):
        run_sweep()
    assert not UsageRecord.objects.exists()  # rolled back with the rest
    sprite.refresh_from_db()
    assert sprite.last_heartbeat is None and sprite.total_cost_usd == 0
