"""What every action leaves behind: its lifecycle event, its error on the row, its bill."""

import time
from datetime import datetime

from django.utils import timezone

from sprites import billing, notify
from sprites.models import LifecycleEvent, UsageRecord, UserSprite

from .errors import SpriteActionError


def log_event(
    *,
    sprite: UserSprite,
    action: str,
    actor=None,
    actor_kind: str | None = None,
    outcome: str = LifecycleEvent.Outcome.OK,
    detail: str = "",
    duration_ms: int | None = None,
    saved_usd=None,
    cost_usd=None,
) -> LifecycleEvent:
    """Record who did what to a sprite. `actor_kind` is derived when not given: no actor is
    the system, staff acting on someone else's sprite is staff, anyone else is a user."""
    if actor_kind is None:
        if actor is None:
            actor_kind = LifecycleEvent.ActorKind.SYSTEM
        elif actor.is_staff and actor.pk != sprite.user_id:
            actor_kind = LifecycleEvent.ActorKind.STAFF
        else:
            actor_kind = LifecycleEvent.ActorKind.USER
    return LifecycleEvent.objects.create(
        sprite=sprite, action=action, actor=actor, actor_kind=actor_kind, outcome=outcome,
        detail=detail[:2000], duration_ms=duration_ms, saved_usd=saved_usd, cost_usd=cost_usd,
    )


def ms_since(start: float) -> int:
    return int((time.monotonic() - start) * 1000)


def fail(sprite: UserSprite, *, action: str, actor, exc: Exception, started: float, to_error: bool = False,
         **fields) -> None:
    """Store the error on the row (plus `fields`) and write the failed event."""
    entered_error = to_error and sprite.status != UserSprite.Status.ERROR
    sprite.mark_failed(action, str(exc), to_error=to_error, **fields)
    if entered_error:
        notify.sprite_error(sprite)
    log_event(sprite=sprite, action=action, actor=actor, outcome=LifecycleEvent.Outcome.FAILED,
              detail=str(exc), duration_ms=ms_since(started))


def require(sprite: UserSprite, allowed, action: str) -> None:
    if sprite.status not in allowed:
        raise SpriteActionError(f"Cannot {action} a sprite that is {sprite.status}.")


def cause_for(sprite: UserSprite, actor, default: str) -> str:
    """Staff acting on someone else's sprite is billed as staff, anyone else as `default`."""
    if actor is not None and actor.is_staff and actor.pk != sprite.user_id:
        return UsageRecord.Cause.STAFF
    return default


def bill_wake(*, sprite: UserSprite, cause: str, tag: str, started_at: datetime, idle_tail: bool = True) -> None:
    """Bill a wake an action caused, from `started_at` until now (see `billing.wake`)."""
    wall = (timezone.now() - started_at).total_seconds()
    billing.record_usage(billing.wake(
        sprite_id=sprite.pk, cause=cause, tag=tag, started_at=started_at, wall_seconds=wall,
        idle_tail=idle_tail, detail={"action": tag},
    ))
