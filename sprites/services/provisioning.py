"""Provisioning: a user's sprite from the warm pool in about a second, or a new one set up.

The warm pool (see ../shared/design.md: the real API cannot clone a sprite): pool sprites are
rows with no user in status `ready`, each set up once and checkpointed as its own golden
checkpoint. Provisioning claims one, restores the golden checkpoint, writes a fresh gateway
token into the OpenClaw config and the gateway service's environment, and (re)starts the
service: three Sprites calls. With an empty pool a new sprite is set up by a task (the worker
runs it: `tasks.set_up_sprite`) and the answer is "provisioning".
"""

import logging
import re
import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from sprites import modelaccess, notify, openclaw
from sprites.client import SpritesCapacityExceeded, SpritesConflict, SpritesError, get_client
from sprites.logcontext import sprite_context
from sprites.models import LifecycleEvent, UsageRecord, UserSprite

from .errors import SpriteActionError, check_exec, check_stream
from .events import bill_wake, fail, log_event, ms_since

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
    sprite's set-up is queued for the worker; the status endpoint shows progress or failure).

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
    from .tasks import enqueue_setup

    try:
        with transaction.atomic():
            row = UserSprite.objects.create(user=user, status=Status.PROVISIONING, sprite_name=new_sprite_name())
            log_event(sprite=row, action="provision", actor=user, detail="pool empty: setting up a new sprite")
            # The task is a row of the same transaction: no sprite row without its set-up.
            enqueue_setup(row.pk, for_user=True)
    except IntegrityError:
        return _after_lost_race(user)
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
        if row.status == Status.ERROR:
            notify.sprite_error(row)
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
    from .tasks import enqueue_setup

    if UserSprite.objects.retry_failed(row.pk):
        log_event(sprite=row, action="provision", actor=row.user, detail="retrying the failed set-up")
        enqueue_setup(row.pk, for_user=True)
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
    rules = [{"domain": d, "action": "allow"} for d in modelaccess.allowed_domains()]
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
    # The sprite's own model credential (minted now for a claimed pool sprite), never a platform key.
    model = modelaccess.credential_for(row)
    if restore:
        client.restore_checkpoint(row.sprite_name, row.golden_checkpoint_id)
    client.write_file(row.sprite_name, openclaw.CONFIG_PATH,
                      openclaw.render_config(token=token, sprite_url=row.sprite_url, model=model), mode="0600")
    # PUT replaces the definition and starts the service with the new environment.
    check_stream(client.put_service(row.sprite_name, openclaw.GATEWAY_SERVICE, **openclaw.gateway_service(token)),
                 "Starting the gateway service")
    row.mark_online(gateway_url=row.sprite_url, gateway_token=token)


def run_provisioning(*, sprite_pk: int, retry_transient: bool = False, wait_for_slot: bool = False) -> UserSprite:
    """Bring a `provisioning` row to `ready` (pool) or `online` (a user's): set it up unless
    it already has its golden checkpoint, then, for a user's row, activate it. Resumable: a
    crashed or failed attempt is picked up where it stopped. `retry_transient`: the caller
    retries a transient failure, so a user's row stays `provisioning` too (the set-up task).
    `wait_for_slot`: the org's running cap being full (a 429 that woke nothing) is raised as
    SpritesCapacityExceeded for the caller to wait on, and recorded as nothing."""
    row = UserSprite.objects.get(pk=sprite_pk)
    with sprite_context(row.public_id):
        return _run_provisioning(row, retry_transient, wait_for_slot)


def _run_provisioning(row: UserSprite, retry_transient: bool, wait_for_slot: bool) -> UserSprite:
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
        if wait_for_slot and isinstance(exc, SpritesCapacityExceeded):
            raise
        # A pool row on a transient failure stays `provisioning`: its task retries it, and
        # resume_stuck_provisioning later, so an outage never piles up half-made sprites. A
        # user's row too while its task retries; after the last try it goes to `error`: the
        # status endpoint shows why, and their next provision request retries it.
        transient = not getattr(exc, "permanent", True)
        keep = transient and (row.is_pool or retry_transient)
        fail(row, action=action, actor=None, exc=exc, started=started, to_error=not keep)
        logger.warning("Provisioning of sprite %s failed: %s", row.sprite_name, exc)
        return row
    row.refresh_from_db(fields=["total_cost_usd", "total_runtime_seconds"])
    log_event(sprite=row, action=action, detail="ready" if row.is_pool else "online", duration_ms=ms_since(started))
    return row


def stuck_provisioning(*, older_than_seconds: int | None = None):
    """`provisioning` rows with no progress for SPRITE_PROVISION_STUCK_SECONDS (the stuck rule)."""
    if older_than_seconds is None:
        older_than_seconds = settings.SPRITE_PROVISION_STUCK_SECONDS
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return UserSprite.objects.filter(status=Status.PROVISIONING, updated_at__lt=cutoff)


def resume_stuck_provisioning(*, older_than_seconds: int | None = None) -> int:
    """Queue the set-up again of rows left in `provisioning` that have no queued or running
    set-up task and no progress for a while (a task lost or failed for good, a pool set-up
    that ran out of retries). A killed worker is not a case for this: its task is run again
    by the next worker within seconds (sprites/worker.py). Returns how many were queued."""
    return sum(outcome == "resumed" for _, outcome in resume_stuck(older_than_seconds=older_than_seconds))


def resume_stuck(*, older_than_seconds: int | None = None) -> list[tuple[UserSprite, str]]:
    """The stuck rule, applied: each stuck row is resumed ("resumed", an event `resume_setup`)
    or, a user's row resumed RECONCILE_MAX_RESUMES times already, failed ("failed": `error`
    with the reason; their next provision request retries it). A pool row is resumed for as
    long as it takes (an outage must not turn the pool into `error` rows with sprites behind
    them). Rows another caller or a live task has are left alone."""
    from .tasks import enqueue_setup

    done = []
    for row in stuck_provisioning(older_than_seconds=older_than_seconds).only("pk", "user_id", "updated_at",
                                                                              "sprite_name", "status"):
        # The conditional touch makes overlapping callers (sweeps on several hosts) act once.
        if not UserSprite.objects.touch_stuck(row.pk, row.updated_at):
            continue
        resumes = LifecycleEvent.objects.filter(sprite_id=row.pk, action="resume_setup").count()
        if row.user_id is not None and resumes >= settings.RECONCILE_MAX_RESUMES:
            row.mark_failed("provision", f"set-up stuck: resumed {resumes} times without finishing", to_error=True)
            log_event(sprite=row, action="resume_setup", outcome=LifecycleEvent.Outcome.FAILED,
                      detail=f"gave up after {resumes} resumes")
            done.append((row, "failed"))
        elif enqueue_setup(row.pk, for_user=row.user_id is not None):
            log_event(sprite=row, action="resume_setup", detail=f"stuck in provisioning; resume {resumes + 1}")
            done.append((row, "resumed"))
    return done
