"""The soak of issue 14 at a small size: it runs the windows, prints every figure beside its
target, and deletes what it made. (`make soak` runs it at full size with a killed sweeper.)"""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from heartbeat.models import HeartbeatRun
from sprites.models import ReconcileRun, UsageRecord, UserSprite

pytestmark = pytest.mark.django_db


def test_it_refuses_a_database_not_named_for_benchmarks(monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "NAME", "clawdirector")
    with pytest.raises(CommandError, match="Refusing to benchmark"):
        call_command("bench_soak", "--sprites", "1")


def test_it_soaks_a_small_fleet_and_meets_every_target():
    out = StringIO()
    call_command("bench_soak", "--sprites", "40", "--windows", "2", "--orphans", "2", "--broken-rate", "0.1",
                 "--concurrency", "8", "--exec-seconds", "0.05", "--no-kill", "--idle-seconds", "1", "--yes-wipe", stdout=out)
    text = out.getvalue()
    assert "window 1: woke" in text and "window 4 (faults off): woke 40/40" in text
    for label in ("ledger vs meter", "ledger rows duplicated", "recorded wakes with no ledger row",
                  "broken gateways healed or alerted", "orphans left", "late with no reason",
                  "woken twice in a window"):
        assert label in text
    # At this size every heal overlaps the heartbeat's own idle tail (a 1 s tail, a sweep under
    # a second), so the ledger's "within 1 %" is a figure of the full soak only (make soak).
    missed = [line for line in text.splitlines() if "MISSED" in line and not line.startswith("ledger vs meter")]
    assert missed == [], text
    assert not UserSprite.objects.exists() and not UsageRecord.objects.exists()
    assert not HeartbeatRun.objects.exists() and not ReconcileRun.objects.exists()
