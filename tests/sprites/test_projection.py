"""The projection from the schedule: the guide's own example, the default schedule's figure
(both derived in docs/cost-model.md), what-ifs and `manage.py costs`."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from sprites import selectors
from sprites.billing import record_usage
from sprites.billing.schedule import Schedule, WhatIfError, monthly_cost, parse_pairs
from tests.conftest import make_sprite, usage

pytestmark = pytest.mark.django_db


def test_the_guides_96_active_hours_and_10_gb_come_out_at_the_cost_models_figure():
    # docs/cost-model.md: 96 h × $0.18 + 730 h × 10 GB × $0.0003 = $17.28 + $2.19 = $19.47
    cost = monthly_cost(active_seconds=Decimal(96 * 3600), schedule=Schedule.current())
    assert cost.quantize(Decimal("0.01")) == Decimal("19.47")


def test_a_fresh_sprite_on_the_default_schedule_projects_the_cost_models_24_09():
    # docs/cost-model.md: 2,920 wakes × 150 s = 121.7 h × $0.18 = $21.90 + $2.19 = $24.09
    sprite = make_sprite("claw-new", status="online")
    assert selectors.sprite_projection(sprite) == {
        "heartbeat_usd": Decimal("21.90"), "user_usd": Decimal("0.00"), "storage_usd": Decimal("2.19"),
        "monthly_usd": Decimal("24.09"),
    }


def test_the_user_average_is_over_the_days_the_sprite_has_had_when_younger_than_a_week():
    now = timezone.now()
    sprite = make_sprite("claw-young", status="online", age_days=2)
    record_usage([usage(sprite, started_at=now - timedelta(hours=3), cause="user", seconds="7200")])
    # 2 h in 2 days → 730 h × 2 / 48 = 30.4 h a month × $0.18 = $5.48
    assert selectors.sprite_projection(sprite, now=now)["user_usd"] == Decimal("5.48")


def test_a_stopped_sprite_is_not_woken_and_a_destroyed_one_costs_nothing():
    stopped = make_sprite("claw-stopped", status="stopped")
    gone = make_sprite("claw-gone", status="destroyed")
    assert selectors.sprite_projection(stopped)["monthly_usd"] == Decimal("2.19")
    assert selectors.sprite_projection(gone)["monthly_usd"] == Decimal("0.00")


def test_a_what_if_changes_only_what_it_names():
    for i in range(4):
        make_sprite(f"claw-u{i}", status="online")
    make_sprite("claw-pool", user=None, status="ready")
    today = selectors.fleet_projection()
    other = selectors.fleet_projection(schedule=Schedule.current().what_if(
        parse_pairs(["interval=30", "idle=15", "pool=5"])))

    assert today["per_user_usd"] == Decimal("24.09") and today["pool"] == 1
    assert today["total_usd"] == Decimal("98.55")  # 4 × 24.09 + the pool sprite's 2.19
    # 1,460 wakes × (120 + 15) s × $0.18/h = $9.86 + $2.19 storage; 5 pool sprites' storage.
    assert other["per_user_usd"] == Decimal("12.05")
    assert other["billed_seconds_per_wake"] == Decimal("135.0")
    assert other["storage_usd"] == Decimal("19.71")  # 9 sprites × $2.19
    assert other["total_usd"] == Decimal("59.13")  # 4 × $9.855 + $19.71
    published = selectors.fleet_projection(schedule=Schedule.current().what_if({"card": "published", "turn": "90"}))
    # 2,920 × 120 s × $0.735/h = $71.54 + 730 × 10 × $0.0000274 = $0.20
    assert published["per_user_usd"] == Decimal("71.74")


@pytest.mark.parametrize("pairs, message", [
    (["interval=0"], "interval must be a whole number between 1 and 1440."),
    (["interval=7.5"], "interval must be a whole number between 1 and 1440."),
    (["idle=abc"], "idle must be a number."),
    (["speed=3"], "Unknown what-if key 'speed'"),
    (["card=cheap"], "card must be one of guide, published."),
    (["pool"], "'pool' is not key=value."),
    (["rate=NaN"], "rate must be between 0 and 1000."),
])
def test_a_bad_what_if_says_which_key_and_why(pairs, message):
    with pytest.raises(WhatIfError, match=message.replace(".", r"\.").replace("(", r"\(")):
        Schedule.current().what_if(parse_pairs(pairs))


def test_the_costs_command_prints_today_beside_the_what_if(capsys):
    make_sprite("claw-a", status="online")
    call_command("costs", "--what-if", "interval=30", "idle=15", "pool=5")
    out = capsys.readouterr().out
    assert "today" in out and "what if" in out
    per_user = next(line for line in out.splitlines() if line.startswith("Per user / month"))
    assert per_user.split()[-2:] == ["$24.09", "$12.05"]
    with pytest.raises(CommandError, match="interval must be a number"):
        call_command("costs", "--what-if", "interval=x")


@pytest.mark.parametrize("what_if", [{}, {"interval": "30", "idle": "15"}, {"turn": "45", "card": "published"}])
def test_the_fleet_figure_is_the_sum_of_the_sprites_figures(what_if):
    """fleet_projection sums in Python what annotate_projection computes per sprite in SQL."""
    from sprites.models import UserSprite

    now = timezone.now()
    measured = make_sprite("claw-measured", status="online", age_days=10)
    young = make_sprite("claw-young", status="sleeping", age_days=2)
    stopped = make_sprite("claw-stopped", status="stopped", age_days=10)
    make_sprite("claw-fresh", status="online")
    make_sprite("claw-pool", user=None, status="ready")
    make_sprite("claw-gone", status="destroyed")
    for i, seconds in enumerate(["95", "160", "171.5"]):
        record_usage([usage(measured, started_at=now - timedelta(days=i + 1), seconds=seconds)])
    record_usage([usage(young, started_at=now - timedelta(hours=5), seconds="60")])
    for sprite, seconds in ((measured, "5400"), (young, "1800"), (stopped, "900")):
        record_usage([usage(sprite, started_at=now - timedelta(days=1), cause="user", seconds=seconds,
                            key=f"user:{sprite.pk}")])
    schedule = Schedule.current().what_if(what_if)

    fleet = selectors.fleet_projection(schedule=schedule, now=now)
    rows = selectors.annotate_projection(UserSprite.objects.exclude(status="destroyed"), schedule=schedule, now=now)
    by_sql = sum(r.projected_monthly_usd for r in rows)
    assert abs(fleet["total_usd"] - Decimal(str(by_sql))) <= Decimal("0.01")
    assigned = [r for r in rows if r.user_id]
    per_user = sum(r.projected_monthly_usd for r in assigned) / len(assigned)
    assert abs(fleet["per_user_usd"] - Decimal(str(per_user))) <= Decimal("0.01")


def test_the_daily_rollup_counts_heartbeat_wakes_and_seconds_and_user_seconds():
    from sprites.models import SpriteDailyCost

    now = timezone.now().replace(hour=12)
    sprite = make_sprite("claw-r", status="online")
    record_usage([usage(sprite, started_at=now, seconds="150"),
                  usage(sprite, started_at=now + timedelta(minutes=15), seconds="149.5"),
                  usage(sprite, started_at=now, cause="user", seconds="600", key="u1"),
                  usage(sprite, started_at=now, cause="staff", seconds="40", key="s1"),
                  usage(sprite, started_at=now, kind="storage", cause="storage", cost="0.003", key="st1")])
    record_usage([usage(sprite, started_at=now, cause="user", seconds="60", key="u2")])  # an upsert adds
    day = SpriteDailyCost.objects.get(sprite=sprite)
    assert (day.heartbeat_wakes, day.heartbeat_seconds, day.user_seconds) == (2, Decimal("299.5"), Decimal("660"))
    assert day.active_seconds == Decimal("999.5")
