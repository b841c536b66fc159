"""The console's projection: a fresh fleet on the default schedule shows what the schedule
costs (not its age-extrapolated cost to date), and the what-if page beside today's."""

import re
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model

from sprites import services

CHANGELIST = "/admin/sprites/usersprite/"
WHAT_IF = "/admin/sprites/usersprite/what-if/"


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def schedule_arithmetic() -> Decimal:
    """The default schedule by hand: wakes a month × (the guide's 2-minute turn + the idle
    tail) × the active rate, + 10 GB by the hour."""
    s = django_settings
    wakes = Decimal(730 * 60) / s.HEARTBEAT_INTERVAL_MINUTES
    compute = wakes * (s.COST_DEFAULT_TURN_SECONDS + s.SPRITE_IDLE_SECONDS) * s.SPRITE_ACTIVE_USD_PER_HOUR / 3600
    return compute + 730 * s.SPRITE_STORAGE_USD_PER_GB_HOUR * s.SPRITE_STORAGE_GB


def figure(html: str, name: str) -> Decimal:
    return Decimal(re.search(rf'data-fleet="{name}">\$([0-9,.]+)<', html).group(1).replace(",", ""))


def test_a_fresh_fleet_on_the_default_schedule_shows_the_schedules_cost(db, emulator, admin_client):
    """The issue's operator with 5 fresh sprites saw $0.09 per user per month."""
    services.fill_pool(target=5)
    for i in range(5):
        sprite, outcome = services.provision_sprite(user=get_user_model().objects.create_user(f"new-{i}"))
        assert outcome == "ready" and sprite.total_cost_usd > 0  # set-up and provisioning billed

    html = admin_client.get(CHANGELIST).content.decode()

    expected = schedule_arithmetic()  # $24.09
    per_user = figure(html, "per-user")
    assert abs(per_user - expected) <= expected / 10, (per_user, expected)
    assert abs(figure(html, "projected") - 5 * expected) <= expected / 2


def test_the_what_if_page_shows_the_projection_beside_todays(db, admin_client):
    from tests.conftest import make_sprite

    make_sprite("claw-a", status="online")
    html = admin_client.get(WHAT_IF, {"interval": "30", "idle": "15", "pool": "5"}).content.decode()
    cells = dict(re.findall(r'<th>Per user / month</th><td data-what-if="today">([^<]+)</td>'
                            r'<td data-what-if="other">([^<]+)</td>', html))
    assert cells == {"$24.09": "$12.05"}
    assert 'name="interval" id="id_interval" value="30"' in html


def test_the_what_if_page_explains_a_bad_value_instead_of_failing(db, admin_client):
    response = admin_client.get(WHAT_IF, {"interval": "0"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "interval must be a whole number between 1 and 1440." in html
    assert 'data-what-if="other"' not in html


def test_the_what_if_page_is_for_staff_only(db, client, alice):
    client.force_login(alice)
    assert client.get(WHAT_IF).status_code == 302  # to the admin login
