"""Verify after wake (issue 14): the gateway checked end to end through the sprite URL after
each wake ClawDirector causes, and the known-good checkpoints a verified turn leaves.

The heartbeat's worker threads call `verify_after_turn` (HTTP only, no query: the claim
handed over the URL and whether a checkpoint is due; `heartbeat.record` writes the results
in its batch with `record_checks`). A user's start queues `verify_gateway_task`, which waits
for the restarted gateway (GATEWAY_VERIFY_WAIT_SECONDS) in the worker, not in the request.

The check is `GET /startupz` (200 only once the gateway finished starting), then a WebSocket
`connect` with the user's gateway token through the same URL a browser uses
(`sprites.openclaw.connect`): the real 2026.9.6 says `hello-ok` to the token without a device
identity, so nothing is paired and no pairing request is left; a gateway that runs but lost or
changed its token is caught here, not by the user.
"""

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sprites.client import SpritesError, check_gateway, get_client, ws_exchange
from sprites.models import KnownGoodCheckpoint, LifecycleEvent, UserSprite
from sprites.openclaw import connect

from .events import log_event

logger = logging.getLogger(__name__)

KNOWN_GOOD_COMMENT = "clawdirector known-good checkpoint"


def verify_after_turn(target, result) -> None:
    """Check the gateway of a sprite a turn just reached and, when it answers and a known-good
    checkpoint is due, take one while the sprite is awake anyway. Sets the result's
    `gateway_error` and `known_good_checkpoint`. Never raises."""
    if not (settings.GATEWAY_VERIFY and target.url):
        return
    try:
        result.gateway_error = check_end_to_end(target.url, target.token)
    except Exception as exc:  # noqa: BLE001 - one sprite must never stop the sweep
        result.gateway_error = f"check raised {type(exc).__name__}"
    if result.gateway_error or not (result.ok and target.checkpoint_due):
        return
    try:
        result.known_good_checkpoint = get_client().create_checkpoint(target.name, comment=KNOWN_GOOD_COMMENT)
    except SpritesError as exc:
        logger.warning("Known-good checkpoint of %s failed: %s", target.name, exc)


def check_end_to_end(url: str, token: str, *, wait: float = 0.0) -> str:
    """"" when the gateway behind the sprite URL answers /startupz (waiting up to `wait` for
    it) and says hello-ok to a connect with `token`; else why not (never the token)."""
    timeout = settings.GATEWAY_VERIFY_TIMEOUT_SECONDS
    problem = check_gateway(url, timeout=timeout, wait=wait)
    if problem or not token:
        return problem
    try:
        frames = ws_exchange(url, lambda first: connect.probe_request(token), timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - refused upgrade, reset, timeout: all one answer
        return f"WebSocket connect failed ({type(exc).__name__})"
    return connect.probe_problem(frames)


def record_checks(checks: dict[int, str], checkpoints: dict[int, tuple[str, datetime]], now: datetime) -> None:
    """Write a batch: the gateway checks (pk -> "" or the error) and the known-good
    checkpoints taken (pk -> (id, when)). A constant number of queries for any batch size;
    the caller holds the transaction."""
    UserSprite.objects.record_gateway_checks(checks, now)
    if checkpoints:
        KnownGoodCheckpoint.objects.bulk_create(
            [KnownGoodCheckpoint(sprite_id=pk, checkpoint_id=cid, created_at=at) for pk, (cid, at) in checkpoints.items()],
            ignore_conflicts=True,
        )
        UserSprite.objects.filter(pk__in=list(checkpoints)).update(known_good_at=now)


def verify_sprite(sprite: UserSprite, *, wait: float = 0.0) -> str:
    """Check one sprite's gateway now and record it; "" when good, else the problem."""
    if not sprite.sprite_url:
        return "no sprite URL"
    error = check_end_to_end(sprite.sprite_url, sprite.gateway_token, wait=wait)
    with transaction.atomic():
        UserSprite.objects.record_gateway_checks({sprite.pk: error}, timezone.now())
    sprite.refresh_from_db(fields=["gateway_ok_at", "gateway_failed_at", "gateway_failures", "gateway_error",
                                   "heal_attempts", "heal_alerted_at"])
    return error


def verify_after_start(sprite: UserSprite) -> None:
    """Queue the check after a start (the worker waits for the gateway; the request does not)."""
    if settings.GATEWAY_VERIFY and sprite.sprite_url:
        from .tasks import verify_gateway_task

        verify_gateway_task.enqueue(sprite_pk=sprite.pk)


def verify_started(sprite_pk: int) -> str:
    """The task's work: wait for the started gateway, record the check, an event if it failed."""
    sprite = UserSprite.objects.get(pk=sprite_pk)
    if sprite.status != UserSprite.Status.ONLINE:
        return "not online any more"
    error = verify_sprite(sprite, wait=settings.GATEWAY_VERIFY_WAIT_SECONDS)
    if error:
        log_event(sprite=sprite, action="verify", outcome=LifecycleEvent.Outcome.FAILED,
                  detail=f"after a start: {error}")
    return error or "ok"
