"""Sweeps running at once against one PostgreSQL: every due sprite woken once, billed once.

Real row locks and SKIP LOCKED need a real server: these tests skip on SQLite (the CI runs
the suite on PostgreSQL).
"""

import threading
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from heartbeat.models import HeartbeatRun
from heartbeat.sweep import run_sweep
from sprites.models import UsageRecord, UserSprite
from tests.conftest import make_sprite

from .conftest import agent_json, answer_exec, exec_body

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL row locks (FOR UPDATE SKIP LOCKED); run with DATABASE_URL=postgres://…")


def run_at_once(n, **kwargs):
    barrier = threading.Barrier(n)
    runs, errors = [], []

    def one():
        try:
            barrier.wait()
            runs.append(run_sweep(**kwargs))
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=one) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return runs


def test_it_wakes_and_bills_each_due_sprite_once_with_three_sweeps_at_once(mocked):
    sprites = [make_sprite(f"c{i:02d}") for i in range(60)]
    # Three whole hours of storage are owed too, and all three sweeps will try to bill them.
    UserSprite.objects.update(created_at=timezone.now() - timedelta(hours=3))
    calls = answer_exec(mocked, default=exec_body(agent_json(0.001)), delay=0.01)  # keeps them overlapping

    runs = run_at_once(3, concurrency=4)

    assert Counter(calls) == Counter({s.sprite_name: 1 for s in sprites})
    assert sum(run.woke for run in runs) == 60 and sum(run.failed for run in runs) == 0
    for sprite in UserSprite.objects.all():
        rows = UsageRecord.objects.filter(sprite=sprite)
        assert rows.filter(kind="active").count() == 1
        assert rows.filter(kind="llm").count() == 1
        assert rows.filter(kind="storage").count() == 3
        assert sprite.total_cost_usd == rows.aggregate(s=Sum("cost_usd"))["s"]
        assert sprite.total_runtime_seconds == rows.filter(kind="active").aggregate(s=Sum("seconds"))["s"]
        assert sprite.heartbeat_lease_until is None
    billed = sum((run.billed_usd for run in runs), Decimal("0"))
    ledger = UsageRecord.objects.exclude(kind="llm").aggregate(s=Sum("cost_usd"))["s"]
    assert billed == ledger  # each run reports exactly the rows it wrote
    assert HeartbeatRun.objects.filter(finished_at__isnull=False).count() == 3


def test_it_never_double_wakes_a_sprite_forced_by_two_staff_at_once(mocked):
    sprite = make_sprite("forced")
    # The turn lasts long enough that both runs claim while it is in flight (on a loaded machine
    # the second thread could otherwise start after the first run finished: a legitimate second
    # "run now", not the race this test is about).
    calls = answer_exec(mocked, delay=1.0)

    runs = run_at_once(2, trigger="staff", sprite_ids=[sprite.pk], force=True)

    assert calls == ["forced"]
    assert sorted(run.woke for run in runs) == [0, 1]
