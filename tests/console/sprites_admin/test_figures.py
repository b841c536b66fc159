"""The console's figures, computed in SQL: cost this month, each sprite's projection, the
fleet summary and the daily totals of the chart."""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

from sprites import selectors
from sprites.billing import record_usage
from sprites.models import UserSprite
from tests.conftest import usage

from .conftest import NOW, bill, make_sprite


def test_it_sums_cost_this_month_from_ledger_rows_started_this_utc_month(alice):
    sprite = make_sprite("claw-a", user=alice, age_days=40)
    bill(sprite, datetime(2026, 10, 31, 23, 59, tzinfo=dt_timezone.utc), "5.00")  # last month
    bill(sprite, datetime(2026, 11, 1, 0, 0, tzinfo=dt_timezone.utc), "1.25")
    bill(sprite, NOW - timedelta(hours=1), "0.50")

    row = selectors.annotate_costs(UserSprite.objects.all()).get()

    assert row.cost_month_usd == Decimal("1.75")
    assert row.total_cost_usd == Decimal("6.75")


def test_it_projects_each_sprite_from_the_schedule_in_sql(alice, bob):
    busy = make_sprite("claw-busy", user=alice)
    fresh = make_sprite("claw-fresh", user=bob, age_days=0)
    pool = make_sprite("claw-pool")
    bill(busy, NOW - timedelta(days=1), "0", seconds="120")
    bill(busy, NOW - timedelta(days=2), "0", seconds="180")  # mean 150 s billed per wake
    bill(busy, NOW - timedelta(days=9), "0", seconds="900")  # before the 7 UTC days: not measured
    record_usage([usage(busy, started_at=NOW - timedelta(days=3), cause="user", seconds="3600")])

    rows = {s.pk: s for s in selectors.annotate_costs(UserSprite.objects.all())}

    # 2,920 wakes × 150 s × $0.18/h = $21.90; 3,600 s over the window (the 6 UTC days before
    # today and today's 10 hours: 154 h) × 730 h / 154 h × $0.18/h = $0.85
    assert rows[busy.pk].projected_heartbeat_usd.quantize(Decimal("0.01")) == Decimal("21.90")
    assert rows[busy.pk].projected_user_usd.quantize(Decimal("0.01")) == Decimal("0.85")
    assert rows[busy.pk].projected_monthly_usd.quantize(Decimal("0.01")) == Decimal("24.94")
    # No wake measured yet: the default turn (120 s) + the idle tail (30 s), the same $21.90.
    assert rows[fresh.pk].projected_monthly_usd.quantize(Decimal("0.01")) == Decimal("24.09")
    assert rows[pool.pk].projected_monthly_usd.quantize(Decimal("0.01")) == Decimal("2.19")  # storage only


def test_it_summarises_the_fleet(alice, bob, settings):
    settings.SPRITE_POOL_SIZE = 3
    a = make_sprite("claw-a", user=alice, age_days=30)
    b = make_sprite("claw-b", user=bob, status="error", age_days=30)
    make_sprite("claw-pool-1", status="ready")
    gone = make_sprite("claw-gone", status="destroyed", age_days=30)
    bill(a, NOW - timedelta(days=1), "2.00")
    bill(b, NOW - timedelta(days=2), "1.00")
    bill(gone, NOW - timedelta(days=3), "0.40")  # spent this month: counted
    bill(a, datetime(2026, 10, 15, tzinfo=dt_timezone.utc), "9.00")  # last month: not

    summary = selectors.fleet_summary(now=NOW)

    assert summary["counts"]["online"] == 1
    assert summary["counts"]["error"] == 1
    assert summary["counts"]["destroyed"] == 1
    assert summary["pool_ready"] == 1
    assert summary["users"] == 2
    assert summary["cost_month_usd"] == Decimal("3.40")
    assert summary["cost_to_date_usd"] == Decimal("12.40")
    # Each user: 2,920 wakes × 120 s measured × $0.18/h + $2.19 storage = $19.71; the pool
    # sprite's storage; nothing for the destroyed one.
    assert summary["avg_per_user_usd"] == Decimal("19.71")
    assert summary["projected_monthly_usd"] == Decimal("41.61")
    assert summary["projection"]["storage_usd"] == Decimal("6.57")


def test_it_totals_ledger_rows_per_utc_day_for_the_chart(alice):
    sprite = make_sprite("claw-a", user=alice)
    bill(sprite, NOW - timedelta(hours=1), "0.30")
    bill(sprite, NOW - timedelta(days=1, hours=1), "0.20", kind="storage")
    bill(sprite, NOW - timedelta(days=1, hours=2), "0.05")
    bill(sprite, NOW - timedelta(days=45), "7.00")  # outside the window

    days = selectors.daily_costs(days=30, now=NOW)

    assert len(days) == 30
    assert days[-1] == (NOW.date(), Decimal("0.30"))
    assert days[-2] == (NOW.date() - timedelta(days=1), Decimal("0.25"))
    assert sum(cost for _, cost in days) == Decimal("0.55")
