"""The one notifier: staff (email to ADMINS, a signed webhook) and, for their budget, the user.

`notify` writes one `Notification` row per event and period (its `key` is unique: the dedupe
lives in the database, so any number of sweeps, workers or probes noticing the same thing send
it once) and queues its delivery as a durable task (`delivery.deliver`, retried with backoff).
The events: budget crossings (sprites/services/budgets.py), a sprite entering `error`, a failed
or a missed heartbeat sweep, and `capacity_warning`, a hook anyone may call.

Bodies are for people and never hold a secret (no token, no key, no webhook URL).
"""

import logging
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from sprites.models import Notification, UserSprite
from sprites.notify.delivery import deliver

logger = logging.getLogger(__name__)
Kind = Notification.Kind


def notify(*, kind: str, key: str, subject: str, body: str = "", data: dict | None = None,
           sprite: UserSprite | None = None, user_email: str = "") -> Notification | None:
    """Record the event once per `key` and queue its delivery. None when `key` was already sent."""
    try:
        with transaction.atomic():
            note = Notification.objects.create(
                kind=kind, key=key[:200], subject=subject[:200], body=body, data=data or {}, sprite=sprite,
                user_email=user_email,
            )
    except IntegrityError:
        return None
    deliver.enqueue(notification_pk=note.pk)
    logger.info("Notification %s (%s) queued", note.pk, kind)
    return note


def _hour(at: datetime | None) -> str:
    return (at or timezone.now()).strftime("%Y-%m-%dT%H")


def sprite_error(sprite: UserSprite) -> Notification | None:
    """A sprite entered `error`: once a day per sprite."""
    day = timezone.now().strftime("%Y-%m-%d")
    owner = sprite.user.get_username() if sprite.user_id else "the pool"
    return notify(
        kind=Kind.SPRITE_ERROR, key=f"sprite-error:{sprite.pk}:{day}", sprite=sprite,
        subject=f"Sprite {sprite.sprite_name} is in error",
        body=f"Sprite {sprite.sprite_name} ({owner}) entered `error`.\nLast error: {sprite.last_error}",
        data={"sprite": sprite.sprite_name, "sprite_id": str(sprite.public_id), "last_error": sprite.last_error},
    )


def sweep_failed(*, run_id: int, summary: str, started_at: datetime) -> Notification | None:
    """A heartbeat sweep aborted or woke nothing it tried: once an hour."""
    return notify(
        kind=Kind.SWEEP_FAILED, key=f"sweep-failed:{_hour(started_at)}",
        subject="A heartbeat sweep failed",
        body=f"Heartbeat run {run_id} started {started_at:%Y-%m-%d %H:%M:%S} UTC failed.\n\n{summary}",
        data={"run": run_id, "started_at": started_at.isoformat()},
    )


def sweep_missed(*, last_started: datetime | None, detail: str) -> Notification | None:
    """No scheduled sweep for too long (the `/readyz` rule): once per gap, i.e. per last sweep seen."""
    since = last_started.isoformat() if last_started else "never"
    return notify(
        kind=Kind.SWEEP_MISSED, key=f"sweep-missed:{since}", subject="Heartbeat sweeps have stopped",
        body=f"No scheduled heartbeat sweep is running: {detail}. Check the cron job or timer "
             "(docs/operations.md).",
        data={"last_started": None if last_started is None else since, "detail": detail},
    )


def heal_alert(sprite: UserSprite, message: str) -> Notification | None:
    """A gateway the heal could not cure (restart and restore failed, or only the golden image
    is left, which staff must confirm): once a day per sprite."""
    day = timezone.now().strftime("%Y-%m-%d")
    return notify(
        kind=Kind.HEAL_ALERT, key=f"heal-alert:{sprite.pk}:{day}", sprite=sprite,
        subject=f"Sprite {sprite.sprite_name}: its gateway needs a person",
        body=f"The heartbeat could not heal the gateway of {sprite.sprite_name}: {message}",
        data={"sprite": sprite.sprite_name, "sprite_id": str(sprite.public_id), "detail": message},
    )


def capacity_warning(*, name: str, detail: str, at: datetime | None = None) -> Notification | None:
    """Something is near its limit (the Sprites account's cap, the pool, the task queue…): once an
    hour per `name`. A hook for any room: call it where the limit is seen."""
    return notify(
        kind=Kind.CAPACITY, key=f"capacity:{name}:{_hour(at)}", subject=f"Capacity warning: {name}",
        body=detail, data={"name": name, "detail": detail},
    )
