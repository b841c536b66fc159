"""The sprites admin of the operator console (test_*.py here): the frozen clock, staff logged
in as `admin_client`, the console's usual sprite row, `bill` and the changelist's row order."""

import re
from datetime import datetime
from datetime import timezone as dt_timezone

import pytest
import time_machine

from sprites.billing import record_usage
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
