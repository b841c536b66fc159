"""Every multi-step or Sprites-touching operation on a sprite. Views, admin actions, commands
and the heartbeat call these; none of them calls the client directly.

Conventions:
- keyword-only arguments; `actor` is the user who asked (None = the system);
- every action writes a `LifecycleEvent`, and on failure stores the error on the row
  (`record_error`) and re-raises the `SpritesError` (or a `SpriteActionError`) for the caller;
- no database transaction or row lock is ever held across a Sprites HTTP call: rows are
  claimed with short conditional UPDATEs, then the HTTP work runs, then the result is saved;
- every wake ClawDirector causes is billed through `metering.record_usage`, with an
  idempotency key built from sprite + kind + window.

The warm pool (see ../shared/design.md: the real API cannot clone a sprite): pool sprites are
rows with no user in status `ready`, each set up once and checkpointed as its own golden
checkpoint. Provisioning claims one, restores the golden checkpoint, writes a fresh gateway
token into the OpenClaw config and the gateway service's environment, and (re)starts the
service: three Sprites calls.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, connection, connections, transaction
from django.utils import timezone

from sprites import metering
from sprites.client import (
    ExecResult,
    SpriteNotFound,
    SpritesConflict,
    SpritesError,
    StreamEvent,
    get_client,
)
from sprites.models import LifecycleEvent, UsageRecord, UserSprite

logger = logging.getLogger(__name__)

Status = UserSprite.Status

# --- What runs inside each sprite (see ../shared/openclaw.md) ------------------------------

OPENCLAW_DIR = Path(__file__).resolve().parent / "openclaw"
SPRITE_HOME = "/home/sprite"
CONFIG_PATH = f"{SPRITE_HOME}/.openclaw/openclaw.json"
# HEARTBEAT_COMMAND (settings) reads the prompt from here.
HEARTBEAT_PROMPT_PATH = f"{SPRITE_HOME}/.openclaw/heartbeat.md"
# Absolute: a service's `env` replaces the sprite's environment, PATH included.
OPENCLAW_BIN = "/usr/local/bin/openclaw"
GATEWAY_SERVICE = "openclaw-gateway"
SETUP_TIMEOUT_SECONDS = 900
STARTUP_WAIT_SECONDS = 90
# Service create/start answer with a log stream held open this long. Short, because
# provisioning has a latency budget; a crash on start (exit 78 = invalid config) usually
# shows inside it, and the gateway's health is checked separately at set-up.
SERVICE_STREAM_DURATION = "500ms"
GOLDEN_COMMENT = "clawdirector golden checkpoint"
LIVE_STATUSES = (Status.ONLINE, Status.SLEEPING, Status.STOPPED)
# Device pairing request ids are UUIDs in OpenClaw; anything beyond this shape is refused
# before it reaches an exec argv.
SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
PAIRING_FIELDS = (
    "requestId", "deviceId", "displayName", "platform", "clientId", "clientMode", "role", "roles",
    "scopes", "remoteIp", "ts",
)

_pool_lock_local = threading.Lock()


class SpriteActionError(Exception):
    """An action that cannot run on this sprite as it is. `code` is stable (the API sends it)."""

    code = "invalid_state"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code


class CommandFailed(SpriteActionError):
    """An OpenClaw CLI command in the sprite failed or answered something unreadable."""

    code = "command_failed"


class PairingRequestNotFound(SpriteActionError):
    code = "pairing_request_not_found"


class GatewayFailed(SpritesError):
    """The gateway service failed to start (exit 78 = invalid OpenClaw config). Permanent."""


# --- Small helpers ------------------------------------------------------------------------


def log_event(
    *,
    sprite: UserSprite,
    action: str,
    actor=None,
    actor_kind: str | None = None,
    outcome: str = LifecycleEvent.Outcome.OK,
    detail: str = "",
    duration_ms: int | None = None,
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
        sprite=sprite,
        action=action,
        actor=actor,
        actor_kind=actor_kind,
        outcome=outcome,
        detail=detail[:2000],
        duration_ms=duration_ms,
    )


def status_for_vm_state(status: str, vm_state: str) -> str:
    """The row status a VM state implies. Only `online`/`sleeping` follow the VM: a user's
    `stopped` stays until they start again, and provisioning/ready/error/destroyed are
    ClawDirector's own states, not the VM's."""
    if status not in (Status.ONLINE, Status.SLEEPING):
        return status
    if vm_state == UserSprite.VMState.RUNNING:
        return Status.ONLINE
    if vm_state in (UserSprite.VMState.WARM, UserSprite.VMState.COLD):
        return Status.SLEEPING
    return status


def sync_vm_states() -> int:
    """Read every ClawDirector sprite's VM state through the list API (50 per call, so a
    10,000-sprite fleet costs 200 calls) and store it, moving `online`/`sleeping` with it.
    The heartbeat runs this before each sweep, so the console shows what users' own activity
    keeps awake. Sprites missing from the list are left for a per-sprite refresh. Returns the
    number of rows updated."""
    states: dict[str, list[str]] = {}
    for info in get_client().list_sprites(prefix=settings.SPRITE_NAME_PREFIX):
        vm_state = info.status if info.status in UserSprite.VMState.values else UserSprite.VMState.UNKNOWN
        states.setdefault(vm_state, []).append(info.name)
    now, updated = timezone.now(), 0
    live = UserSprite.objects.exclude(status=Status.DESTROYED)
    for vm_state, names in states.items():
        follows = status_for_vm_state(Status.ONLINE, vm_state) if vm_state else None  # online/sleeping
        for i in range(0, len(names), 1000):
            rows = live.filter(sprite_name__in=names[i:i + 1000])
            updated += rows.update(vm_state=vm_state, vm_state_checked_at=now)
            if follows:
                rows.filter(status__in=[Status.ONLINE, Status.SLEEPING]).exclude(status=follows).update(
                    status=follows, updated_at=now
                )
    return updated


def new_gateway_token() -> str:
    """384 bits from `secrets`, URL-safe."""
    return secrets.token_urlsafe(48)


def new_sprite_name() -> str:
    prefix = settings.SPRITE_NAME_PREFIX.lower()
    name = f"{prefix}{secrets.token_hex(6)}"
    if len(name) > 63 or not DNS_LABEL.match(name):
        raise ValueError(f"SPRITE_NAME_PREFIX {settings.SPRITE_NAME_PREFIX!r} does not make DNS-safe names")
    return name


def render_config(*, token: str, sprite_url: str) -> bytes:
    """The OpenClaw config from the template in sprites/openclaw/openclaw.json."""
    config = json.loads((OPENCLAW_DIR / "openclaw.json").read_text())
    gateway = config["gateway"]
    gateway["port"] = settings.OPENCLAW_GATEWAY_PORT
    # The CLI inside the sprite (devices, dashboard) reads the token from here; the gateway
    # process also gets it from OPENCLAW_GATEWAY_TOKEN in the service environment.
    gateway["auth"]["token"] = token
    origins = [o for o in settings.OPENCLAW_ALLOWED_ORIGINS if o and o != "*"]
    if sprite_url:
        parts = urlsplit(sprite_url)
        origins.append(f"{parts.scheme}://{parts.netloc}")
    gateway["controlUi"]["allowedOrigins"] = list(dict.fromkeys(origins))
    return (json.dumps(config, indent=2) + "\n").encode()


def gateway_service(token: str) -> dict:
    """Keyword arguments of `put_service` for the gateway."""
    return {
        "cmd": OPENCLAW_BIN,
        "args": ["gateway", "--port", str(settings.OPENCLAW_GATEWAY_PORT)],
        "http_port": settings.OPENCLAW_GATEWAY_PORT,
        "env": {
            "OPENCLAW_GATEWAY_TOKEN": token,
            "OPENCLAW_SUPERVISOR_MODE": "external",
            "HOME": SPRITE_HOME,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "NODE_ENV": "production",
        },
        "dir": SPRITE_HOME,
        "duration": SERVICE_STREAM_DURATION,
    }


def _check_stream(events: list[StreamEvent], what: str) -> None:
    """Service streams report a failed start as events, not as an HTTP error."""
    for event in events:
        if event.type == "error" or (event.type == "exit" and event.exit_code):
            detail = event.error or event.data or f"exit code {event.exit_code}"
            raise GatewayFailed(f"{what} failed: {detail}"[:300], code="gateway_failed")


def _check_exec(result: ExecResult, what: str) -> None:
    if not result.ok:
        # Output is untrusted: only a short tail, and the admin escapes it.
        raise CommandFailed(f"{what} exited with code {result.exit_code}: {result.tail(300)}")


def _bill_active(*, sprite: UserSprite, cause: str, kind: str, started_at, finished_at, idle_tail=True):
    """Bill a wake ClawDirector caused: wall time, plus the idle window before it sleeps."""
    ended_at = finished_at + timedelta(seconds=settings.SPRITE_IDLE_SECONDS if idle_tail else 0)
    metering.record_usage([
        metering.active_usage(
            sprite_id=sprite.pk,
            cause=cause,
            started_at=started_at,
            ended_at=ended_at,
            key=f"active:{sprite.pk}:{kind}:{started_at.isoformat()}",
            detail={"action": kind},
        )
    ])


def _cause_for(sprite: UserSprite, actor, default: str) -> str:
    if actor is not None and actor.is_staff and actor.pk != sprite.user_id:
        return UsageRecord.Cause.STAFF
    return default


def _ms_since(start: float) -> int:
    return int((time.monotonic() - start) * 1000)


def _fail(sprite: UserSprite, *, action: str, actor, exc: Exception, started: float, **fields) -> None:
    """Store the error on the row (plus `fields`) and write the failed event."""
    sprite.record_error(f"{action}: {exc}")
    for name, value in fields.items():
        setattr(sprite, name, value)
    sprite.save(update_fields=["last_error", "last_error_at", *fields, "updated_at"])
    log_event(sprite=sprite, action=action, actor=actor, outcome=LifecycleEvent.Outcome.FAILED,
              detail=str(exc), duration_ms=_ms_since(started))


def _require(sprite: UserSprite, allowed, action: str) -> None:
    if sprite.status not in allowed:
        raise SpriteActionError(f"Cannot {action} a sprite that is {sprite.status}.")


# --- Set-up and the warm pool ----------------------------------------------------------------


def _set_up(row: UserSprite) -> None:
    """Create the sprite (or find it, on a resumed set-up), install and configure OpenClaw,
    define and health-check the gateway service, set the egress policy, and take the golden
    checkpoint. Saves progress on the row after each step (so `updated_at` shows it is alive).
    Bills the whole set-up (cause `pool_setup` for the pool, else `provisioning`), failed or not.
    """
    client = get_client()
    started, t0 = timezone.now(), time.monotonic()
    cause = UsageRecord.Cause.POOL_SETUP if row.user_id is None else UsageRecord.Cause.PROVISIONING
    try:
        try:
            info = client.create_sprite(row.sprite_name, labels=["clawdirector"], url_auth="public")
        except SpritesConflict:
            # Our name is random and fresh: a 409 means an earlier attempt created it.
            info = client.get_sprite(row.sprite_name)
        row.sprite_id, row.sprite_url = info.id, info.url
        row.save(update_fields=["sprite_id", "sprite_url", "updated_at"])

        name = row.sprite_name
        # The sprite URL must be reachable by the user's browser: the gateway's own token auth
        # and device pairing guard it, not the Sprites org token (which a browser never holds).
        client.write_file(name, HEARTBEAT_PROMPT_PATH, (OPENCLAW_DIR / "heartbeat.md").read_bytes())
        # A throwaway token for the set-up run; every provisioning writes a fresh one.
        setup_token = new_gateway_token()
        client.write_file(name, CONFIG_PATH, render_config(token=setup_token, sprite_url=row.sprite_url),
                          mode="0600")
        script = (OPENCLAW_DIR / "setup.sh").read_text()
        result = client.exec(
            name,
            ["bash", "-c", script, "clawdirector-setup", settings.OPENCLAW_NODE_VERSION, settings.OPENCLAW_VERSION],
            timeout=SETUP_TIMEOUT_SECONDS,
        )
        _check_exec(result, "OpenClaw set-up script")
        row.save(update_fields=["updated_at"])

        _check_stream(client.put_service(name, GATEWAY_SERVICE, **gateway_service(setup_token)),
                      "Starting the gateway service")
        wait = (
            f"for i in $(seq 1 {STARTUP_WAIT_SECONDS}); do "
            f"/usr/bin/curl -fsS -o /dev/null http://127.0.0.1:$1/startupz && exit 0; sleep 1; done; exit 1"
        )
        result = client.exec(name, ["bash", "-c", wait, "clawdirector-wait", str(settings.OPENCLAW_GATEWAY_PORT)],
                             timeout=STARTUP_WAIT_SECONDS + 30)
        _check_exec(result, "Waiting for the gateway's /startupz")

        # Everything not allowed is denied (a compromised gateway reaches only these).
        rules = [{"domain": d, "action": "allow"} for d in settings.SPRITE_NETWORK_ALLOW]
        client.set_network_policy(name, rules + [{"domain": "*", "action": "deny"}])

        row.golden_checkpoint_id = client.create_checkpoint(name, comment=GOLDEN_COMMENT)
        row.save(update_fields=["golden_checkpoint_id", "updated_at"])
        if row.user_id is None:
            # A pool sprite waits asleep; provisioning restarts the gateway with a new token.
            client.stop_service(name, GATEWAY_SERVICE)
    finally:
        if row.sprite_id:
            _bill_active(sprite=row, cause=cause, kind="setup", started_at=started, finished_at=timezone.now())
        logger.info("Set-up of sprite %s took %d ms", row.sprite_name, _ms_since(t0))


def _activate(row: UserSprite, *, restore: bool) -> None:
    """Give the row's sprite a fresh gateway token and (re)start the gateway with it.
    Restore first when the sprite was used before (a pool sprite: its golden checkpoint)."""
    client = get_client()
    token = new_gateway_token()
    if restore:
        client.restore_checkpoint(row.sprite_name, row.golden_checkpoint_id)
    client.write_file(row.sprite_name, CONFIG_PATH, render_config(token=token, sprite_url=row.sprite_url),
                      mode="0600")
    # PUT replaces the definition and starts the service with the new environment.
    _check_stream(client.put_service(row.sprite_name, GATEWAY_SERVICE, **gateway_service(token)),
                  "Starting the gateway service")
    now = timezone.now()
    row.gateway_url = row.sprite_url
    row.gateway_token = token
    row.status = Status.ONLINE
    row.vm_state = UserSprite.VMState.RUNNING
    row.vm_state_checked_at = now
    row.assigned_at = row.assigned_at or now
    # Never a full save: the ledger totals on the row are kept by record_usage's UPDATEs.
    row.save(update_fields=["gateway_url", "gateway_token", "status", "vm_state", "vm_state_checked_at",
                            "assigned_at", "updated_at"])


def run_provisioning(*, sprite_pk: int) -> UserSprite:
    """Bring a `provisioning` row to `ready` (pool) or `online` (a user's): set it up unless
    it already has its golden checkpoint, then, for a user's row, activate it. Resumable: a
    crashed or failed attempt is picked up where it stopped. Used by the background thread,
    `resume_stuck_provisioning` and `fill_pool`."""
    row = UserSprite.objects.get(pk=sprite_pk)
    if row.status != Status.PROVISIONING:
        return row
    started = time.monotonic()
    had_checkpoint = bool(row.golden_checkpoint_id)
    action = "pool_setup" if row.user_id is None else "provision"
    try:
        if not had_checkpoint:
            _set_up(row)
        if row.user_id is None:
            row.status = Status.READY
            row.save(update_fields=["status", "updated_at"])
        else:
            bill_start = timezone.now()
            try:
                _activate(row, restore=had_checkpoint)
            finally:
                _bill_active(sprite=row, cause=UsageRecord.Cause.PROVISIONING, kind="provisioning",
                             started_at=bill_start, finished_at=timezone.now())
    except (SpritesError, SpriteActionError) as exc:
        if row.user_id is None and not getattr(exc, "permanent", True):
            # A pool row on a transient failure stays `provisioning`: resume_stuck_provisioning
            # retries the same row later, so an outage never piles up half-made sprites.
            _fail(row, action=action, actor=None, exc=exc, started=started)
        else:
            # A user's row goes to `error`: the status endpoint shows why, and their next
            # provision request retries it (see provision_sprite).
            _fail(row, action=action, actor=None, exc=exc, started=started, status=Status.ERROR)
        logger.warning("Provisioning of sprite %s failed: %s", row.sprite_name, exc)
        return row
    row.refresh_from_db(fields=["total_cost_usd", "total_runtime_seconds"])
    log_event(sprite=row, action=action, detail="ready" if row.user_id is None else "online",
              duration_ms=_ms_since(started))
    return row


def _in_background(sprite_pk: int) -> None:
    """Run `run_provisioning` in a daemon thread after the current transaction commits (there
    is no task queue in the stack). The thread has its own DB connection, closed at the end.
    SPRITES_PROVISION_IN_BACKGROUND=False runs it inline (tests)."""
    if not settings.SPRITES_PROVISION_IN_BACKGROUND:
        run_provisioning(sprite_pk=sprite_pk)
        return

    def work():
        try:
            run_provisioning(sprite_pk=sprite_pk)
        except Exception:  # a bug: the row stays `provisioning` and is resumed later
            logger.exception("Background provisioning of sprite row %s crashed", sprite_pk)
        finally:
            connections.close_all()

    transaction.on_commit(
        lambda: threading.Thread(target=work, name=f"provision-{sprite_pk}", daemon=True).start()
    )


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
        won = UserSprite.objects.filter(pk=pk, status=Status.PROVISIONING, updated_at=updated_at).update(
            updated_at=timezone.now()
        )
        if won:
            resumed += 1
            run_provisioning(sprite_pk=pk)
    return resumed


class _pool_lock:
    """Serialises the pool count-and-reserve step. PostgreSQL: a transaction-level advisory
    lock (released at commit, held for two queries, never across HTTP). SQLite (dev only, one
    process): a thread lock."""

    KEY = 0x636C6177  # "claw"

    def __enter__(self):
        self.atomic = transaction.atomic()
        if connection.vendor == "postgresql":
            self.atomic.__enter__()
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [self.KEY])
        else:
            _pool_lock_local.acquire()
            self.atomic.__enter__()

    def __exit__(self, *exc):
        try:
            return self.atomic.__exit__(*exc)
        finally:
            if connection.vendor != "postgresql":
                _pool_lock_local.release()


def fill_pool(*, target: int | None = None) -> int:
    """Top the warm pool up to `target` (default SPRITE_POOL_SIZE) set-up sprites and return
    how many were created. Rows being set up count as pool members, and the count-and-reserve
    step is serialised, so two fills running at once never overfill. Resumes stuck set-ups
    first. Runs the set-ups inline: minutes against the real API."""
    target = settings.SPRITE_POOL_SIZE if target is None else target
    resume_stuck_provisioning()
    with _pool_lock():
        in_pool = UserSprite.objects.filter(user__isnull=True, status__in=[Status.READY, Status.PROVISIONING]).count()
        rows = [
            UserSprite.objects.create(user=None, status=Status.PROVISIONING, sprite_name=new_sprite_name())
            for _ in range(max(target - in_pool, 0))
        ]
    created = 0
    for row in rows:
        if run_provisioning(sprite_pk=row.pk).status == Status.READY:
            created += 1
    return created


# --- Provisioning a user ----------------------------------------------------------------------


def _live_sprite(user) -> UserSprite | None:
    return UserSprite.objects.filter(user=user).exclude(status=Status.DESTROYED).first()


def _claim_pool_sprite(user) -> UserSprite | None:
    """Assign one ready pool sprite to `user`, atomically, or return None if the pool is empty.

    Two users never get the same sprite: the UPDATE is conditional on the row still being an
    unassigned `ready` one (and on PostgreSQL the candidate is picked with SKIP LOCKED, so
    concurrent claims take different rows instead of queueing). One user never gets two: the
    partial unique constraint `one_live_sprite_per_user` makes a second claim fail with
    IntegrityError, which the caller turns into "existing".
    """
    for _ in range(5):
        with transaction.atomic():
            candidate = (
                UserSprite.objects.select_for_update(skip_locked=True)
                .filter(user__isnull=True, status=Status.READY)
                .exclude(golden_checkpoint_id="")
                .order_by("created_at", "pk")
                .values_list("pk", flat=True)
                .first()
            )
            if candidate is None:
                return None
            now = timezone.now()
            won = UserSprite.objects.filter(pk=candidate, user__isnull=True, status=Status.READY).update(
                user=user, status=Status.PROVISIONING, assigned_at=now, updated_at=now
            )
        if won:
            return UserSprite.objects.get(pk=candidate)
    return None  # lost five races in a row: treat as empty, the caller builds a new sprite


def provision_sprite(*, user) -> tuple[UserSprite, str]:
    """The user's sprite, and how it came: "existing" (they had one; idempotent), "ready"
    (claimed from the warm pool and online now) or "provisioning" (the pool was empty: a new
    sprite is being set up in the background; the status endpoint shows progress or failure).

    A Sprites failure while activating a claimed pool sprite is COMPENSATED, not rolled
    forward: the sprite is unassigned again (back to `ready` on a transient failure, since
    the next claim restores its golden checkpoint and overwrites the token anyway; to `error`
    on a permanent one, so nobody claims a broken sprite), the user is left with no sprite,
    and the error is raised so they can simply ask again.
    """
    existing = _live_sprite(user)
    if existing is not None:
        if existing.status == Status.ERROR:
            return _retry_failed(existing)
        return existing, "existing"

    started, t0 = timezone.now(), time.monotonic()
    try:
        row = _claim_pool_sprite(user)
    except IntegrityError:  # a concurrent request of the same user claimed one first
        return _after_lost_race(user)

    if row is None:
        try:
            with transaction.atomic():
                row = UserSprite.objects.create(user=user, status=Status.PROVISIONING, sprite_name=new_sprite_name())
        except IntegrityError:
            return _after_lost_race(user)
        log_event(sprite=row, action="provision", actor=user, detail="pool empty: setting up a new sprite")
        _in_background(row.pk)
        row.refresh_from_db()
        return row, "provisioning"

    try:
        _activate(row, restore=True)
    except SpritesError as exc:
        back_to = Status.READY if not exc.permanent else Status.ERROR
        row.record_error(f"provision: {exc}")
        UserSprite.objects.filter(pk=row.pk).update(
            user=None, status=back_to, assigned_at=None, gateway_token="", gateway_url="",
            last_error=row.last_error, last_error_at=row.last_error_at, updated_at=timezone.now(),
        )
        row.refresh_from_db()
        log_event(sprite=row, action="provision", actor=user, outcome=LifecycleEvent.Outcome.FAILED,
                  detail=f"returned to the pool as {back_to}: {exc}", duration_ms=_ms_since(t0))
        raise
    finally:
        _bill_active(sprite=row, cause=UsageRecord.Cause.PROVISIONING, kind="provisioning",
                     started_at=started, finished_at=timezone.now())
    row.refresh_from_db(fields=["total_cost_usd", "total_runtime_seconds"])
    log_event(sprite=row, action="provision", actor=user, detail="from the warm pool", duration_ms=_ms_since(t0))
    return row, "ready"


def _after_lost_race(user) -> tuple[UserSprite, str]:
    existing = _live_sprite(user)
    if existing is None:  # the winner failed and was compensated in the meantime: start over
        return provision_sprite(user=user)
    return existing, "existing"


def _retry_failed(row: UserSprite) -> tuple[UserSprite, str]:
    """A user whose set-up failed asks again: resume it (one retry at a time)."""
    won = UserSprite.objects.filter(pk=row.pk, status=Status.ERROR).update(
        status=Status.PROVISIONING, updated_at=timezone.now()
    )
    if won:
        log_event(sprite=row, action="provision", actor=row.user, detail="retrying the failed set-up")
        _in_background(row.pk)
        row.refresh_from_db()
        return row, "provisioning"
    row.refresh_from_db()
    return row, "existing"


# --- Actions on a user's sprite ----------------------------------------------------------------


def start_sprite(*, sprite: UserSprite, actor=None) -> UserSprite:
    """Start the gateway service (which wakes the sprite). Billed: the start's wall time plus
    the idle tail, cause `user_start` (or `staff` when staff start someone else's)."""
    _require(sprite, LIVE_STATUSES, "start")
    started, t0 = timezone.now(), time.monotonic()
    try:
        try:
            events = get_client().start_service(sprite.sprite_name, GATEWAY_SERVICE,
                                                 duration=SERVICE_STREAM_DURATION)
            _check_stream(events, "Starting the gateway service")
        finally:
            _bill_active(sprite=sprite, cause=_cause_for(sprite, actor, UsageRecord.Cause.USER_START),
                         kind="start", started_at=started, finished_at=timezone.now())
    except SpritesError as exc:
        _fail(sprite, action="start", actor=actor, exc=exc, started=t0)
        raise
    sprite.refresh_from_db(fields=["total_cost_usd", "total_runtime_seconds"])
    sprite.status = Status.ONLINE
    sprite.vm_state = UserSprite.VMState.RUNNING
    sprite.vm_state_checked_at = timezone.now()
    sprite.save(update_fields=["status", "vm_state", "vm_state_checked_at", "updated_at"])
    log_event(sprite=sprite, action="start", actor=actor, duration_ms=_ms_since(t0))
    return sprite


def stop_sprite(*, sprite: UserSprite, actor=None) -> UserSprite:
    """Stop the gateway service; the sprite sleeps on its own after the idle window. The
    status is `stopped` (the user's intent) until someone starts it again."""
    _require(sprite, LIVE_STATUSES, "stop")
    t0 = time.monotonic()
    try:
        get_client().stop_service(sprite.sprite_name, GATEWAY_SERVICE)
    except SpritesError as exc:
        _fail(sprite, action="stop", actor=actor, exc=exc, started=t0)
        raise
    sprite.status = Status.STOPPED
    sprite.save(update_fields=["status", "updated_at"])
    log_event(sprite=sprite, action="stop", actor=actor, duration_ms=_ms_since(t0))
    return sprite


def refresh_status(*, sprite: UserSprite, actor=None) -> UserSprite:
    """Read the VM state from the API and map it onto the status (`status_for_vm_state`).
    Rows with no sprite behind them yet (or any more) are returned untouched."""
    if sprite.status in (Status.PROVISIONING, Status.DESTROYED) or not sprite.sprite_id:
        return sprite
    t0 = time.monotonic()
    try:
        info = get_client().get_sprite(sprite.sprite_name)
    except SpriteNotFound as exc:
        _fail(sprite, action="refresh", actor=actor, exc=exc, started=t0,
              vm_state=UserSprite.VMState.UNKNOWN, vm_state_checked_at=timezone.now())
        raise
    except SpritesError as exc:
        _fail(sprite, action="refresh", actor=actor, exc=exc, started=t0)
        raise
    vm_state = info.status if info.status in UserSprite.VMState.values else UserSprite.VMState.UNKNOWN
    sprite.vm_state = vm_state
    sprite.vm_state_checked_at = timezone.now()
    sprite.status = status_for_vm_state(sprite.status, vm_state)
    sprite.save(update_fields=["vm_state", "vm_state_checked_at", "status", "updated_at"])
    return sprite


def rotate_gateway_token(*, sprite: UserSprite, actor=None) -> UserSprite:
    """A new token in the config and the service environment, and a gateway restart (any
    `gateway.*` change needs one; PUT restarts it). The old token stops working. A sprite the
    user stopped stays stopped.

    Ordering: the row keeps the old token until the service runs with the new one, so on a
    failure the stored token is still the one the running gateway accepts."""
    _require(sprite, LIVE_STATUSES, "rotate the token of")
    client, t0 = get_client(), time.monotonic()
    token = new_gateway_token()
    try:
        client.write_file(sprite.sprite_name, CONFIG_PATH, render_config(token=token, sprite_url=sprite.sprite_url),
                          mode="0600")
        _check_stream(client.put_service(sprite.sprite_name, GATEWAY_SERVICE, **gateway_service(token)),
                      "Restarting the gateway service")
        sprite.gateway_token = token
        sprite.save(update_fields=["gateway_token", "updated_at"])
        if sprite.status == Status.STOPPED:
            client.stop_service(sprite.sprite_name, GATEWAY_SERVICE)
    except SpritesError as exc:
        _fail(sprite, action="rotate_token", actor=actor, exc=exc, started=t0)
        raise
    log_event(sprite=sprite, action="rotate_token", actor=actor, duration_ms=_ms_since(t0))
    return sprite


def destroy_sprite(*, sprite: UserSprite, actor) -> UserSprite:
    """Staff only: delete the sprite at Sprites (which deletes its checkpoints). The row stays,
    as `destroyed`, with its ledger; the user may provision a new one."""
    if actor is None or not actor.is_staff:
        raise SpriteActionError("Only staff can destroy a sprite.", code="permission_denied")
    _require(sprite, [s for s in Status.values if s != Status.DESTROYED], "destroy")
    t0 = time.monotonic()
    try:
        get_client().delete_sprite(sprite.sprite_name)  # already gone counts as done
    except SpritesError as exc:
        _fail(sprite, action="destroy", actor=actor, exc=exc, started=t0)
        raise
    sprite.status = Status.DESTROYED
    sprite.destroyed_at = timezone.now()
    sprite.gateway_token = ""
    sprite.vm_state = UserSprite.VMState.UNKNOWN
    sprite.save(update_fields=["status", "destroyed_at", "gateway_token", "vm_state", "updated_at"])
    log_event(sprite=sprite, action="destroy", actor=actor, duration_ms=_ms_since(t0))
    return sprite


# --- Connecting a browser: device pairing and dashboard links (exec of the OpenClaw CLI) -----


def _openclaw(sprite: UserSprite, args: list[str], *, action: str, verb: str, actor,
              check: bool = True) -> ExecResult:
    """Run the OpenClaw CLI in the sprite. argv is a list: nothing is ever parsed by a shell.
    Billed for its wall time only (no idle tail: a frontend polling the device list while a
    browser pairs would otherwise bill 30 s per poll). With `check`, a non-zero exit is
    recorded on the row and raised as CommandFailed."""
    if sprite.status not in (Status.ONLINE, Status.SLEEPING):
        raise SpriteActionError(f"Cannot {verb} a sprite that is {sprite.status}; start it first.")
    started, t0 = timezone.now(), time.monotonic()
    try:
        try:
            result = get_client().exec(sprite.sprite_name, [OPENCLAW_BIN, *args], timeout=60)
        finally:
            _bill_active(sprite=sprite, cause=_cause_for(sprite, actor, UsageRecord.Cause.USER_START),
                         kind=action, started_at=started, finished_at=timezone.now(), idle_tail=False)
        if check:
            _check_exec(result, f"openclaw {' '.join(args[:2])}")
    except (SpritesError, CommandFailed) as exc:
        _fail(sprite, action=action, actor=actor, exc=exc, started=t0)
        raise
    return result


def _json_output(result: ExecResult, what: str):
    try:
        return json.loads(result.text)
    except ValueError:
        raise CommandFailed(f"{what} answered something that is not JSON") from None


def list_pairing_requests(*, sprite: UserSprite) -> list[dict]:
    """The gateway's pending device pairing requests (`openclaw devices list --json`)."""
    result = _openclaw(sprite, ["devices", "list", "--json"], action="list_devices",
                       verb="list the pairing requests of", actor=sprite.user)
    data = _json_output(result, "openclaw devices list")
    pending = data.get("pending") if isinstance(data, dict) else data
    if not isinstance(pending, list):
        raise CommandFailed("openclaw devices list answered an unexpected shape")
    return [{k: item[k] for k in PAIRING_FIELDS if k in item} for item in pending if isinstance(item, dict)]


def approve_pairing_request(*, sprite: UserSprite, request_id: str, actor=None) -> dict:
    """Approve one pending pairing request (`openclaw devices approve <requestId>`)."""
    if not isinstance(request_id, str) or not SAFE_REQUEST_ID.match(request_id):
        raise SpriteActionError("Not a valid pairing request id.", code="invalid_request_id")
    t0 = time.monotonic()
    result = _openclaw(sprite, ["devices", "approve", request_id, "--json"], action="approve_device",
                       verb="approve a device on", actor=actor, check=False)
    if not result.ok:
        if "unknown requestid" in result.tail(500).lower():
            raise PairingRequestNotFound("No pending pairing request with that id.")
        exc = CommandFailed(f"openclaw devices approve exited with code {result.exit_code}")
        _fail(sprite, action="approve_device", actor=actor, exc=exc, started=t0)
        raise exc
    data = _json_output(result, "openclaw devices approve")
    device = data.get("device") if isinstance(data, dict) else None
    approved = {
        "requestId": request_id,
        "deviceId": (device or {}).get("deviceId", ""),
        "displayName": (device or {}).get("displayName", ""),
    }
    log_event(sprite=sprite, action="approve_device", actor=actor,
              detail=f"request {request_id}, device {approved['deviceId'][:16]}", duration_ms=_ms_since(t0))
    return approved


def create_dashboard_link(*, sprite: UserSprite, actor=None) -> dict:
    """OpenClaw's single-use, 10-minute browser link (`openclaw dashboard --json`): the
    browser connects without the frontend ever holding the shared gateway token."""
    t0 = time.monotonic()
    result = _openclaw(sprite, ["dashboard", "--json"], action="dashboard_link",
                       verb="make a dashboard link for", actor=actor)
    data = _json_output(result, "openclaw dashboard")
    url = data.get("browserUrl") if isinstance(data, dict) else None
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise CommandFailed("openclaw dashboard answered no browser URL")
    expires_ms = data.get("expiresAtMs")
    expires_at = None
    if isinstance(expires_ms, (int, float)):
        expires_at = datetime.fromtimestamp(expires_ms / 1000, tz=dt_timezone.utc)
    log_event(sprite=sprite, action="dashboard_link", actor=actor, duration_ms=_ms_since(t0))
    return {"url": url, "expires_at": expires_at}
