"""The changelist's live endpoint: the asked rows' cells and the summary, in constant queries,
bad ids refused with a JSON error, for staff only."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sprites.models import UserSprite

from .conftest import LIVE, make_sprite


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
