"""The operator console: the sprites changelist, its figures, filters, live endpoint, token
reveal, actions and the read-only history admins."""

import re
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sprites import selectors, services
from sprites.billing import record_usage
from sprites.models import LifecycleEvent, UsageRecord, UserSprite
from tests.conftest import make_sprite as shared_make_sprite
from tests.conftest import usage

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=dt_timezone.utc)
CHANGELIST = "/admin/sprites/usersprite/"
LIVE = "/admin/sprites/usersprite/live/"


@pytest.fixture(autouse=True)
def frozen(request):
    if "emulator" in request.fixturenames:
        yield  # the emulator's sprites sleep on a real clock
        return
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def make_sprite(name, *, user=None, status="online", age_days=10, **fields):
    """The console's usual row: a pool sprite, online, ten days old (override any of them)."""
    return shared_make_sprite(name, user=user, status=status, age_days=age_days, **fields)


def bill(sprite, started_at, cost, *, kind="active", seconds="120"):
    record_usage([usage(sprite, started_at=started_at, cost=cost, kind=kind, seconds=seconds)])
    sprite.refresh_from_db()


def row_ids(response):
    """Sprite ids in the order the changelist shows them."""
    html = response.content.decode()
    return [int(pk) for pk in re.findall(r'data-live-id="(\d+)" data-live-field="status"', html)]


# --- figures ---------------------------------------------------------------------------------


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


# --- the changelist --------------------------------------------------------------------------


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


# --- live -------------------------------------------------------------------------------------


def test_it_returns_the_live_cells_and_summary_of_the_asked_rows(admin_client, alice, bob):
    mine = make_sprite("claw-alice", user=alice, status="online")
    other = make_sprite("claw-bob", user=bob, status="online")
    UserSprite.objects.filter(pk=mine.pk).update(status="error", last_error="gateway down")

    data = admin_client.get(LIVE, {"ids": f"{mine.pk}"}).json()

    assert set(data["rows"]) == {str(mine.pk)}
    cells = data["rows"][str(mine.pk)]
    assert set(cells) == {"status", "heartbeat", "runtime", "cost_total", "cost_month", "projected", "error"}
    assert "sprite-badge--error" in cells["status"]
    assert "gateway down" in cells["error"]
    assert data["summary"]["counts"]["error"] == 1
    assert data["summary"]["counts"]["online"] == 1
    assert 'data-fleet-count="error">1<' in data["summary_html"]
    assert str(other.pk) not in data["rows"]


def test_it_runs_a_constant_number_of_queries_for_the_live_feed(admin_client, alice):
    ids = [make_sprite(f"claw-{i}", status="ready").pk for i in range(30)]

    with CaptureQueriesContext(connection) as few:
        admin_client.get(LIVE, {"ids": ",".join(map(str, ids[:2]))})
    with CaptureQueriesContext(connection) as many:
        admin_client.get(LIVE, {"ids": ",".join(map(str, ids))})

    assert len(few) == len(many)


@pytest.mark.parametrize(
    "ids, code",
    [
        ("1,x", "bad_ids"),
        ("1,\u00b2", "bad_ids"),  # isdigit() but not int()
        ("\uff11", "bad_ids"),  # a full-width 1: int() takes it, an id it is not
        ("9223372036854775808", "bad_ids"),  # past bigint
        ("9" * 5000, "bad_ids"),  # past int()'s digit limit
        (",".join(["1"] * 501), "too_many_ids"),
    ],
)
def test_it_rejects_bad_live_ids_with_a_json_error(admin_client, ids, code):
    response = admin_client.get(LIVE, {"ids": ids})

    assert response.status_code == 400
    assert response.json()["code"] == code


def test_it_keeps_the_live_feed_for_staff_only(client, alice):
    client.force_login(alice)
    assert client.get(LIVE).status_code == 302  # to the admin login

    staff_without_perm = get_user_model().objects.create_user("helper", "h@example.com", "pw-123456789", is_staff=True)
    client.force_login(staff_without_perm)
    response = client.get(LIVE)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


# --- the gateway token reveal --------------------------------------------------------------------


def test_it_reveals_the_token_to_a_superuser_by_post_and_logs_it(admin_client, staff, alice):
    sprite = make_sprite("claw-alice", user=alice, gateway_token="gw-secret-token-0123456789")
    url = f"{CHANGELIST}{sprite.pk}/reveal-token/"

    assert admin_client.get(url).status_code == 405
    assert not LifecycleEvent.objects.exists()

    response = admin_client.post(url)

    assert response.status_code == 200
    assert "gw-secret-token-0123456789" in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    event = LifecycleEvent.objects.get()
    assert (event.sprite_id, event.action, event.actor_id, event.actor_kind) == (sprite.pk, "reveal_token", staff.pk, "staff")
    assert "gw-secret" not in event.detail


def test_it_refuses_the_reveal_to_staff_who_are_not_superusers(client, alice):
    helper = get_user_model().objects.create_user("helper", "h@example.com", "pw-123456789", is_staff=True)
    helper.user_permissions.add(Permission.objects.get(codename="view_usersprite"))
    sprite = make_sprite("claw-alice", user=alice, gateway_token="gw-secret-token-0123456789")
    client.force_login(helper)

    change = client.get(f"{CHANGELIST}{sprite.pk}/change/").content.decode()
    response = client.post(f"{CHANGELIST}{sprite.pk}/reveal-token/")

    assert "Reveal" not in change and "sprite-secret" in change
    assert response.status_code == 403
    assert not LifecycleEvent.objects.exists()


def test_it_links_the_change_page_to_the_sprites_history(admin_client, alice):
    sprite = make_sprite("claw-alice", user=alice)
    LifecycleEvent.objects.create(sprite=sprite, actor_kind="user", action="start", detail="<b>started</b>")

    html = admin_client.get(f"{CHANGELIST}{sprite.pk}/change/").content.decode()

    assert f'href="/admin/sprites/lifecycleevent/?sprite={sprite.pk}"' in html
    assert f'href="/admin/sprites/usagerecord/?sprite={sprite.pk}"' in html
    assert f'href="/admin/heartbeat/heartbeatrun/?sprite={sprite.pk}"' in html
    assert "&lt;b&gt;started&lt;/b&gt;" in html


# --- actions ------------------------------------------------------------------------------------


@pytest.fixture
def online(emulator, alice):
    """alice's sprite, provisioned for real on the emulator, gateway running."""
    sprite, _ = services.provision_sprite(user=alice)
    sprite.refresh_from_db()
    assert sprite.status == "online"
    return sprite


def run_action(client, action, sprites, **extra):
    data = {"action": action, "_selected_action": [s.pk for s in sprites], "index": "0", **extra}
    return client.post(CHANGELIST, data, follow=True)


def test_it_stops_and_starts_selected_sprites_through_the_services(admin_client, online, staff, emulator):
    stopped = run_action(admin_client, "stop", [online]).content.decode()
    online.refresh_from_db()
    assert "Stopped 1 sprite." in stopped
    assert online.status == "stopped"
    assert LifecycleEvent.objects.filter(sprite=online, action="stop", actor=staff, actor_kind="staff").exists()

    started = run_action(admin_client, "start", [online]).content.decode()
    online.refresh_from_db()
    assert "Started 1 sprite." in started
    assert online.status == "online"


def test_it_counts_the_sprites_an_action_failed_on(admin_client, online, bob):
    ghost = UserSprite.objects.create(user=bob, sprite_name="claw-ghost", sprite_id="sp-ghost", status="online")

    html = run_action(admin_client, "stop", [online, ghost]).content.decode()

    assert "Stopped 1 sprite." in html
    assert "1 failed: claw-ghost:" in html
    online.refresh_from_db()
    assert online.status == "stopped"


def test_it_refreshes_rotates_and_runs_a_heartbeat_now(admin_client, online):
    old_token = online.gateway_token

    assert "Refreshed 1 sprite." in run_action(admin_client, "refresh", [online]).content.decode()
    assert "Rotated the gateway token of 1 sprite." in run_action(admin_client, "rotate_token", [online]).content.decode()
    heartbeat = run_action(admin_client, "heartbeat_now", [online]).content.decode()

    online.refresh_from_db()
    assert online.vm_state in ("running", "warm", "cold")
    assert online.gateway_token and online.gateway_token != old_token
    assert online.gateway_token not in heartbeat
    assert "Heartbeat for 1 sprite: woke 1, skipped 0, failed 0." in heartbeat
    from heartbeat.models import HeartbeatRun

    assert HeartbeatRun.objects.get().trigger == "staff"


def test_it_asks_for_confirmation_before_destroying(admin_client, online, emulator):
    confirm = run_action(admin_client, "destroy", [online])

    online.refresh_from_db()
    assert online.status == "online"
    assert "Yes, destroy 1 sprite" in confirm.content.decode()
    assert online.sprite_name in confirm.content.decode()

    done = run_action(admin_client, "destroy", [online], post="yes").content.decode()

    online.refresh_from_db()
    assert "Destroyed 1 sprite." in done
    assert online.status == "destroyed"
    assert not emulator.exists(online.sprite_name)


def test_it_offers_no_actions_to_staff_who_may_only_view(client, alice):
    helper = get_user_model().objects.create_user("helper", "h@example.com", "pw-123456789", is_staff=True)
    helper.user_permissions.add(Permission.objects.get(codename="view_usersprite"))
    sprite = make_sprite("claw-alice", user=alice)
    client.force_login(helper)

    html = client.get(CHANGELIST).content.decode()
    response = run_action(client, "stop", [sprite])

    assert 'name="action"' not in html
    sprite.refresh_from_db()
    assert sprite.status == "online"
    assert response.status_code == 200


# --- the read-only history -------------------------------------------------------------------------


def test_it_keeps_the_history_read_only_and_filters_it_by_sprite(admin_client, alice, bob):
    mine = make_sprite("claw-alice", user=alice)
    other = make_sprite("claw-bob", user=bob)
    bill(mine, NOW - timedelta(hours=1), "0.11")
    bill(other, NOW - timedelta(hours=1), "0.99")
    LifecycleEvent.objects.create(sprite=mine, actor_kind="user", action="start")
    LifecycleEvent.objects.create(sprite=other, actor_kind="user", action="stop")

    ledger = admin_client.get("/admin/sprites/usagerecord/", {"sprite": mine.pk}).content.decode()
    events = admin_client.get("/admin/sprites/lifecycleevent/", {"sprite": mine.pk}).content.decode()

    assert "0.11" in ledger and "0.99" not in ledger
    assert '<td class="field-action">start</td>' in events
    assert '<td class="field-action">stop</td>' not in events
    record = UsageRecord.objects.filter(sprite=mine).get()
    assert admin_client.get("/admin/sprites/usagerecord/add/").status_code == 403
    assert admin_client.post(f"/admin/sprites/usagerecord/{record.pk}/change/", {}).status_code == 403
    assert admin_client.post(f"/admin/sprites/usagerecord/{record.pk}/delete/", {"post": "yes"}).status_code == 403
    assert UsageRecord.objects.count() == 2


def test_it_lists_heartbeat_runs_and_turns_by_sprite(admin_client, alice, bob):
    from heartbeat.models import HeartbeatRun, HeartbeatWake

    mine = make_sprite("claw-alice", user=alice)
    other = make_sprite("claw-bob", user=bob)
    run1 = HeartbeatRun.objects.create(started_at=NOW - timedelta(hours=1), host="host-one")
    run2 = HeartbeatRun.objects.create(started_at=NOW - timedelta(minutes=15), host="host-two")
    HeartbeatWake.objects.create(run=run1, sprite=mine, started_at=run1.started_at, outcome="ok")
    HeartbeatWake.objects.create(run=run2, sprite=other, started_at=run2.started_at, outcome="failed", error="<i>x</i>")

    runs = admin_client.get("/admin/heartbeat/heartbeatrun/", {"sprite": mine.pk}).content.decode()
    wakes = admin_client.get("/admin/heartbeat/heartbeatwake/", {"sprite": other.pk}).content.decode()

    assert "host-one" in runs and "host-two" not in runs
    assert "Failed" in wakes and "&lt;i&gt;x&lt;/i&gt;" in wakes
    assert admin_client.get("/admin/heartbeat/heartbeatrun/add/").status_code == 403


def test_the_summary_shows_the_heartbeat_capacity_and_warns_past_90_percent(admin_client, alice, settings):
    from heartbeat.models import HeartbeatRun

    settings.SPRITE_IDLE_SECONDS = 30
    make_sprite("claw-alice", user=alice, status="online")
    make_sprite("claw-bob", user=get_user_model().objects.create(username="bob2"), status="sleeping")
    html = admin_client.get(CHANGELIST).content.decode()
    assert "Heartbeat capacity" in html and "cap unknown" in html
    HeartbeatRun.objects.create(running_limit=1)  # what the last tick read from the org block
    settings.HEARTBEAT_INTERVAL_MINUTES = 2  # 1 slot × 120 s ÷ (60 s assumed turn + 30 s) = 1 sprite
    html = admin_client.get(CHANGELIST).content.decode()
    assert 'data-fleet="capacity">2 / 1<' in html
    assert "larger than the running cap carries" in html
