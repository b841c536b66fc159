"""Verify after wake and heal, end to end on the emulator: the gateway checked through the
sprite URL after each heartbeat (results in the batch), known-good checkpoints, a crashed
gateway restarted, a corrupt one restored from its last known-good checkpoint, an alert
when nothing cures it, and the golden image only when staff say so."""

import time
from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from heartbeat.sweep import run_sweep
from sprites import services
from sprites.models import KnownGoodCheckpoint, LifecycleEvent, UsageRecord, UserSprite
from sprites.services.errors import SpriteActionError
from sprites.services.heal import heal_fleet, prune_known_good
from tests.conftest import assert_ledger_consistent

pytestmark = pytest.mark.django_db
GATEWAY = "openclaw-gateway"


@pytest.fixture
def online(emulator, settings, alice):
    """Alice's sprite from the warm pool, online; verification on with short waits."""
    settings.SPRITE_IDLE_SECONDS = 1
    settings.SPRITE_POOL_SIZE = 1
    settings.GATEWAY_VERIFY = True
    settings.GATEWAY_VERIFY_WAIT_SECONDS = 0.5
    services.fill_pool()
    settings.SPRITE_POOL_SIZE = 0
    sprite, how = services.provision_sprite(user=alice)
    assert how == "ready"
    return sprite


def asleep():
    time.sleep(1.1)  # past the emulator's idle window: the next request wakes the sprite


def sweep_again(sprite):
    """A new window for this sprite: it is due again."""
    UserSprite.objects.filter(pk=sprite.pk).update(last_heartbeat=None)
    return run_sweep(concurrency=2)


def events(sprite, action):
    return list(LifecycleEvent.objects.filter(sprite=sprite, action=action).order_by("created_at")
                .values_list("outcome", flat=True))


def test_a_verified_heartbeat_records_a_good_check_and_one_known_good_checkpoint_a_day(online, emulator):
    run = run_sweep(concurrency=2)
    assert run.woke == 1
    online.refresh_from_db()
    assert online.gateway_healthy is True and online.gateway_ok_at and online.gateway_failures == 0
    checkpoint = KnownGoodCheckpoint.objects.get(sprite=online)
    assert checkpoint.checkpoint_id in emulator.checkpoint_ids(online.sprite_name)
    assert online.known_good_at is not None

    sweep_again(online)
    assert KnownGoodCheckpoint.objects.filter(sprite=online).count() == 1  # not twice a day


def test_the_status_api_shows_the_health_history(online, client, alice, emulator):
    emulator.set_behavior(online.sprite_name, gateway_crash_on_wake=True, gateway_fails=True)
    asleep()
    run_sweep(concurrency=2)
    client.force_login(alice)
    health = client.get(f"/api/sprites/{online.public_id}/status").json()["gateway_health"]
    assert health["healthy"] is False and health["consecutive_failures"] == 2  # the check, then the restart's
    assert "exit code 78" in health["error"] and health["healing"] == "restarted"
    assert health["last_bad"] and health["last_good"] is None


def test_a_gateway_crashed_by_a_wake_is_restarted_in_the_same_sweep(online, emulator):
    emulator.set_behavior(online.sprite_name, gateway_crash_on_wake=True)
    asleep()
    run = run_sweep(concurrency=2)

    online.refresh_from_db()
    assert "heal: 1 healed of 1" in run.notes
    assert events(online, "heal_restart") == ["ok"]
    assert online.gateway_healthy is True and online.heal_attempts == 0
    assert emulator.service(online.sprite_name, GATEWAY).status == "running"
    heal = UsageRecord.objects.get(sprite=online, idempotency_key__contains=":heal_restart:")
    wake = UsageRecord.objects.get(sprite=online, kind="active", cause="heartbeat", idempotency_key__contains=":heartbeat:")
    assert heal.started_at >= wake.ended_at  # it ran in the wake's paid idle tail: only what it adds is billed
    assert heal.ended_at > wake.ended_at
    assert_ledger_consistent(online)


def test_a_corrupt_gateway_is_restarted_then_restored_from_its_last_known_good_checkpoint(online, emulator):
    run_sweep(concurrency=2)  # healthy: leaves a known-good checkpoint
    good = KnownGoodCheckpoint.objects.get(sprite=online).checkpoint_id
    token = UserSprite.objects.get(pk=online.pk).gateway_token
    emulator.set_behavior(online.sprite_name, gateway_corrupt_on_wake=True)
    asleep()

    sweep_again(online)  # the check fails; the restart cannot cure a corrupt config
    online.refresh_from_db()
    assert events(online, "heal_restart") == ["failed"] and online.heal_attempts == 1
    assert online.healing == "restarted"

    assert heal_fleet() == "1 healed of 1"
    online.refresh_from_db()
    restore = LifecycleEvent.objects.get(sprite=online, action="heal_restore")
    assert restore.outcome == "ok" and good in restore.detail
    assert online.gateway_healthy is True and online.heal_attempts == 0
    env = emulator.service_env(online.sprite_name, GATEWAY)
    assert env["OPENCLAW_GATEWAY_TOKEN"] == token  # the user's token survives the restore
    assert UsageRecord.objects.filter(sprite=online, idempotency_key__contains=":heal_restore:").aggregate(
        s=Sum("cost_usd"))["s"] > 0
    assert_ledger_consistent(online)


def test_without_a_known_good_checkpoint_it_alerts_and_leaves_the_golden_image_to_staff(online, emulator, staff):
    emulator.set_behavior(online.sprite_name, gateway_corrupt_on_wake=True)
    asleep()
    run_sweep(concurrency=2)  # broken from the first check: no known-good checkpoint was taken
    assert not KnownGoodCheckpoint.objects.exists()

    heal_fleet()  # the restore rung has nothing to restore: an alert, not the golden image
    online.refresh_from_db()
    alert = LifecycleEvent.objects.get(sprite=online, action="heal_alert")
    assert "staff must confirm" in alert.detail and online.healing == "needs_staff"
    from sprites.models import Notification
    note = Notification.objects.get(kind="heal_alert", sprite=online)  # staff are told (email/webhook)
    assert "needs a person" in note.subject and "staff must confirm" in note.body
    assert events(online, "heal_restore") == []
    assert heal_fleet() == ""  # it stopped retrying
    assert events(online, "heal_restart") == ["failed"]

    with pytest.raises(SpriteActionError):
        services.restore_golden(sprite=online, actor=online.user)
    services.restore_golden(sprite=online, actor=staff)
    online.refresh_from_db()
    assert online.gateway_healthy is True and online.healing == ""
    assert LifecycleEvent.objects.get(sprite=online, action="restore_golden").actor == staff


def test_a_checkpoint_that_fails_to_restore_ends_in_an_alert(online, emulator):
    run_sweep(concurrency=2)
    emulator.set_behavior(online.sprite_name, gateway_corrupt_on_wake=True, restore_fails=True)
    asleep()
    sweep_again(online)
    heal_fleet()
    online.refresh_from_db()
    restore = LifecycleEvent.objects.get(sprite=online, action="heal_restore")
    assert restore.outcome == "failed" and "restore failed" in restore.detail
    heal_fleet()
    assert events(online, "heal_alert") == ["failed"]
    assert heal_fleet() == ""


def test_it_keeps_the_last_n_known_good_checkpoints(online, emulator, settings):
    settings.HEAL_KEEP_CHECKPOINTS = 2
    for _ in range(3):
        sweep_again(online)
        UserSprite.objects.filter(pk=online.pk).update(known_good_at=timezone.now() - timedelta(days=2))
    rows = list(KnownGoodCheckpoint.objects.filter(sprite=online))
    assert len(rows) == 3
    assert prune_known_good() == 0  # the sweep's heal job already pruned the oldest
    kept = [r.checkpoint_id for r in rows if r.deleted_at is None]
    gone = [r.checkpoint_id for r in rows if r.deleted_at is not None]
    assert len(kept) == 2 and len(gone) == 1
    ids = emulator.checkpoint_ids(online.sprite_name)
    assert set(kept) <= set(ids) and gone[0] not in ids
    assert online.golden_checkpoint_id in ids  # never the golden one


def test_an_api_that_keeps_checkpoints_stops_the_pruning_and_counts_nothing_deleted(online, settings, monkeypatch,
                                                                                      caplog):
    """The delete route is unconfirmed (sprites-api.md): where the API keeps the checkpoint, the
    rows stay undeleted and one warning a day says why, instead of failed calls every tick."""
    from sprites.client import CheckpointDeleteUnsupported, SpritesClient

    calls = []

    def keeps(self, name, checkpoint_id):
        calls.append(checkpoint_id)
        raise CheckpointDeleteUnsupported(f"The Sprites API did not delete checkpoint {checkpoint_id}")

    monkeypatch.setattr(SpritesClient, "delete_checkpoint", keeps)
    for _ in range(3):
        sweep_again(online)
        UserSprite.objects.filter(pk=online.pk).update(known_good_at=timezone.now() - timedelta(days=2))
    settings.HEAL_KEEP_CHECKPOINTS = 1
    calls.clear()
    assert prune_known_good() == 0
    assert len(calls) == 1 and "old known-good checkpoints are kept" in caplog.text
    assert KnownGoodCheckpoint.objects.filter(sprite=online, deleted_at__isnull=True).count() == 3
    assert prune_known_good() == 0 and len(calls) == 1  # the next tick does not ask again (for a day)


def test_a_start_queues_a_check_of_the_gateway(online, emulator, monkeypatch):
    services.stop_sprite(sprite=online, actor=online.user)
    services.start_sprite(sprite=online, actor=online.user)  # the check runs in the (immediate) worker
    online.refresh_from_db()
    assert online.gateway_healthy is True

    asked = []

    def still_starting(url, **kwargs):
        asked.append((url, kwargs["wait"]))
        return "/startupz answered 503"

    monkeypatch.setattr("sprites.services.verify.check_gateway", still_starting)
    services.stop_sprite(sprite=online, actor=online.user)
    services.start_sprite(sprite=online, actor=online.user)
    online.refresh_from_db()
    assert asked == [(online.sprite_url, 0.5)]  # it waited GATEWAY_VERIFY_WAIT_SECONDS
    assert online.gateway_healthy is False and online.gateway_failures == 1
    event = LifecycleEvent.objects.get(sprite=online, action="verify")
    assert event.outcome == "failed" and event.detail == "after a start: /startupz answered 503"


def test_the_sweep_reconciles_on_schedule_with_the_safe_rules(emulator, settings):
    settings.RECONCILE_EVERY_MINUTES = 60
    emulator.make_orphan("claw-stranger", age_seconds=7200)
    run = run_sweep(concurrency=2)
    assert "reconcile: 1 orphan; applied" in run.notes
    assert emulator.exists("claw-stranger")  # destroying is not a safe rule by default
    assert "reconcile" not in run_sweep(concurrency=2).notes  # once an interval


def test_the_check_connects_with_the_users_token_and_a_gateway_that_lost_it_fails(online, emulator):
    """The check after a wake is end to end, as a browser: /startupz, then a WebSocket connect
    through the sprite URL with the user's gateway token (sprites.openclaw.connect)."""
    from sprites import openclaw
    from sprites.client import get_client

    run_sweep(concurrency=2)
    online.refresh_from_db()
    assert online.gateway_healthy is True
    # The gateway restarts with another token (a bad deploy, a half-done rotation): it still
    # answers /startupz, but the user's browser would be refused.
    get_client().put_service(online.sprite_name, GATEWAY, **openclaw.gateway_service("not-" + online.gateway_token))
    sweep_again(online)
    online.refresh_from_db()
    assert online.gateway_healthy is False
    assert online.gateway_error.endswith("WebSocket connect refused: AUTH_TOKEN_MISMATCH")
    assert online.gateway_token not in online.gateway_error
