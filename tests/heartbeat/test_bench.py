"""The benchmark command: refuses a real database, measures, and cleans up after itself."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from heartbeat.models import HeartbeatRun
from sprites.models import UsageRecord, UserSprite

pytestmark = pytest.mark.django_db


def test_it_refuses_a_database_not_named_for_benchmarks(monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "NAME", "clawdirector")
    with pytest.raises(CommandError, match="Refusing to benchmark on database 'clawdirector'"):
        call_command("bench_heartbeat", "--sprites", "1")


def test_it_measures_a_small_sweep_and_deletes_what_it_made():
    out = StringIO()
    call_command("bench_heartbeat", "--sprites", "12", "--concurrency", "4", "--latency-ms", "5",
                 "--exec-seconds", "0.05", "--idle-seconds", "1", "--yes-wipe", stdout=out)

    text = out.getvalue()
    assert "woke 12, skipped 0, failed 0" in text
    for label in ("wall time", "ideal time", "efficiency", "per sprite", "ledger active", "emulator meter", "difference"):
        assert label in text
    assert not UserSprite.objects.exists() and not UsageRecord.objects.exists()
    assert not HeartbeatRun.objects.exists() and not get_user_model().objects.exists()
