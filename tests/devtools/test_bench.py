"""The benchmark commands: they refuse a real database, measure, and clean up after themselves;
and a production install does not have them."""

import json
import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

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
    assert "(target within 1% from 1,000 sprites)" in text  # a fleet's target, not a dozen sprites
    assert not UserSprite.objects.exists() and not UsageRecord.objects.exists()
    assert not HeartbeatRun.objects.exists() and not get_user_model().objects.exists()


def test_under_a_running_cap_it_wakes_each_sprite_once_and_never_past_the_cap():
    out = StringIO()
    call_command("bench_heartbeat", "--sprites", "8", "--running-limit", "2", "--latency-ms", "5",
                 "--exec-seconds", "0.05", "--idle-seconds", "1", "--yes-wipe", stdout=out)

    text = out.getvalue()
    assert "woken exactly once         8 of 8  (never: 0, twice or more: 0)  ok" in text
    assert "running cap                2   peak running 2  ok" in text
    assert "measured occupancy ÷ cap 2" in text
    assert not UserSprite.objects.exists() and not HeartbeatRun.objects.exists()


def test_it_refuses_to_bench_the_console_on_a_database_that_is_not_scratch(monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "NAME", "clawdirector")

    with pytest.raises(CommandError, match="scratch"):
        call_command("bench_admin", "--sprites", "3")


@pytest.mark.django_db(transaction=True)
def test_it_benches_the_changelist_and_prints_median_and_queries():
    out = StringIO()

    call_command("bench_admin", "--sprites", "40", "--days", "3", "--runs", "3", "--yes-wipe", stdout=out)

    text = out.getvalue()
    assert re.search(r"median [\d.]+ ms", text)
    assert re.search(r"\d+ queries", text)
    assert json.loads(text.strip().splitlines()[-1])["sprites"] == 40
    assert not UserSprite.objects.exists()  # the next benchmark on the database must not sweep its fleet


def test_a_production_install_lists_no_bench_command():
    """DEBUG off and no DEVTOOLS: `manage.py help` has nothing that can wipe the ledger."""
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("DEVTOOLS", "DEBUG", "DJANGO_SETTINGS_MODULE")}
    env.update(DEBUG="0", SECRET_KEY="x" * 50, DATABASE_URL="sqlite:///:memory:")
    out = subprocess.run([sys.executable, "manage.py", "help"], cwd=root, env=env, capture_output=True, text=True,
                         check=True).stdout
    assert "heartbeat" in out and "fill_pool" in out
    for command in ("bench_admin", "bench_heartbeat", "bench_provision", "bootstrap_demo", "sprites_emulator"):
        assert command not in out
