"""The usage ledger: idempotent writes, and totals that always equal the ledger's sums."""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

import pytest
from django.db.models import Sum

from sprites import billing
from sprites.billing import Usage, active, record_usage
from sprites.models import SpriteDailyCost, UsageRecord, UserSprite

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=dt_timezone.utc)


@pytest.fixture
def sprite(alice):
    return UserSprite.objects.create(user=alice, sprite_name="claw-alice", status="online")


def assert_totals_match_ledger(sprite):
    sprite.refresh_from_db()
    sums = UsageRecord.objects.filter(sprite=sprite).aggregate(cost=Sum("cost_usd"))
    seconds = UsageRecord.objects.filter(sprite=sprite, kind="active").aggregate(s=Sum("seconds"))["s"]
    assert sprite.total_cost_usd == (sums["cost"] or 0)
    assert sprite.total_runtime_seconds == (seconds or 0)
    # ... and the per-day rollup equals the ledger grouped by UTC day.
    by_day = {}
    for row in UsageRecord.objects.filter(sprite=sprite):
        day = row.started_at.astimezone(dt_timezone.utc).date()
        by_day[day] = by_day.get(day, 0) + row.cost_usd
    rollup = {r.day: r.cost_usd for r in SpriteDailyCost.objects.filter(sprite=sprite)}
    assert rollup == by_day


def test_it_prices_active_time_at_the_hourly_rate(settings):
    settings.SPRITE_ACTIVE_USD_PER_HOUR = Decimal("0.18")
    assert billing.active_cost(Decimal("3600")) == Decimal("0.18000000")
    assert billing.active_cost(Decimal("150")) == Decimal("0.00750000")
    # half-up at the 8th decimal place
    assert billing.round_cost(Decimal("0.000000005")) == Decimal("0.00000001")


def test_it_prices_storage_per_gb_hour(settings):
    settings.SPRITE_STORAGE_USD_PER_GB_HOUR = Decimal("0.0003")
    settings.SPRITE_STORAGE_GB = Decimal("10")
    assert billing.storage_cost(1) == Decimal("0.00300000")
    assert billing.storage_cost(730) == Decimal("2.19000000")


def test_it_writes_each_interval_once_however_often_it_is_recorded(sprite):
    usage = active(sprite_id=sprite.pk, cause="heartbeat", tag="heartbeat", started_at=T0,
                   ended_at=T0 + timedelta(seconds=150))
    assert usage.key == f"active:{sprite.pk}:heartbeat:2026-11-24T10:00:00+00:00"
    assert record_usage([usage]) == [usage]
    assert record_usage([usage]) == []
    assert record_usage([usage, usage]) == []
    assert UsageRecord.objects.count() == 1
    sprite.refresh_from_db()
    assert sprite.total_runtime_seconds == Decimal("150.000")
    assert sprite.total_runtime_minutes == Decimal("2.50")
    assert_totals_match_ledger(sprite)


def test_it_keeps_totals_equal_to_ledger_sums_across_kinds_and_sprites(sprite, bob):
    other = UserSprite.objects.create(user=bob, sprite_name="claw-bob", status="online")
    batch = []
    for i in range(20):
        start = T0 + timedelta(hours=1 * i)  # crosses midnight: two rollup days
        for s in (sprite, other):
            batch.append(
                active(
                    sprite_id=s.pk, cause="heartbeat", tag=f"turn{i}", started_at=start,
                    ended_at=start + timedelta(seconds=100 + i * 1.234),
                )
            )
            batch.append(
                Usage(sprite_id=s.pk, kind="llm", cause="heartbeat", started_at=start, ended_at=start,
                      cost_usd=Decimal("0.0012"), key=f"llm:{s.pk}:{i}")
            )
    # Written in overlapping, repeated slices, as crashed and re-run sweeps would.
    record_usage(batch[:30])
    record_usage(batch[10:50])
    record_usage(batch)
    assert UsageRecord.objects.count() == 80
    assert_totals_match_ledger(sprite)
    assert_totals_match_ledger(other)
    # llm rows carry cost but no runtime
    assert UsageRecord.objects.filter(kind="llm").aggregate(s=Sum("seconds"))["s"] == 0


def test_it_refuses_to_change_or_delete_a_ledger_row(sprite):
    record_usage([
        Usage(sprite_id=sprite.pk, kind="storage", cause="storage", started_at=T0,
              ended_at=T0 + timedelta(hours=1), cost_usd=Decimal("0.003"), key="storage:x")
    ])
    row = UsageRecord.objects.get()
    row.cost_usd = Decimal("0")
    with pytest.raises(TypeError):
        row.save()
    with pytest.raises(TypeError):
        row.delete()


def test_it_never_bills_a_negative_interval(sprite):
    [usage] = record_usage([
        active(sprite_id=sprite.pk, cause="staff", tag="start", started_at=T0, ended_at=T0 - timedelta(seconds=5))
    ])
    assert usage.seconds == 0 and usage.cost_usd == 0
