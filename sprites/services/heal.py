"""Heal (issue 14): a sprite whose gateway failed its end-to-end check is first restarted,
then restored from its last known-good checkpoint, then left alone with an alert.

The ladder is `heal_attempts` on the row (0: restart next; 1: restore next; 2: alert), reset
by any good check. Each rung is a lifecycle event (`heal_restart`, `heal_restore`,
`heal_alert`) and its wake is billed. A restore never goes back to the golden image by
itself: that replaces the user's data, so only staff do it (`restore_golden`, a confirmed
console action). The sweep runs `heal_fleet` as a side job, HEAL_PER_SWEEP sprites at most;
the Sprites calls and the waits run on threads, every query on the caller's thread.
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, F
from django.utils import timezone

from sprites import billing, modelaccess, notify, openclaw
from sprites.client import CheckpointDeleteUnsupported, SpritesConflict, SpritesError, get_client
from sprites.models import KnownGoodCheckpoint, LifecycleEvent, UsageRecord, UserSprite

from .errors import SpriteActionError, check_stream
from .events import log_event
from .verify import check_end_to_end, verify_sprite

logger = logging.getLogger(__name__)

HEAL_THREADS = 8
# Set for a day when the API kept a checkpoint it was asked to delete: the pruning, which
# runs every tick, then asks again tomorrow instead of twice a minute.
DELETE_REFUSED_KEY, DELETE_REFUSED_SECONDS = "heal:checkpoint-delete-refused", 24 * 3600
RESTART, RESTORE, ALERT = 0, 1, 2


@dataclass
class Rung:
    """One sprite's next step, planned on the caller's thread, acted on a worker thread."""

    sprite: UserSprite
    step: int
    checkpoint: str = ""  # RESTORE: the known-good checkpoint
    config: bytes = b""  # RESTORE: the config to write back, with the sprite's current token
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str = ""  # what the Sprites calls or the check said; "" = healed


def alert(sprite: UserSprite, message: str) -> LifecycleEvent:
    """Tell a person: a log line at ERROR, a `heal_alert` event and a notification (staff's
    email and/or webhook, once a day per sprite). The heal stops retrying this sprite until a
    good check or staff act."""
    logger.error("Sprite %s needs a person: %s", sprite.sprite_name, message)
    notify.heal_alert(sprite, message)
    UserSprite.objects.filter(pk=sprite.pk).update(heal_alerted_at=timezone.now())
    return log_event(sprite=sprite, action="heal_alert", outcome=LifecycleEvent.Outcome.FAILED, detail=message)


def failing():
    """Users' sprites in service whose last check failed and that nobody gave up on."""
    return (UserSprite.objects.filter(user__isnull=False, status__in=UserSprite.FOLLOWS_VM, gateway_failures__gt=0,
                                      heal_alerted_at__isnull=True)
            .exclude(sprite_url="").order_by("gateway_failed_at", "pk"))


def heal_fleet(*, limit: int | None = None) -> str:
    """One rung of the ladder for each failing sprite (at most `limit`, HEAL_PER_SWEEP by
    default), and the pruning of old known-good checkpoints. Returns a summary line."""
    rungs = [_plan(sprite) for sprite in failing()[:settings.HEAL_PER_SWEEP if limit is None else limit]]
    acting = [r for r in rungs if r.step in (RESTART, RESTORE)]
    if acting:
        with ThreadPoolExecutor(max_workers=min(HEAL_THREADS, len(acting)), thread_name_prefix="heal") as pool:
            list(pool.map(_act, acting))
    healed = sum(_record(r) for r in rungs)
    pruned = prune_known_good()
    parts = [f"{healed} healed of {len(rungs)}"] if rungs else []
    if pruned:
        parts.append(f"{pruned} old checkpoint(s) deleted")
    return ", ".join(parts)


def _plan(sprite: UserSprite) -> Rung:
    step = min(sprite.heal_attempts, ALERT)
    rung = Rung(sprite=sprite, step=step)
    if step == RESTORE:
        last = KnownGoodCheckpoint.objects.filter(sprite=sprite, deleted_at__isnull=True).first()
        if last is None:
            rung.step = ALERT
            rung.error = ("no known-good checkpoint to restore; the golden image would replace the user's data, "
                          "so staff must confirm it")
        else:
            rung.checkpoint = last.checkpoint_id
            rung.config = openclaw.render_config(token=sprite.gateway_token, sprite_url=sprite.sprite_url,
                                                 model=modelaccess.credential_for(sprite))
    return rung


def _act(rung: Rung) -> None:
    """HTTP only, no query (it runs on a worker thread): restart, or restore and start; then
    wait for the gateway."""
    rung.started_at = timezone.now()
    name, client = rung.sprite.sprite_name, get_client()
    try:
        if rung.step == RESTART:
            _restart(client, name)
        else:
            client.restore_checkpoint(name, rung.checkpoint)
            client.write_file(name, openclaw.CONFIG_PATH, rung.config, mode="0600")
            check_stream(client.put_service(name, openclaw.GATEWAY_SERVICE,
                                            **openclaw.gateway_service(rung.sprite.gateway_token)),
                         "Starting the gateway service")
        rung.error = check_end_to_end(rung.sprite.sprite_url, rung.sprite.gateway_token,
                                      wait=settings.GATEWAY_VERIFY_WAIT_SECONDS)
    except (SpritesError, SpriteActionError) as exc:
        rung.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - one sprite must never stop the others
        rung.error = f"{type(exc).__name__} while healing"
        logger.exception("Healing %s raised", name)
    finally:
        rung.ended_at = timezone.now()


def _restart(client, name: str) -> None:
    """Stop (a crashed service is not running: nothing to stop), then start: a fresh process."""
    try:
        client.stop_service(name, openclaw.GATEWAY_SERVICE)
    except SpritesConflict:
        pass
    check_stream(client.start_service(name, openclaw.GATEWAY_SERVICE, duration=openclaw.SERVICE_STREAM_DURATION),
                 "Restarting the gateway service")


def _record(rung: Rung) -> bool:
    """The caller's thread: the event, the check, the ladder, the bill. True if healed."""
    sprite = rung.sprite
    if rung.step == ALERT:
        attempts = "restarted and restored" if sprite.heal_attempts >= ALERT else "restarted"
        alert(sprite, rung.error or f"gateway still failing after it was {attempts}: {sprite.gateway_error}")
        return False
    action = "heal_restart" if rung.step == RESTART else "heal_restore"
    what = "restarted the gateway" if rung.step == RESTART else f"restored known-good checkpoint {rung.checkpoint}"
    _bill(rung, cause=UsageRecord.Cause.HEARTBEAT, tag=action)
    now = timezone.now()
    UserSprite.objects.record_gateway_checks({sprite.pk: rung.error}, now)
    if rung.error:
        UserSprite.objects.filter(pk=sprite.pk).update(heal_attempts=F("heal_attempts") + 1)
    duration = int((rung.ended_at - rung.started_at).total_seconds() * 1000)
    log_event(sprite=sprite, action=action, outcome=LifecycleEvent.Outcome.FAILED if rung.error else "ok",
              detail=f"{what}: {rung.error}" if rung.error else f"{what}: the gateway answers again",
              duration_ms=duration)
    return not rung.error


def _bill(rung: Rung, *, cause: str, tag: str) -> None:
    """The wake a heal step caused: its own wall time plus the idle tail, from when the running
    already billed ends: a heal right after a heartbeat runs inside that wake's idle tail, which
    is paid for, so only what the heal adds beyond it is billed (no running second twice)."""
    paid = billing.billed_until(rung.sprite.pk)
    start = max(rung.started_at, paid) if paid else rung.started_at
    wall = (rung.ended_at - start).total_seconds()  # negative when it ended inside the paid tail
    if wall + settings.SPRITE_IDLE_SECONDS <= 0:
        return  # its own idle tail ends before the running already paid for: it adds nothing
    billing.record_usage(billing.wake(sprite_id=rung.sprite.pk, cause=cause, tag=tag, started_at=start,
                                      wall_seconds=wall, detail={"action": tag, "step_started_at": rung.started_at.isoformat()}))


def prune_known_good(*, keep: int | None = None, limit: int = 200) -> int:
    """Delete known-good checkpoints beyond the last `keep` (HEAL_KEEP_CHECKPOINTS) per
    sprite, at the provider and on the row; at most `limit` per call. Returns how many."""
    keep = settings.HEAL_KEEP_CHECKPOINTS if keep is None else keep
    if cache.get(DELETE_REFUSED_KEY):
        return 0
    over = (KnownGoodCheckpoint.objects.filter(deleted_at__isnull=True).values("sprite_id")
            .annotate(n=Count("pk")).filter(n__gt=keep).values_list("sprite_id", flat=True))
    deleted, client = 0, get_client()
    for sprite_id in list(over[:limit]):
        rows = KnownGoodCheckpoint.objects.filter(sprite_id=sprite_id, deleted_at__isnull=True).select_related("sprite")
        for row in rows[keep:]:
            if deleted >= limit:
                return deleted
            try:
                client.delete_checkpoint(row.sprite.sprite_name, row.checkpoint_id)
            except CheckpointDeleteUnsupported as exc:  # every further call would say the same
                cache.set(DELETE_REFUSED_KEY, True, DELETE_REFUSED_SECONDS)
                logger.warning("%s; old known-good checkpoints are kept (and bill storage); asking again in a day", exc)
                return deleted
            except SpritesError as exc:
                logger.warning("Deleting checkpoint %s failed: %s", row, exc)
                continue
            KnownGoodCheckpoint.objects.filter(pk=row.pk).update(deleted_at=timezone.now())
            deleted += 1
    return deleted


def restore_golden(*, sprite: UserSprite, actor) -> UserSprite:
    """Staff only, after confirming: restore the golden image (the user's data since set-up
    is lost), write the config with the sprite's token back and start the gateway."""
    if actor is None or not actor.is_staff:
        raise SpriteActionError("Only staff can restore the golden image.", code="permission_denied")
    if sprite.status not in UserSprite.IN_SERVICE or not sprite.golden_checkpoint_id:
        raise SpriteActionError(f"Cannot restore the golden image of a sprite that is {sprite.status}.")
    rung = Rung(sprite=sprite, step=RESTORE, checkpoint=sprite.golden_checkpoint_id,
                config=openclaw.render_config(token=sprite.gateway_token, sprite_url=sprite.sprite_url,
                                              model=modelaccess.credential_for(sprite)))
    _act(rung)
    _bill(rung, cause=UsageRecord.Cause.STAFF, tag="restore_golden")
    error = verify_sprite(sprite) if not rung.error else rung.error
    log_event(sprite=sprite, action="restore_golden", actor=actor,
              outcome=LifecycleEvent.Outcome.FAILED if error else LifecycleEvent.Outcome.OK,
              detail=f"golden checkpoint {sprite.golden_checkpoint_id}: " + (error or "the gateway answers"))
    if error:
        raise SpriteActionError(f"Restored, but the gateway still fails: {error}")
    return sprite
