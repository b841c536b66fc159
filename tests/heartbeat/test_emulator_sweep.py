"""End to end against the Sprites emulator over HTTP: real exec streams, timeouts, meter."""

from decimal import Decimal

import pytest
from django.db.models import Sum

from heartbeat.models import HeartbeatWake
from heartbeat.sweep import run_sweep
from sprites.client import get_client
from sprites.models import UsageRecord, UserSprite
from tests.conftest import make_sprite

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(emulator, settings):
    settings.SPRITE_IDLE_SECONDS = 1  # the fixture's emulator sleeps after 1 s
    client = get_client()
    sprites = []
    for name in ("e2e-a", "e2e-b", "e2e-c"):
        client.create_sprite(name)
        sprites.append(make_sprite(name))
    return sprites


def test_it_runs_the_turn_and_bills_close_to_the_emulators_meter(emulator, fleet):
    emulator.set_behavior("e2e-b", heartbeat_cost_usd=0.5)

    run = run_sweep(concurrency=3)

    assert (run.woke, run.failed) == (3, 0)
    assert UsageRecord.objects.get(sprite=fleet[1], kind="llm").cost_usd == Decimal("0.50000000")
    assert UsageRecord.objects.get(sprite=fleet[0], kind="llm").cost_usd == Decimal("0.00120000")
    meter = emulator.meter()["sprites"]
    for sprite in fleet:
        ledger = UsageRecord.objects.filter(sprite=sprite, kind="active").aggregate(s=Sum("seconds"))["s"]
        truth = Decimal(str(meter[sprite.sprite_name]["running_seconds_final"]))
        # Our wall time also holds the HTTP round trip; the idle tail dominates either way.
        assert abs(ledger - truth) < Decimal("0.2"), (sprite, ledger, truth)
    assert "HEARTBEAT_OK" in HeartbeatWake.objects.filter(sprite=fleet[0]).get().output_tail


def test_it_records_a_hung_turn_as_a_timeout_without_holding_the_others(emulator, fleet, settings):
    settings.HEARTBEAT_TIMEOUT_SECONDS = 1
    emulator.set_behavior("e2e-a", hang=True)

    run = run_sweep(concurrency=3)

    assert (run.woke, run.failed) == (2, 1)
    hung = HeartbeatWake.objects.get(sprite=fleet[0])
    assert hung.outcome == "timeout" and hung.exit_code == 124
    assert Decimal("0.9") < hung.duration_seconds < Decimal("3")
    others = HeartbeatWake.objects.exclude(sprite=fleet[0])
    assert all(w.duration_seconds < Decimal("0.9") for w in others)
    assert UserSprite.objects.get(pk=fleet[0].pk).last_heartbeat is None


def test_it_records_a_failed_turn_and_a_missing_sprite(emulator, fleet):
    emulator.set_behavior("e2e-b", heartbeat_exit_code=1)
    make_sprite("not-in-emulator")

    run = run_sweep()

    assert (run.woke, run.failed) == (2, 2)
    failed = HeartbeatWake.objects.get(sprite=fleet[1])
    assert failed.exit_code == 1 and "exit 1 (failed)" in failed.error
    missing = HeartbeatWake.objects.get(sprite__sprite_name="not-in-emulator")
    assert missing.exit_code is None and "Not found" in missing.error
    assert not UsageRecord.objects.filter(sprite__sprite_name="not-in-emulator").exists()


def test_it_times_out_a_silent_exec_even_without_a_timeout_wrapper(emulator, fleet, settings):
    settings.HEARTBEAT_COMMAND = "openclaw agent --agent {agent} --json"  # nothing bounds it in the sprite
    settings.HEARTBEAT_TIMEOUT_SECONDS = 1
    emulator.set_behavior("e2e-c", hang=True)

    run = run_sweep(concurrency=3)

    assert (run.woke, run.failed) == (2, 1)
    hung = HeartbeatWake.objects.get(sprite=fleet[2])
    assert hung.outcome == "timeout" and hung.exit_code is None
    assert Decimal("1.9") < hung.duration_seconds < Decimal("4")  # the 2 s read timeout, not a hang
    assert UsageRecord.objects.filter(sprite=fleet[2], kind="active").exists()  # it was awake
