"""Durable background work: django-tasks tasks stored in the project's database and run by
`manage.py worker` (sprites/worker.py), never by a thread of the web process.

- `set_up_sprite`: brings one `provisioning` row to `ready` (pool) or `online` (a user's).
  Idempotent (`run_provisioning` resumes where an attempt stopped and does nothing to a row
  that is no longer `provisioning`), keyed by sprite (one queued or running task per sprite,
  and a PostgreSQL advisory lock per sprite while it runs, so two never run at once),
  retried with exponential backoff on transient Sprites errors, at most
  SPRITE_SETUP_CONCURRENCY at once across all workers. A user's set-up goes before the pool's.
  The org's running cap being full is waited out (`_wait_for_slot`), not counted as a try.
- `run_sprite_action`: one console bulk action on one sprite (start, stop, refresh, rotate,
  destroy); a bulk action enqueues one per sprite under a batch id the console follows.
- `reconcile_fleet`: the console's "reconcile now" (services/reconcile.py).
- `verify_gateway_task`: the end-to-end gateway check after a start (services/verify.py).

Django 6: `django_tasks` becomes `django.tasks` (the imports below and in sprites/worker.py).
"""

import contextlib
import functools
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from django_tasks import task

from sprites.client import SpritesCapacityExceeded, SpritesError
from sprites.logcontext import sprite_context
from sprites.models import UserSprite

from . import heal, lifecycle, provisioning
from .errors import SpriteActionError
from .events import log_event

logger = logging.getLogger(__name__)

Status = UserSprite.Status
USER_PRIORITY, POOL_PRIORITY = 10, 0  # a waiting user before a pool refill
SPRITE_LOCK_NS = 0x73707274  # "sprt": advisory-lock namespaces (two-int form)
SLOT_LOCK_NS = 0x736C6F74  # "slot"
SLOT_WAIT_SECONDS = 2.0
SLOT_WAIT_MAX_SECONDS = 60.0  # the longest a full running cap's Retry-After is taken at its word
LIVE = ("READY", "RUNNING")


# --- enqueueing ----------------------------------------------------------------------------------


def _queue_rows():
    """The database backend's rows, or None on a backend that keeps none (immediate, tests)."""
    from django_tasks_db.backend import DatabaseBackend
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects if isinstance(set_up_sprite.get_backend(), DatabaseBackend) else None


def live_setup_exists(sprite_pk: int, *, other_than=None) -> bool:
    """Is a set-up of this sprite queued or running (other than the task `other_than`)?"""
    rows = _queue_rows()
    if rows is None:
        return False
    found = rows.filter(task_path=set_up_sprite.module_path, status__in=LIVE, args_kwargs__kwargs__sprite_pk=sprite_pk)
    if other_than is not None:
        found = found.exclude(id=other_than)
    return found.exists()


def enqueue_setup(sprite_pk: int, *, for_user: bool, attempt: int = 1, delay: float = 0.0,
                  replacing=None, waiting_since: float | None = None) -> bool:
    """Queue the set-up of a `provisioning` row unless one is already queued or running;
    True if queued. `replacing`: the id of the task that queues its own follow-up;
    `waiting_since`: when it began to wait for a running slot (a Unix time)."""
    if live_setup_exists(sprite_pk, other_than=replacing):
        return False
    work = set_up_sprite.using(priority=USER_PRIORITY if for_user else POOL_PRIORITY)
    if delay and work.get_backend().supports_defer:
        work = work.using(run_after=timezone.now() + timedelta(seconds=delay))
    extra = {} if waiting_since is None else {"waiting_since": waiting_since}
    work.enqueue(sprite_pk=sprite_pk, attempt=attempt, **extra)
    return True


def _can_defer() -> bool:
    return set_up_sprite.get_backend().supports_defer


# --- locks (PostgreSQL advisory locks on the worker's session; none on SQLite) ----------------------


@contextlib.contextmanager
def _advisory(namespace: int, key: int):
    """Yield True if this session took the lock (released on exit, or when the worker's
    session ends: a killed worker frees it at once)."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [namespace, key])
        taken = cursor.fetchone()[0]
    try:
        yield taken
    finally:
        if taken:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [namespace, key])


@contextlib.contextmanager
def _setup_slot():
    """One of SPRITE_SETUP_CONCURRENCY slots shared by every worker; yields False if all busy."""
    for slot in range(settings.SPRITE_SETUP_CONCURRENCY):
        with _advisory(SLOT_LOCK_NS, slot) as taken:
            if taken:
                yield True
                return
    yield False


# --- the tasks -------------------------------------------------------------------------------------


@task(queue_name="setup", takes_context=True)
def set_up_sprite(context, sprite_pk: int, attempt: int = 1, waiting_since: float | None = None) -> str:
    """Set up one sprite (see the module docstring); returns what happened, for the task list."""
    me = context.task_result.id
    for_user = context.task_result.task.priority >= USER_PRIORITY
    follow_up = functools.partial(enqueue_setup, sprite_pk, for_user=for_user, replacing=me)
    with _advisory(SPRITE_LOCK_NS, sprite_pk) as mine:
        if not mine:
            return "skipped: another worker is setting this sprite up"
        with _setup_slot() as slot:
            if not slot:
                follow_up(attempt=attempt, delay=SLOT_WAIT_SECONDS, waiting_since=waiting_since)
                return "deferred: every set-up slot is busy"
            final = attempt >= settings.SPRITE_SETUP_ATTEMPTS or not _can_defer()
            waited = time.time() - waiting_since if waiting_since else 0.0
            may_wait = _can_defer() and waited < settings.SPRITE_SETUP_SLOT_WAIT_SECONDS
            try:
                row = provisioning.run_provisioning(sprite_pk=sprite_pk, retry_transient=not final,
                                                    wait_for_slot=may_wait)
            except SpritesCapacityExceeded as exc:
                return _wait_for_slot(exc, sprite_pk, follow_up, attempt=attempt, waiting_since=waiting_since)
    if row.status == Status.PROVISIONING and not final:
        delay = settings.SPRITE_SETUP_RETRY_SECONDS * 2 ** (attempt - 1)
        follow_up(attempt=attempt + 1, delay=delay)
        return f"attempt {attempt} failed ({row.last_error}); retrying in {delay:g} s"
    return f"{row.status}" + (f": {row.last_error}" if row.status in (Status.ERROR, Status.PROVISIONING) else "")


def _wait_for_slot(exc: SpritesCapacityExceeded, sprite_pk: int, follow_up, *, attempt: int,
                   waiting_since: float | None) -> str:
    """The org's running cap is full: the call that met it woke nothing, and the steps already
    done are kept (the set-up resumes), so this costs no attempt. Try again after the API's
    Retry-After (within SLOT_WAIT_SECONDS..SLOT_WAIT_MAX_SECONDS), for up to SPRITE_SETUP_SLOT_WAIT_SECONDS;
    past that the 429 counts as any transient failure."""
    delay = min(max(exc.retry_after or SLOT_WAIT_SECONDS, SLOT_WAIT_SECONDS), SLOT_WAIT_MAX_SECONDS)
    if waiting_since is None:
        log_event(sprite=UserSprite.objects.get(pk=sprite_pk), action="setup_waiting",
                  detail="every running slot of the Sprites org is taken: the set-up waits for one")
    follow_up(attempt=attempt, delay=delay, waiting_since=waiting_since or time.time())
    return f"deferred: every running slot of the Sprites org is taken; trying again in {delay:g} s"


SPRITE_ACTIONS = {
    "start": lifecycle.start_sprite,
    "stop": lifecycle.stop_sprite,
    "refresh": lifecycle.refresh_status,
    "rotate_token": lifecycle.rotate_gateway_token,
    "destroy": lifecycle.destroy_sprite,
    # A spent budget (sprites/services/budgets.py): stop the gateway, and start it again later.
    "budget_stop": lifecycle.suspend_for_budget,
    "budget_restore": lifecycle.restore_after_budget,
    "restore_golden": heal.restore_golden,  # staff confirmed it: it replaces the user's data
}


class ActionFailed(Exception):
    """A console action failed on its sprite: the task fails with this message."""


@task()
def run_sprite_action(action: str, sprite_pk: int, actor_pk: int | None = None, batch: str = "") -> str:
    """One console bulk action on one sprite, as staff `actor_pk`. `batch` groups the tasks of
    one click, for the console's progress page."""
    sprite = UserSprite.objects.get(pk=sprite_pk)
    actor = get_user_model().objects.filter(pk=actor_pk).first() if actor_pk else None
    with sprite_context(sprite.public_id), _advisory(SPRITE_LOCK_NS, sprite_pk) as mine:
        if not mine:
            raise ActionFailed(f"{sprite.sprite_name}: busy (being set up or acted on); try again")
        try:
            SPRITE_ACTIONS[action](sprite=sprite, actor=actor)
        except (SpritesError, SpriteActionError) as exc:
            raise ActionFailed(f"{sprite.sprite_name}: {exc}") from exc
    return f"{sprite.sprite_name}: done"


@task()
def reconcile_model_spend() -> str:
    """Each LiteLLM key's spend (`/key/info`, one call per key) into the ledger as adjustment
    rows (`sprites.modelaccess.reconcile`). Queued about hourly by the heartbeat's housekeeping,
    so a fleet's worth of proxy calls runs on a worker, not inside a tick."""
    from sprites.modelaccess.reconcile import reconcile

    booked = reconcile()
    return f"{len(booked)} adjustment row(s), {sum((u.cost_usd for u in booked), start=0)} USD"


@task()
def reconcile_fleet(apply: bool = True, actor_pk: int | None = None) -> dict:
    """The console's "reconcile now": a full reconciliation as staff `actor_pk` (every rule,
    orphans destroyed after their grace); returns the run's id and summary."""
    from .reconcile import reconcile

    actor = get_user_model().objects.filter(pk=actor_pk).first() if actor_pk else None
    run = reconcile(apply=apply, trigger="staff", actor=actor)
    return {"run": run.pk, "summary": run.summary(), "error": run.error}


@task()
def verify_gateway_task(sprite_pk: int) -> str:
    """After a start: wait for the gateway through its sprite URL and record the check."""
    from .verify import verify_started

    return verify_started(sprite_pk)
