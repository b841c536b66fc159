"""Budgets that act, end to end on the emulator: a user walked from 0 to 80 % to 100 % of their
budget is warned once, then slept (not woken, gateway stopped, start refused), then restored
when staff raise the budget or the month rolls over. Also the fleet cap and the figures."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from heartbeat.sweep import run_sweep
from sprites import billing, openclaw, services
from sprites.billing import budget
from sprites.models import LifecycleEvent, Notification, UserSprite
from sprites.services import budgets
from sprites.services.errors import SpriteActionError
from tests.conftest import make_sprite, usage

pytestmark = pytest.mark.django_db
GATEWAY = openclaw.GATEWAY_SERVICE


@pytest.fixture
def online(emulator, alice, settings):
    settings.SPRITE_IDLE_SECONDS = 1
    settings.ADMINS = [("ops@example.com", "ops@example.com")]
    settings.SPRITE_MONTHLY_BUDGET_USD = None
    services.fill_pool(target=1)
    row, outcome = services.provision_sprite(user=alice)
    assert outcome == "ready"
    return row


def spend_up_to(sprite, total: str, n: int) -> None:
    """Book ledger rows (this month) until the user's spend this month is `total`."""
    missing = Decimal(total) - budget.spent_this_month(sprite)
    assert missing > 0
    started = timezone.now() - timedelta(minutes=5)
    if started.month != timezone.now().month:  # a test run in the first minutes of a month
        started = timezone.now()
    billing.record_usage([usage(sprite, started_at=started, cost=str(missing), kind="llm", key=f"spend:{n}")])


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def events(sprite, action):
    return LifecycleEvent.objects.filter(sprite=sprite, action=action)


def test_it_walks_a_user_from_0_to_80_to_100_percent_then_restores_on_a_raise(online, alice, staff, emulator):
    url = f"/api/sprites/{online.public_id}"
    answer = as_user(staff).put(f"{url}/budget", {"monthly_budget_usd": "10.00"}, format="json")
    assert answer.status_code == 200 and answer.json()["state"] == "ok"
    assert events(online, "set_budget").get().actor == staff

    # 85 %: the next heartbeat batch warns the user and staff, once.
    spend_up_to(online, "8.50", 1)
    assert run_sweep(sprite_ids=[online.pk], force=True).woke == 1
    assert as_user(alice).get(f"{url}/status").json()["budget"]["state"] == "warned"
    run_sweep(sprite_ids=[online.pk], force=True)  # still 85 %: no second warning
    assert Notification.objects.filter(kind="budget_warning").count() == 1
    assert events(online, "budget_warning").count() == 1
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com", "ops@example.com"]
    assert "85.0% of the monthly budget" in mail.outbox[0].subject

    # 100 %: slept. Not woken, gateway stopped, a start refused with a clear code.
    spend_up_to(online, "10.20", 2)
    run_sweep(sprite_ids=[online.pk], force=True)
    online.refresh_from_db()
    assert online.status == "over_budget"
    assert emulator.service(online.sprite_name, GATEWAY).status == "stopped"
    assert events(online, "over_budget").count() == 1 and events(online, "budget_stop").get().outcome == "ok"
    assert Notification.objects.filter(kind="budget_over").count() == 1
    assert run_sweep(sprite_ids=[online.pk], force=True).due == 0
    refused = as_user(alice).post(f"{url}/start")
    assert refused.status_code == 402 and refused.json()["code"] == "over_budget"
    status = as_user(alice).get(f"{url}/status").json()
    assert status["status"] == "over_budget" and status["budget"]["state"] == "over"
    assert status["budget"]["percent"] == "102.0"

    # Staff raise the budget: the gateway runs again, the sprite is online and woken again.
    answer = as_user(staff).put(f"{url}/budget", {"monthly_budget_usd": "20"}, format="json")
    assert answer.json()["state"] == "ok"
    online.refresh_from_db()
    assert online.status == "online"
    assert emulator.service(online.sprite_name, GATEWAY).status == "running"
    assert events(online, "budget_restore").get().outcome == "ok"
    assert run_sweep(sprite_ids=[online.pk], force=True).woke == 1
    assert Notification.objects.filter(kind__startswith="budget").count() == 2  # one warning, one over


def test_it_restores_when_the_month_rolls_over(online, emulator):
    online.monthly_budget_usd = Decimal("1")
    online.save(update_fields=["monthly_budget_usd"])
    spend_up_to(online, "1.50", 1)
    assert budgets.enforce().suspended == 1
    online.refresh_from_db()
    assert online.status == "over_budget"

    first_of_next = (budget.month_start() + timedelta(days=32)).replace(day=1, hour=0, minute=5)
    with time_machine.travel(first_of_next, tick=True):
        assert budgets.enforce().restored == 1
    online.refresh_from_db()
    assert online.status == "online"
    assert emulator.service(online.sprite_name, GATEWAY).status == "running"


def test_the_fleet_cap_suspends_every_users_sprite(online, settings):
    other = make_sprite("claw-other", status=UserSprite.Status.SLEEPING)
    settings.FLEET_MONTHLY_CAP_USD = Decimal("2")
    spend_up_to(other, "2.10", 1)  # someone else's spend: the fleet's cap, not alice's budget

    with pytest.raises(SpriteActionError) as refused:
        services.start_sprite(sprite=online)
    assert refused.value.code == "over_budget"
    acted = budgets.enforce()
    assert acted.suspended == 2
    assert set(UserSprite.objects.values_list("status", flat=True)) == {"over_budget"}
    assert Notification.objects.get(kind="fleet_over").data["state"] == "over"
    budgets.enforce()
    assert Notification.objects.filter(kind="fleet_over").count() == 1


def test_a_failed_stop_or_restart_leaves_its_error_and_the_next_sweep_retries_it(online, emulator, settings):
    online.monthly_budget_usd = Decimal("0.5")
    online.save(update_fields=["monthly_budget_usd"])
    spend_up_to(online, "0.60", 1)
    emulator.set_faults(fault_rate=1.0)  # every Sprites call fails: the stop task fails
    budgets.enforce()
    online.refresh_from_db()
    assert online.status == "over_budget"  # the heartbeat skips it even though the stop failed
    assert online.last_error.startswith("budget_stop: ")
    budgets.enforce()  # still failing: still the error
    emulator.set_faults(fault_rate=0.0)
    budgets.enforce()  # the next sweep's check stops it, and the error goes
    online.refresh_from_db()
    assert online.status == "over_budget" and online.last_error == ""
    assert emulator.service(online.sprite_name, GATEWAY).status == "stopped"
    assert events(online, "budget_stop").filter(outcome="ok").count() == 1

    emulator.set_faults(fault_rate=1.0)
    online.monthly_budget_usd = Decimal("5")  # room again, but the restart fails: still over_budget
    online.save(update_fields=["monthly_budget_usd"])
    assert budgets.enforce().restored == 1
    online.refresh_from_db()
    assert online.status == "over_budget" and online.last_error.startswith("budget_restore: ")
    emulator.set_faults(fault_rate=0.0)
    budgets.enforce()  # the next sweep's check tries again
    online.refresh_from_db()
    assert online.status == "online" and online.last_error == ""


def test_the_figures(alice, settings):
    settings.SPRITE_MONTHLY_BUDGET_USD = Decimal("20")
    settings.BUDGET_WARN_PERCENT = 80
    sprite = make_sprite("claw-figures", user=alice)
    assert budgets.monthly_budget_for(sprite) == Decimal("20")
    sprite.monthly_budget_usd = Decimal("5")
    assert budgets.monthly_budget_for(sprite) == Decimal("5")
    # Destroyed sprites' spend this month still counts for the user.
    old = make_sprite("claw-old", user=alice, status=UserSprite.Status.DESTROYED)
    billing.record_usage([usage(old, started_at=timezone.now() - timedelta(minutes=1), cost="4")])
    state = budget.budget_of(sprite)
    assert (state.spent_usd, state.percent, state.state) == (Decimal("4"), Decimal("80.0"), "warned")
    assert budget.Budget(None, Decimal("99")).as_dict() == {
        "monthly_budget_usd": None, "spent_month_usd": "99.00", "percent": None, "state": "ok"}
    assert budget.Budget(Decimal("0"), Decimal("0")).state == "over"


def test_only_staff_set_a_budget_and_bad_amounts_are_clear_errors(online, alice, bob, staff):
    url = f"/api/sprites/{online.public_id}/budget"
    assert as_user(alice).get(url).json()["state"] == "ok"
    assert as_user(bob).get(url).status_code == 404
    mine = as_user(alice).put(url, {"monthly_budget_usd": "100"}, format="json")
    assert mine.status_code == 403 and mine.json()["code"] == "permission_denied"
    assert as_user(bob).put(url, {"monthly_budget_usd": "100"}, format="json").status_code == 404
    for bad in ("-1", "abc", "1.234", {"x": 1}):
        answer = as_user(staff).put(url, {"monthly_budget_usd": bad}, format="json")
        assert answer.status_code == 400 and answer.json()["code"] == "invalid", bad
    assert as_user(staff).put(url, {}, format="json").status_code == 400
    back = as_user(staff).put(url, {"monthly_budget_usd": None}, format="json")
    assert back.status_code == 200 and back.json()["monthly_budget_usd"] is None
    with pytest.raises(SpriteActionError) as refused:
        budgets.set_budget(sprite=online, amount="1e400", actor=staff)
    assert refused.value.code == "invalid_budget"


def test_the_sweeps_check_costs_the_same_few_queries_for_5_or_50_paused_users(settings, django_assert_num_queries,
                                                                                task_queue):
    settings.SPRITE_MONTHLY_BUDGET_USD = Decimal("1")  # the stop tasks wait in the queue: no Sprites here

    def pause(n: int, first: int) -> None:
        for i in range(first, first + n):
            sprite = make_sprite(f"claw-{i}", status=UserSprite.Status.SLEEPING)
            billing.record_usage([usage(sprite, started_at=timezone.now(), cost="2")])
        budgets.enforce()  # paused, told once (their notices are written now)

    pause(5, 0)
    with django_assert_num_queries(4):  # ids, the rows, their spend, the notices sent (no fleet cap: none)
        assert str(budgets.enforce()) == ""
    pause(45, 5)
    with django_assert_num_queries(4):
        assert str(budgets.enforce()) == ""
    assert UserSprite.objects.filter(status="over_budget").count() == 50
    assert Notification.objects.filter(kind="budget_over").count() == 50
    assert task_queue.rows().filter(task_path__endswith="run_sprite_action").count() == 50  # one stop each
