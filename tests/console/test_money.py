"""The ledger per user and month as CSV (admin link and API) with totals equal to the console's,
and the budget on the sprite page: shown, and set by staff through the form (logged)."""

import csv
import io
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from sprites import selectors
from sprites.billing import record_usage
from sprites.models import LifecycleEvent, UserSprite
from tests.conftest import make_sprite, usage

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=dt_timezone.utc)
CHANGELIST = "/admin/sprites/usersprite/"


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def ledger(alice, bob):
    """alice: a destroyed sprite and her live one, rows this month and last; bob: his own."""
    old = make_sprite("claw-alice-old", user=alice, status=UserSprite.Status.DESTROYED)
    live = make_sprite("claw-alice", user=alice, status=UserSprite.Status.ONLINE)
    other = make_sprite("claw-bob", user=bob, status=UserSprite.Status.ONLINE)
    rows = [
        usage(old, started_at=datetime(2026, 10, 31, 23, 59, 59, tzinfo=dt_timezone.utc), cost="5.00"),  # October
        usage(old, started_at=datetime(2026, 11, 1, 0, 0, tzinfo=dt_timezone.utc), cost="1.25000001",
              seconds="150"),
        usage(live, started_at=NOW - timedelta(hours=3), cost="0.00750000", seconds="150"),
        usage(live, started_at=NOW - timedelta(hours=2), cost="0.003", kind="storage", cause="storage"),
        usage(live, started_at=NOW - timedelta(hours=1), cost="0.0042", kind="llm"),
        usage(other, started_at=NOW - timedelta(hours=1), cost="9.99"),
    ]
    record_usage(rows)
    return live


def parse(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def console_month_total(user) -> Decimal:
    """What the console's "This month" column shows for the user's sprites, added up."""
    rows = selectors.annotate_costs(UserSprite.objects.filter(user=user))
    return sum((row.cost_month_usd for row in rows), Decimal("0"))


def test_the_api_csv_totals_equal_the_consoles(ledger, alice):
    client = APIClient()
    client.force_authenticate(alice)
    response = client.get(f"/api/sprites/{ledger.public_id}/ledger?month=2026-11")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="ledger-alice-2026-11.csv"'
    rows = parse(response.content.decode())
    *lines, total = rows
    assert [r["sprite"] for r in lines] == ["claw-alice-old", "claw-alice", "claw-alice", "claw-alice"]
    assert total["started_at"] == "total"
    assert Decimal(total["cost_usd"]) == sum(Decimal(r["cost_usd"]) for r in lines) == Decimal("1.26470001")
    assert Decimal(total["cost_usd"]) == console_month_total(alice)
    assert Decimal(response["X-Total-Cost-USD"]) == console_month_total(alice)
    assert Decimal(total["seconds"]) == Decimal("300")
    october = parse(client.get(f"/api/sprites/{ledger.public_id}/ledger?month=2026-10").content.decode())
    assert [r["cost_usd"] for r in october] == ["5.00000000", "5.00000000"]  # the row, and the total
    assert parse(client.get(f"/api/sprites/{ledger.public_id}/ledger").content.decode())[-1] == total  # default


def test_the_api_csv_is_the_owners_or_staffs_and_a_bad_month_is_json(ledger, alice, bob, staff):
    client = APIClient()
    client.force_authenticate(bob)
    assert client.get(f"/api/sprites/{ledger.public_id}/ledger").status_code == 404
    client.force_authenticate(staff)
    assert client.get(f"/api/sprites/{ledger.public_id}/ledger", HTTP_ACCEPT="text/csv").status_code == 200
    for bad in ("2026-13", "26-11", "2026-11-01", "x"):
        answer = client.get(f"/api/sprites/{ledger.public_id}/ledger", {"month": bad})
        assert answer.status_code == 400 and answer.json()["code"] == "invalid", bad
    assert APIClient().get(f"/api/sprites/{ledger.public_id}/ledger").status_code == 401


def test_the_admin_links_the_csv_of_this_month_and_the_last(client, staff, ledger, alice):
    client.force_login(staff)
    page = client.get(f"{CHANGELIST}{ledger.pk}/change/").content.decode()
    link = f"{CHANGELIST}{ledger.pk}/ledger.csv"
    assert f'href="{link}?month=2026-11"' in page and f'href="{link}?month=2026-10"' in page
    response = client.get(f"{link}?month=2026-11")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert Decimal(parse(response.content.decode())[-1]["cost_usd"]) == console_month_total(alice)
    assert client.get(f"{link}?month=nope").status_code == 400


def test_staff_set_the_budget_in_the_admin_and_it_is_logged(client, staff, ledger, settings):
    settings.SPRITE_MONTHLY_BUDGET_USD = Decimal("20")
    client.force_login(staff)
    page = client.get(f"{CHANGELIST}{ledger.pk}/change/").content.decode()
    assert "$20.00 (default): $1.26 spent this month, 6.3%" in page

    form = client.get(f"{CHANGELIST}{ledger.pk}/budget/")
    assert form.status_code == 200 and "Monthly budget (USD)" in form.content.decode()
    assert client.post(f"{CHANGELIST}{ledger.pk}/budget/", {"monthly_budget_usd": "-3"}).status_code == 200
    response = client.post(f"{CHANGELIST}{ledger.pk}/budget/", {"monthly_budget_usd": "1.50"})
    assert response.status_code == 302
    ledger.refresh_from_db()
    assert ledger.monthly_budget_usd == Decimal("1.50")
    event = LifecycleEvent.objects.get(action="set_budget")
    assert (event.actor, event.actor_kind, event.detail) == (staff, "staff", "monthly budget default -> $1.50")
    page = client.get(f"{CHANGELIST}{ledger.pk}/change/").content.decode()
    assert 'class="sprite-budget-warned"' in page  # 84.3 % of $1.50


def test_staff_who_may_only_view_cannot_set_a_budget(client, ledger):
    helper = get_user_model().objects.create_user("helper", "h@example.com", "pw-123456789", is_staff=True)
    helper.user_permissions.add(Permission.objects.get(codename="view_usersprite"))
    client.force_login(helper)
    assert client.post(f"{CHANGELIST}{ledger.pk}/budget/", {"monthly_budget_usd": "100"}).status_code == 403
    assert client.get(f"{CHANGELIST}{ledger.pk}/ledger.csv").status_code == 200  # viewing is reading


def test_the_notifications_are_listed_read_only(client, staff, ledger):
    from sprites import notify

    notify.capacity_warning(name="pool", detail="empty")
    client.force_login(staff)
    page = client.get("/admin/sprites/notification/")
    assert page.status_code == 200 and "Capacity warning: pool" in page.content.decode()
    assert client.get("/admin/sprites/notification/add/").status_code == 403
