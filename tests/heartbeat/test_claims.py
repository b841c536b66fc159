"""The claim statement: never more rows than asked, whatever plan PostgreSQL picks."""

from datetime import timedelta

import pytest
from django.db import connection

from heartbeat import claims
from sprites.models import UserSprite
from tests.conftest import make_sprite

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("limit", [1, 2])
def test_a_claim_leases_at_most_its_limit_even_when_the_planner_picks_a_nested_loop(limit):
    if connection.vendor != "postgresql":
        pytest.skip("the plan that re-runs a sub-select is PostgreSQL's")
    for i in range(6):
        make_sprite(f"s{i}")
        if i == 1:
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE user_sprites")  # statistics that say "2 rows"
    with connection.cursor() as cursor:
        # The plan seen in a full suite run once the table's statistics said "2 rows": a nested
        # loop semi join that re-runs the pick for every outer row. Re-run, a LIMIT 1 FOR UPDATE
        # sub-select skips the rows this very UPDATE has just changed and returns the next one,
        # so every due row was leased. These knobs make the planner choose that plan here.
        for knob in ("enable_material", "enable_hashjoin", "enable_mergejoin", "enable_hashagg", "enable_sort", "jit"):
            cursor.execute(f"SET LOCAL {knob} = off")
    won = claims.claim(limit=limit, interval=timedelta(minutes=15), lease=timedelta(minutes=10))
    assert len(won) == limit
    assert UserSprite.objects.filter(heartbeat_lease_until__isnull=False).count() == limit
    # The rest are still there for the next claim, and a claim of everything gets exactly them.
    rest = claims.claim(limit=100, interval=timedelta(minutes=15), lease=timedelta(minutes=10))
    assert {t.pk for t in rest}.isdisjoint({t.pk for t in won}) and len(rest) == 6 - limit
