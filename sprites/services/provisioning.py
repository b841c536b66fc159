"""Provisioning: a user's sprite from the warm pool in about a second, or a new one set up.

The warm pool (see ../shared/design.md: the real API cannot clone a sprite): pool sprites are
rows with no user in status `ready`, each set up once and checkpointed as its own golden
checkpoint. Provisioning claims one, restores the golden checkpoint, writes a fresh gateway
token into the OpenClaw config and the gateway service's environment, and (re)starts the
service: three Sprites calls. With an empty pool a new sprite is set up in the background and
the answer is "provisioning".
"""

import contextvars
import logging
import re
import secrets
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from sprites import openclaw
from sprites.client import SpritesConflict, SpritesError, get_client
from sprites.logcontext import sprite_context
from sprites.models import LifecycleEvent, UsageRecord, UserSprite

from .errors import SpriteActionError, check_exec, check_stream
from .events import bill_wake, fail, log_event, ms_since
from .metrics import persist_api_calls

logger = logging.getLogger(__name__)

Status = UserSprite.Status
GOLDEN_COMMENT = "clawdirector golden checkpoint"
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def new_sprite_name() -> str:
    prefix = settings.SPRITE_NAME_PREFIX.lower()
    name = f"{prefix}{secrets.token_hex(6)}"
    if len(name) > 63 or not DNS_LABEL.match(name):
        raise ValueError(f"SPRITE_NAME_PREFIX {settings.SPRITE_NAME_PREFIX!r} does not make DNS-safe names")
    return name


# --- a user asks -------------------------------------------------------------------------------


def _live_sprite(user) -> UserSprite | None:
    return UserSprite.objects.filter(user=user).live().first()


def provision_sprite(*, user) -> tuple[UserSprite, str]:
    """The user's sprite, and how it came: "existing" (they had one; idempotent), "ready"
    (claimed from the warm pool and online now) or "provisioning" (the pool was empty: a new
    sprite is being set up in the background; the status endpoint shows progress or failure).

    A Sprites failure while activating a claimed pool sprite is COMPENSATED, not rolled
    forward: the sprite goes back to the pool (`return_to_pool`), the user is left with no
    sprite, and the error is raised so they can simply ask again.
    """
    existing = _live_sprite(user)
    if existing is not None:
        if existing.status == Status.ERROR:
            return _retry_failed(existing)
        return existing, "existing"
    try:
        row = UserSprite.objects.claim_ready_for(user)
    except IntegrityError:  # a concurrent request of the same user claimed one first
        return _after_lost_race(user)
    if row is None:
        return _provision_new(user)
    _activate_claimed(row, user)
    return row, "ready"


def _provision_new(user) -> tuple[UserSprite, str]:
    try:
        with transaction.atomic():
            row = UserSprite.objects.create(user=user, status=Status.PROVISIONING, sprite_name=new_sprite_name())
    except IntegrityError:
        return _after_lost_race(user)
    log_event(sprite=row, action="provision", actor=user, detail="pool empty: setting up a new sprite")
    _in_background(row.pk)
    row.refresh_from_db()
    return row, "provisioning"


def _activate_claimed(row: UserSprite, user) -> None:
    with sprite_context(row.public_id):
        _activate(row, user)


def _activate(row: UserSprite, user) -> None:
    started, t0 = timezone.now(), time.monotonic()
    try:
        activate(row, restore=True)
    except SpritesError as exc:
        row.record_error("provision", str(exc))
        row.return_to_pool(broken=exc.permanent)
        log_event(sprite=row, action="provision", actor=user, outcome=LifecycleEvent.Outcome.FAILED,
                  detail=f"returned to the pool as {row.status}: {exc}", duration_ms=ms_since(t0))
        raise
    finally:
        bill_wake(sprite=row, cause=UsageRecord.Cause.PROVISIONING, tag="provisioning", started_at=started)
    row.refresh_from_db(fields=["total_cost_usd", "total_runtime_seconds"])
    log_event(sprite=row, action="provision", actor=user, detail="from the warm pool", duration_ms=ms_since(t0))


def _after_lost_race(user) -> tuple[UserSprite, str]:
    existing = _live_sprite(user)
    if existing is None:  # the winner failed and was compensated in the meantime: start over
        return provision_sprite(user=user)
    return existing, "existing"


def _retry_failed(row: UserSprite) -> tuple[UserSprite, str]:
    """A user whose set-up failed asks again: resume it (one retry at a time)."""
    if UserSprite.objects.retry_failed(row.pk):
        log_event(sprite=row, action="provision", actor=row.user, detail="retrying the failed set-up")
        _in_background(row.pk)
        row.refresh_from_db()
        return row, "provisioning"
    row.refresh_from_db()
    return row, "existing"


# --- the work -----------------------------------------------------------------------------------


def set_up(row: UserSprite) -> None:
    """Create the sprite (or find it, on a resumed set-up), install and configure OpenClaw,
    define and health-check the gateway service, set the egress policy, and take the golden
    checkpoint. Saves progress on the row after each step (so `updated_at` shows it is alive).
    Bills the whole set-up (cause `pool_setup` for the pool, else `provisioning`), failed or not.
    """
    started, t0 = timezone.now(), time.monotonic()
    cause = UsageRecord.Cause.POOL_SETUP if row.is_pool else UsageRecord.Cause.PROVISIONING
    try:
        _create(row)
        _install(row)
        _take_golden_checkpoint(row)
    finally:
        if row.sprite_id:
            bill_wake(sprite=row, cause=cause, tag="setup", started_at=started)
        logger.info("Set-up of sprite %s took %d ms", row.sprite_name, ms_since(t0))


def _create(row: UserSprite) -> None:
    client = get_client()
    try:
        # The sprite URL must be reachable by the user's browser: the gateway's own token auth
        # and device pairing guard it, not the Sprites org token (which a browser never holds).
        info = client.create_sprite(row.sprite_name, labels=["clawdirector"], url_auth="public")
    except SpritesConflict:
        # Our name is random and fresh: a 409 means an earlier attempt created it.
        info = client.get_sprite(row.sprite_name)
    row.sprite_id, row.sprite_url = info.id, info.url
    row.save(update_fields=["sprite_id", "sprite_url", "updated_at"])


def _install(row: UserSprite) -> None:
    client, name = get_client(), row.sprite_name
    client.write_file(name, openclaw.HEARTBEAT_PROMPT_PATH, openclaw.heartbeat_prompt())
    # A throwaway token for the set-up run; every provisioning writes a fresh one.
    setup_token = openclaw.new_gateway_token()
    client.write_file(name, openclaw.CONFIG_PATH,
                      openclaw.render_config(token=setup_token, sprite_url=row.sprite_url), mode="0600")
    result = client.exec(name, openclaw.setup_argv(), timeout=openclaw.SETUP_TIMEOUT_SECONDS)
    check_exec(result, "OpenClaw set-up script")
    row.save(update_fields=["updated_at"])
    service = {**openclaw.gateway_service(setup_token), "duration": openclaw.setup_failure_window()}
    check_stream(client.put_service(name, openclaw.GATEWAY_SERVICE, **service), "Starting the gateway service")
    result = client.exec(name, openclaw.startup_wait_argv(), timeout=openclaw.startup_wait_seconds() + 30)
    check_exec(result, "Waiting for the gateway's /startupz")
    # Everything not allowed is denied (a compromised gateway reaches only these).
    rules = [{"domain": d, "action": "allow"} for d in settings.SPRITE_NETWORK_ALLOW]
    client.set_network_policy(name, rules + [{"domain": "*", "action": "deny"}])


def _take_golden_checkpoint(row: UserSprite) -> None:
    client = get_client()
    row.golden_checkpoint_id = client.create_checkpoint(row.sprite_name, comment=GOLDEN_COMMENT)
    row.save(update_fields=["golden_checkpoint_id", "updated_at"])
    if row.is_pool:
        # A pool sprite waits asleep; provisioning restarts the gateway with a new token.
        client.stop_service(row.sprite_name, openclaw.GATEWAY_SERVICE)


def activate(row: UserSprite, *, restore: bool) -> None:
    """Give the row's sprite a fresh gateway token and (re)start the gateway with it.
    Restore first when the sprite was used before (a pool sprite: its golden checkpoint)."""
    client = get_client()
    token = openclaw.new_gateway_token()
    if restore:
        client.restore_checkpoint(row.sprite_name, row.golden_checkpoint_id)
    client.write_file(row.sprite_name, openclaw.CONFIG_PATH,
                      openclaw.render_config(token=token, sprite_url=row.sprite_url), mode="0600")
    # PUT replaces the definition and starts the service with the new environment.
    check_stream(client.put_service(row.sprite_name, openclaw.GATEWAY_SERVICE, **openclaw.gateway_service(token)),
                 "Starting the gateway service")
    row.mark_online(gateway_url=row.sprite_url, gateway_token=token)


def run_provisioning(*, sprite_pk: int) -> UserSprite:
    """Bring a `provisioning` row to `ready` (pool) or `online` (a user's): set it up unless
    it already has its golden checkpoint, then, for a user's row, activate it. Resumable: a
    crashed or failed attempt is picked up where it stopped."""
    row = UserSprite.objects.get(pk=sprite_pk)
    with sprite_context(row.public_id):
        return _run_provisioning(row)


def _run_provisioning(row: UserSprite) -> UserSprite:
    if row.status != Status.PROVISIONING:
        return row
    started = time.monotonic()
    had_checkpoint = bool(row.golden_checkpoint_id)
    action = "pool_setup" if row.is_pool else "provision"
    try:
        if not had_checkpoint:
            set_up(row)
        if row.is_pool:
            row.mark_ready()
        else:
            bill_start = timezone.now()
            try:
                activate(row, restore=had_checkpoint)
            finally:
                bill_wake(sprite=row, cause=UsageRecord.Cause.PROVISIONING, tag="provisioning", started_at=bill_start)
    except (SpritesError, SpriteActionError) as exc:
        # A pool row on a transient failure stays `provisioning`: resume_stuck_provisioning
        # retries the same row later, so an outage never piles up half-made sprites. A user's
        # row goes to `error`: the status endpoint shows why, and their next provision
        # request retries it (see provision_sprite).
        transient_pool = row.is_pool and not getattr(exc, "permanent", True)
        fail(row, action=action, actor=None, exc=exc, started=started, to_error=not transient_pool)
        logger.warning("Provisioning of sprite %s failed: %s", row.sprite_name, exc)
        return row
    row.refresh_from_db(fields=["total_cost_usd", "total_runtime_seconds"])
    log_event(sprite=row, action=action, detail="ready" if row.is_pool else "online", duration_ms=ms_since(started))
    return row


def _in_background(sprite_pk: int) -> None:
    """Run `run_provisioning` in a daemon thread after the current transaction commits. The
    thread has its own DB connection, closed at the end. SPRITES_PROVISION_IN_BACKGROUND=False
    runs it inline (tests)."""
    if not settings.SPRITES_PROVISION_IN_BACKGROUND:
        run_provisioning(sprite_pk=sprite_pk)
        return

    def work():
        try:
            run_provisioning(sprite_pk=sprite_pk)
        except Exception:  # a bug: the row stays `provisioning` and is resumed later
            logger.exception("Background provisioning of sprite row %s crashed", sprite_pk)
        finally:
            persist_api_calls()
            connections.close_all()

    # The thread runs in a copy of the request's context: its log lines keep the request id.
    transaction.on_commit(lambda: threading.Thread(
        target=contextvars.copy_context().run, args=(work,), name=f"provision-{sprite_pk}", daemon=True,
    ).start())


def resume_stuck_provisioning(*, older_than_seconds: int | None = None) -> int:
    """Resume rows left in `provisioning` with no progress for a while (a crashed thread or
    process, a transient failure of a pool set-up). Each row is claimed by a conditional
    UPDATE of `updated_at`, so overlapping callers (heartbeats on several hosts) never resume
    the same row twice. Runs the set-ups inline; returns how many were resumed."""
    if older_than_seconds is None:
        older_than_seconds = settings.SPRITE_PROVISION_STUCK_SECONDS
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stuck = list(
        UserSprite.objects.filter(status=Status.PROVISIONING, updated_at__lt=cutoff).values_list("pk", "updated_at")
    )
    resumed = 0
    for pk, updated_at in stuck:
        if UserSprite.objects.touch_stuck(pk, updated_at):
            resumed += 1
            run_provisioning(sprite_pk=pk)
    return resumed
