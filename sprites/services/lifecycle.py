"""Actions on a user's sprite: start, stop, refresh, rotate the token, destroy, stop and
restart for a spent budget; and the VM states of the whole fleet from the list API.

Start = start the gateway *service* (which wakes the sprite); stop = stop it, so the sprite
sleeps on its own (the real API has no start/stop: ../shared/design.md). No transaction or
row lock is held across a Sprites call.
"""

import time

from django.conf import settings
from django.utils import timezone

from sprites import modelaccess, openclaw
from sprites.billing import budget
from sprites.client import SpriteNotFound, SpritesCapacityExceeded, SpritesError, get_client
from sprites.models import UsageRecord, UserSprite

from . import sampling
from .errors import SpriteActionError, check_stream
from .events import bill_wake, cause_for, fail, log_event, ms_since, require
from .verify import verify_after_start


def start_sprite(*, sprite: UserSprite, actor=None) -> UserSprite:
    """Start the gateway service (which wakes the sprite). Billed: the start's wall time plus
    the idle tail, cause `user_start` (or `staff` when staff start someone else's). Refused
    (`over_budget`) while the user's monthly budget or the fleet's cap is spent."""
    if sprite.status == UserSprite.Status.OVER_BUDGET or (
            sprite.status in UserSprite.IN_SERVICE and budget.is_spent(sprite)):
        raise SpriteActionError("The monthly budget of this sprite's user is spent: it starts again next month "
                                "or when staff raise the budget.", code="over_budget")
    require(sprite, UserSprite.IN_SERVICE, "start")
    _start_gateway(sprite, actor=actor, action="start", cause=UsageRecord.Cause.USER_START)
    sprite.mark_online()
    verify_after_start(sprite)  # once online: the check is of an online sprite
    return sprite


def _start_gateway(sprite: UserSprite, *, actor, action: str, cause: str) -> None:
    """Start the gateway service, bill the wake, log the event (or the failure, and raise)."""
    started, t0 = timezone.now(), time.monotonic()
    refused = False
    try:
        try:
            events = get_client().start_service(sprite.sprite_name, openclaw.GATEWAY_SERVICE,
                                                 duration=openclaw.SERVICE_STREAM_DURATION)
            check_stream(events, "Starting the gateway service")
        except SpritesCapacityExceeded:
            refused = True
            raise
        finally:
            if not refused:
                bill_wake(sprite=sprite, cause=cause_for(sprite, actor, cause), tag="start", started_at=started)
    except SpritesCapacityExceeded:
        # Every running slot of the org is taken: nothing ran, nothing is billed, and it is
        # no error of this sprite's. The API answers 429 with Retry-After (sprites/api/errors.py).
        raise
    except SpritesError as exc:
        fail(sprite, action=action, actor=actor, exc=exc, started=t0)
        raise
    sprite.refresh_from_db(fields=["total_cost_usd", "total_runtime_seconds"])
    log_event(sprite=sprite, action=action, actor=actor, duration_ms=ms_since(t0))


def stop_sprite(*, sprite: UserSprite, actor=None) -> UserSprite:
    """Stop the gateway service; the sprite sleeps on its own after the idle window. The
    status is `stopped` (the user's intent) until someone starts it again."""
    require(sprite, UserSprite.IN_SERVICE, "stop")
    t0 = time.monotonic()
    try:
        get_client().stop_service(sprite.sprite_name, openclaw.GATEWAY_SERVICE)
    except SpritesError as exc:
        fail(sprite, action="stop", actor=actor, exc=exc, started=t0)
        raise
    sprite.mark_stopped()
    log_event(sprite=sprite, action="stop", actor=actor, duration_ms=ms_since(t0))
    return sprite


def suspend_for_budget(*, sprite: UserSprite, actor=None) -> UserSprite:
    """An `over_budget` sprite's gateway is stopped, so it sleeps and nobody's session keeps it
    awake (sprites/services/budgets.py moved it there). A no-op once it is restored."""
    sprite.refresh_from_db(fields=["status", "last_error", "last_error_at"])
    if sprite.status != UserSprite.Status.OVER_BUDGET:
        return sprite
    t0 = time.monotonic()
    try:
        get_client().stop_service(sprite.sprite_name, openclaw.GATEWAY_SERVICE)
    except SpritesError as exc:
        fail(sprite, action="budget_stop", actor=actor, exc=exc, started=t0)
        raise
    sprite.clear_error("budget_stop")  # the next sweep retries a failed stop until this
    log_event(sprite=sprite, action="budget_stop", actor=actor, duration_ms=ms_since(t0),
              detail="monthly budget spent: gateway stopped")
    return sprite


def restore_after_budget(*, sprite: UserSprite, actor=None) -> UserSprite:
    """An `over_budget` sprite whose budget has room again (a new month, a higher budget): its
    gateway starts and it is `online`. On a failure it stays `over_budget` with the error, and
    the next sweep's budget check tries again."""
    sprite.refresh_from_db(fields=["status"])
    if sprite.status != UserSprite.Status.OVER_BUDGET or budget.is_spent(sprite):
        return sprite
    _start_gateway(sprite, actor=actor, action="budget_restore", cause=UsageRecord.Cause.STAFF)
    UserSprite.objects.restore_from_budget(sprite.pk)
    sprite.refresh_from_db(fields=["status", "vm_state", "vm_state_checked_at", "last_error", "last_error_at"])
    sprite.clear_error("budget_stop", "budget_restore")
    verify_after_start(sprite)
    return sprite


def refresh_status(*, sprite: UserSprite, actor=None) -> UserSprite:
    """Read the VM state from the API and map it onto the status (`status_for_vm_state`).
    Rows with no sprite behind them yet (or any more) are returned untouched."""
    if sprite.status in (UserSprite.Status.PROVISIONING, UserSprite.Status.DESTROYED) or not sprite.sprite_id:
        return sprite
    t0 = time.monotonic()
    try:
        info = get_client().get_sprite(sprite.sprite_name)
    except SpriteNotFound as exc:
        fail(sprite, action="refresh", actor=actor, exc=exc, started=t0,
             vm_state=UserSprite.VMState.UNKNOWN, vm_state_checked_at=timezone.now())
        raise
    except SpritesError as exc:
        fail(sprite, action="refresh", actor=actor, exc=exc, started=t0)
        raise
    sprite.mark_vm_state(info.status)
    return sprite


def sync_vm_states() -> int:
    """Read every ClawDirector sprite's VM state through the list API (50 per call, so a
    10,000-sprite fleet costs 200 calls) and store it, moving `online`/`sleeping` with it.
    The heartbeat runs this before each sweep, so the console shows what users' own activity
    keeps awake, and bills that activity as `user` (`sampling`). Sprites missing from the list
    are left for a per-sprite refresh. Returns the number of rows updated."""
    states: dict[str, list[str]] = {}
    infos = list(get_client().list_sprites(prefix=settings.SPRITE_NAME_PREFIX))
    for info in infos:
        vm_state = info.status if info.status in UserSprite.VMState.values else UserSprite.VMState.UNKNOWN
        states.setdefault(vm_state, []).append(info.name)
    now, updated = timezone.now(), 0
    sampling.bill_user_sessions(infos, now)  # every read of the states is a usage sample
    for vm_state, names in states.items():
        for i in range(0, len(names), 1000):
            updated += UserSprite.objects.follow_vm_state(names[i:i + 1000], vm_state, now)
    return updated


def rotate_gateway_token(*, sprite: UserSprite, actor=None) -> UserSprite:
    """A new token in the config and the service environment, and a gateway restart (any
    `gateway.*` change needs one; PUT restarts it). The old token stops working. A sprite the
    user stopped stays stopped.

    Ordering: the row keeps the old token until the service runs with the new one, so on a
    failure the stored token is still the one the running gateway accepts."""
    require(sprite, UserSprite.IN_SERVICE, "rotate the token of")
    client, t0 = get_client(), time.monotonic()
    token = openclaw.new_gateway_token()
    name = sprite.sprite_name
    try:
        # The model key rotates with the token: the new one is kept only if the restart succeeds.
        with modelaccess.rotation(sprite) as model:
            client.write_file(name, openclaw.CONFIG_PATH,
                              openclaw.render_config(token=token, sprite_url=sprite.sprite_url, model=model),
                              mode="0600")
            check_stream(client.put_service(name, openclaw.GATEWAY_SERVICE, **openclaw.gateway_service(token)),
                         "Restarting the gateway service")
        sprite.gateway_token = token
        sprite.save(update_fields=["gateway_token", "updated_at"])
        if sprite.status == UserSprite.Status.STOPPED:
            client.stop_service(name, openclaw.GATEWAY_SERVICE)
    except SpritesError as exc:
        fail(sprite, action="rotate_token", actor=actor, exc=exc, started=t0)
        raise
    log_event(sprite=sprite, action="rotate_token", actor=actor, duration_ms=ms_since(t0))
    return sprite


def destroy_sprite(*, sprite: UserSprite, actor) -> UserSprite:
    """Staff only: delete the sprite at Sprites (which deletes its checkpoints). The row stays,
    as `destroyed`, with its ledger; the user may provision a new one."""
    if actor is None or not actor.is_staff:
        raise SpriteActionError("Only staff can destroy a sprite.", code="permission_denied")
    require(sprite, [s for s in UserSprite.Status.values if s != UserSprite.Status.DESTROYED], "destroy")
    t0 = time.monotonic()
    try:
        get_client().delete_sprite(sprite.sprite_name)  # already gone counts as done
        modelaccess.revoke(sprite)  # its model key dies with it (LiteLLM: deleted at the proxy)
    except SpritesError as exc:
        fail(sprite, action="destroy", actor=actor, exc=exc, started=t0)
        raise
    sprite.mark_destroyed()
    log_event(sprite=sprite, action="destroy", actor=actor, duration_ms=ms_since(t0))
    return sprite
