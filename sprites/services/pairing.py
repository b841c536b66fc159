"""Connecting a browser to its gateway: device pairing and single-use dashboard links, by
exec of the OpenClaw CLI in the sprite (argv lists: no shell ever parses them)."""

import time

from django.utils import timezone

from sprites import openclaw
from sprites.client import ExecResult, SpritesError, get_client
from sprites.models import UsageRecord, UserSprite

from .errors import CommandFailed, PairingRequestNotFound, SpriteActionError, check_exec
from .events import bill_wake, cause_for, fail, log_event, ms_since


def _run_cli(sprite: UserSprite, argv: list[str], *, action: str, verb: str, actor, check: bool = True) -> ExecResult:
    """Run the OpenClaw CLI in the sprite. Billed for its wall time only (no idle tail: a
    frontend polling the device list while a browser pairs would otherwise bill 30 s per
    poll). With `check`, a non-zero exit is recorded on the row and raised as CommandFailed."""
    if sprite.status not in UserSprite.FOLLOWS_VM:
        raise SpriteActionError(f"Cannot {verb} a sprite that is {sprite.status}; start it first.")
    started, t0 = timezone.now(), time.monotonic()
    try:
        try:
            result = get_client().exec(sprite.sprite_name, argv, timeout=60)
        finally:
            bill_wake(sprite=sprite, cause=cause_for(sprite, actor, UsageRecord.Cause.USER_START), tag=action,
                      started_at=started, idle_tail=False)
        if check:
            check_exec(result, f"openclaw {' '.join(argv[1:3])}")
    except (SpritesError, CommandFailed) as exc:
        fail(sprite, action=action, actor=actor, exc=exc, started=t0)
        raise
    return result


def _parsed(parse, *args):
    try:
        return parse(*args)
    except openclaw.UnreadableOutput as exc:
        raise CommandFailed(str(exc)) from None


def list_pairing_requests(*, sprite: UserSprite) -> list[dict]:
    """The gateway's pending device pairing requests (`openclaw devices list --json`)."""
    result = _run_cli(sprite, openclaw.devices_list_argv(), action="list_devices",
                      verb="list the pairing requests of", actor=sprite.user)
    return _parsed(openclaw.parse_devices, result.text)


def approve_pairing_request(*, sprite: UserSprite, request_id: str, actor=None) -> dict:
    """Approve one pending pairing request (`openclaw devices approve <requestId>`)."""
    try:
        argv = openclaw.devices_approve_argv(request_id)
    except ValueError as exc:
        raise SpriteActionError(str(exc), code="invalid_request_id") from None
    t0 = time.monotonic()
    result = _run_cli(sprite, argv, action="approve_device", verb="approve a device on", actor=actor, check=False)
    if not result.ok:
        if openclaw.approve_not_found(result.tail(500)):
            raise PairingRequestNotFound("No pending pairing request with that id.")
        exc = CommandFailed(f"openclaw devices approve exited with code {result.exit_code}")
        fail(sprite, action="approve_device", actor=actor, exc=exc, started=t0)
        raise exc
    approved = _parsed(openclaw.parse_approved, result.text, request_id)
    log_event(sprite=sprite, action="approve_device", actor=actor,
              detail=f"request {request_id}, device {approved['deviceId'][:16]}", duration_ms=ms_since(t0))
    return approved


def create_dashboard_link(*, sprite: UserSprite, actor=None) -> dict:
    """OpenClaw's single-use, 10-minute browser link (`openclaw dashboard --json`): the
    browser connects without the frontend ever holding the shared gateway token."""
    t0 = time.monotonic()
    result = _run_cli(sprite, openclaw.dashboard_argv(), action="dashboard_link",
                      verb="make a dashboard link for", actor=actor)
    link = _parsed(lambda text: openclaw.parse_dashboard(text, sprite_url=sprite.sprite_url), result.text)
    log_event(sprite=sprite, action="dashboard_link", actor=actor, duration_ms=ms_since(t0))
    return {"url": link.url, "expires_at": link.expires_at}
