"""`GET /api/costs/projection` (staff) and the projection in a sprite's status."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from tests.conftest import make_sprite

URL = "/api/costs/projection"


@pytest.fixture
def as_staff(staff):
    client = APIClient()
    client.force_authenticate(staff)
    return client


def test_it_answers_the_fleets_projection_and_a_what_if_beside_it(db, as_staff):
    make_sprite("claw-a", status="online")
    make_sprite("claw-pool", user=None, status="ready")

    body = as_staff.get(URL, {"interval": "30", "idle": "15", "pool": "5"}).json()

    assert body["today"]["per_user_usd"] == "24.09"
    assert body["today"]["total_usd"] == "26.28"
    assert {k: body["today"][k] for k in ("heartbeat_usd", "user_usd", "storage_usd")} == {
        "heartbeat_usd": "21.90", "user_usd": "0.00", "storage_usd": "4.38"}
    assert body["today"]["users"] == 1 and body["today"]["pool"] == 1
    assert body["what_if"]["per_user_usd"] == "12.05"
    assert body["what_if"]["schedule"]["interval_minutes"] == "30"
    assert as_staff.get(URL).json()["what_if"] is None


@pytest.mark.parametrize("params, detail", [
    ({"interval": "-5"}, "interval must be a whole number between 1 and 1440."),
    ({"bogus": "1"}, "Unknown what-if key 'bogus'"),
])
def test_it_answers_a_bad_what_if_with_a_json_400(db, as_staff, params, detail):
    response = as_staff.get(URL, params)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_what_if"
    assert response.json()["detail"].startswith(detail)


def test_it_is_for_staff_only(db, alice):
    client = APIClient()
    assert client.get(URL).status_code in (401, 403)
    client.force_authenticate(alice)
    response = client.get(URL)
    assert response.status_code == 403 and response["Content-Type"].startswith("application/json")


def test_a_sprites_status_carries_its_projection_and_breakdown(db, alice):
    sprite = make_sprite("claw-alice", user=alice, status="online")
    client = APIClient()
    client.force_authenticate(alice)
    body = client.get(f"/api/sprites/{sprite.public_id}/status").json()
    assert Decimal(body["projected_monthly_cost_usd"]) == Decimal("24.09")
    assert body["projected_monthly"] == {"heartbeat_usd": "21.90", "user_usd": "0.00", "storage_usd": "2.19",
                                         "monthly_usd": "24.09"}
