"""The sprites changelist: badges, heartbeat and costs per row, the summary band and chart,
a constant number of queries, sorting, filters, search and the budget flags."""

import re
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sprites.billing import record_usage
from sprites.models import UserSprite
from tests.conftest import usage

from .conftest import CHANGELIST, LIVE, NOW, bill, make_sprite, row_ids


def test_it_lists_each_sprite_with_badge_heartbeat_and_costs(admin_client, alice):
    sprite = make_sprite(
        "claw-alice", user=alice, status="sleeping", vm_state="cold", last_heartbeat=NOW - timedelta(minutes=7)
    )
    bill(sprite, NOW - timedelta(days=2), "1.50", seconds="5400")

    html = admin_client.get(CHANGELIST).content.decode()

    assert "alice@example.com" in html
    assert '<span class="sprite-badge sprite-badge--sleeping">Sleeping</span> <span class="sprite-vm" title="VM state">cold</span>' in html
    assert re.search(r'<span title="2026-11-24 09:53:00 UTC">7 min ago</span>', html)
    assert "1.50 h" in html  # 5400 s
    assert html.count("$1.50") >= 2  # cost to date and this month


def test_it_never_shows_the_gateway_token_in_the_list_or_the_live_feed(admin_client, alice):
    sprite = make_sprite("claw-alice", user=alice, gateway_token="gw-secret-token-0123456789")

    page = admin_client.get(CHANGELIST).content.decode()
    feed = admin_client.get(LIVE, {"ids": str(sprite.pk)}).content.decode()
    change = admin_client.get(f"{CHANGELIST}{sprite.pk}/change/").content.decode()

    for body in (page, feed, change):
        assert "gw-secret-token" not in body
    assert "sprite-secret" in change and "Reveal" in change


def test_it_escapes_and_shortens_the_last_error(admin_client, alice):
    make_sprite("claw-alice", user=alice, status="error", last_error="<script>alert(1)</script> " + "x" * 200)

    html = admin_client.get(CHANGELIST).content.decode()

    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "x" * 100 not in html.split('class="sprite-error"')[1].split(">", 1)[1].split("<")[0]


def test_it_shows_the_summary_band_with_pool_and_local_currency(admin_client, alice, settings):
    settings.SPRITE_POOL_SIZE = 2
    settings.COST_LOCAL_CURRENCY = "INR"
    settings.COST_LOCAL_PER_USD = Decimal("84")
    sprite = make_sprite("claw-alice", user=alice, age_days=30)
    make_sprite("claw-pool", status="ready")
    bill(sprite, NOW - timedelta(days=1), "20.00")

    html = admin_client.get(CHANGELIST).content.decode()

    assert '<strong class="fleet-figure" data-fleet="cost-month">$20.00</strong>' in html
    assert '<strong class="fleet-figure" data-fleet="pool">1 / 2</strong>' in html
    assert "fleet-card--warn" in html  # pool below target
    # 2,920 wakes × 120 s measured × $0.18/h + $2.19 storage = $19.71 per user, at 84 INR/USD.
    assert '<strong class="fleet-figure" data-fleet="per-user">$19.71</strong>' in html
    assert "≈ INR 1,656" in html
    assert '<strong data-fleet-count="online">1</strong>' in html


def test_it_shows_the_last_heartbeat_run(admin_client):
    from heartbeat.models import HeartbeatRun

    HeartbeatRun.objects.create(
        started_at=NOW - timedelta(minutes=12), finished_at=NOW - timedelta(minutes=12) + timedelta(seconds=4.2), woke=37, failed=1
    )

    html = admin_client.get(CHANGELIST).content.decode()

    assert "12 min ago" in html
    assert "4.2 s · woke 37" in html
    assert "failed 1" in html


def test_it_draws_thirty_daily_bars_with_a_title_each(admin_client, alice):
    sprite = make_sprite("claw-alice", user=alice)
    bill(sprite, NOW - timedelta(hours=3), "0.42")

    html = admin_client.get(CHANGELIST).content.decode()

    svg = html.split('<svg viewBox="0 0 1000 160"', 1)[1].split("</svg>", 1)[0]
    assert svg.count('<rect class="bar"') == 30
    assert "<title>Tue 24 Nov: $0.42</title>" in svg
    assert ">$0.42</text>" in svg  # the y axis tops out at the busiest day


def test_it_runs_the_same_number_of_queries_for_5_and_50_sprites(admin_client, settings):
    settings.SPRITE_MONTHLY_BUDGET_USD = Decimal("25")
    User = get_user_model()

    def fleet(n, start):
        for i in range(start, start + n):
            user = User.objects.create_user(f"u{i}", f"u{i}@example.com", "pw-123456789")
            sprite = make_sprite(f"claw-{i}", user=user, status="error", last_error="boom", vm_state="warm")
            bill(sprite, NOW - timedelta(days=1), "1.00")

    def count():
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(CHANGELIST, {"has_error": "yes", "o": "-7"})
        assert response.status_code == 200
        return len(queries), len(row_ids(response))

    fleet(5, 0)
    small, shown_small = count()
    fleet(45, 5)
    large, shown_large = count()

    assert (shown_small, shown_large) == (5, 50)
    assert small == large
    assert large <= 14  # constant: the last reconciliation run and the projection band are among them


def test_it_sorts_by_cost_this_month(admin_client, alice, bob):
    cheap = make_sprite("claw-cheap", user=alice)
    dear = make_sprite("claw-dear", user=bob)
    bill(cheap, NOW - timedelta(days=1), "0.10")
    bill(dear, NOW - timedelta(days=1), "9.00")
    bill(cheap, datetime(2026, 10, 2, tzinfo=dt_timezone.utc), "50.00")  # last month: ignored
    column = 7  # 1-based position of "This month" in list_display (after the checkbox)

    ascending = row_ids(admin_client.get(CHANGELIST, {"o": str(column)}))
    descending = row_ids(admin_client.get(CHANGELIST, {"o": f"-{column}"}))

    assert ascending == [cheap.pk, dear.pk]
    assert descending == [dear.pk, cheap.pk]


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"status": "error"}, {"claw-broken"}),
        ({"status": "live"}, {"claw-broken", "claw-late", "claw-fresh"}),
        ({"vm": "warm"}, {"claw-late"}),
        ({"vm": "unknown"}, {"claw-broken", "claw-fresh", "claw-gone"}),
        ({"has_error": "yes"}, {"claw-broken"}),
        ({"overdue": "yes"}, {"claw-late"}),
        ({"q": "bob@"}, {"claw-late"}),
        ({"q": "fresh"}, {"claw-fresh"}),
    ],
)
def test_it_filters_and_searches(admin_client, alice, bob, params, expected):
    User = get_user_model()
    carol = User.objects.create_user("carol", "carol@example.com", "pw-123456789")
    make_sprite("claw-broken", user=alice, status="error", last_error="Sprites API unavailable")
    make_sprite("claw-late", user=bob, status="sleeping", vm_state="warm", last_heartbeat=NOW - timedelta(hours=2))
    make_sprite("claw-fresh", user=carol, status="online", last_heartbeat=NOW - timedelta(minutes=5))
    make_sprite("claw-gone", status="destroyed")

    html = admin_client.get(CHANGELIST, params).content.decode()

    shown = set(re.findall(r">(claw-[a-z]+)</a></th>", html))
    assert shown == expected


def test_it_filters_and_flags_over_budget_against_each_sprites_own_budget(admin_client, alice, bob, settings):
    dear = make_sprite("claw-dear", user=alice, age_days=30)
    cheap = make_sprite("claw-cheap", user=bob, age_days=30)
    bill(dear, NOW - timedelta(days=1), "30.00")
    bill(cheap, NOW - timedelta(days=1), "2.00")
    # Both project $19.71 from the schedule; dear's user spends 10 hours a week on top (+$7.82).
    record_usage([usage(dear, started_at=NOW - timedelta(days=2), cause="user", seconds="36000")])

    settings.SPRITE_MONTHLY_BUDGET_USD = None
    assert 'class="sprite-over"' not in admin_client.get(CHANGELIST).content.decode()
    assert row_ids(admin_client.get(CHANGELIST, {"budget": "over"})) == []  # no budget: never over

    settings.SPRITE_MONTHLY_BUDGET_USD = Decimal("25")
    html = admin_client.get(CHANGELIST, {"budget": "over"}).content.decode()
    assert row_ids(admin_client.get(CHANGELIST, {"budget": "over"})) == [dear.pk]
    assert row_ids(admin_client.get(CHANGELIST, {"budget": "projected"})) == [dear.pk]
    assert 'class="sprite-over"' in html

    # A user's own budget wins over the default, both ways.
    UserSprite.objects.filter(pk=dear.pk).update(monthly_budget_usd=Decimal("100"))
    UserSprite.objects.filter(pk=cheap.pk).update(monthly_budget_usd=Decimal("1"))
    assert row_ids(admin_client.get(CHANGELIST, {"budget": "over"})) == [cheap.pk]
    assert 'title="Over the $1.00 budget"' in admin_client.get(CHANGELIST).content.decode()
