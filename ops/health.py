"""Readiness: can this instance do its job right now? Five checks, each answered on its own.

- `database`: a connection and `SELECT 1`;
- `migrations`: nothing in the code's migration graph is unapplied (true once, then cached for
  the life of the process: applied migrations do not come undone);
- `heartbeat`: the newest scheduled sweep (not a dry run, not a staff "run now") started less
  than 3 × HEARTBEAT_INTERVAL_MINUTES ago; none at all is a failure too (nothing wakes the fleet);
- `tasks`: the task queue's oldest due task (set-ups, pool refills, console actions) has
  waited less than TASK_QUEUE_ALERT_SECONDS: a worker is taking them (docs/operations.md
  "The task worker");
- `sprites_api`: one authenticated call answered (`GET /v1/sprites?max_results=1`, no retry,
  3 s), remembered for `SPRITES_CHECK_TTL` seconds so probes do not become API traffic.

The details are short and public-safe (`/readyz` needs no credentials): an exception's class or
an error kind, an age; never a host, a user name, an error message from upstream or a secret.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from heartbeat.models import HeartbeatRun
from sprites import notify, services
from sprites.worker import oldest_waiting

logger = logging.getLogger(__name__)
SPRITES_CHECK_TTL = 30.0
HEARTBEAT_INTERVALS = 3


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def readiness() -> list[Check]:
    """Every check, in a fixed order. Later database checks are skipped once the database fails."""
    database = _database()
    if database.ok:
        rest = [_migrations(), _heartbeat(), _tasks()]
    else:
        rest = [Check("migrations", False, "not checked: no database"),
                Check("heartbeat", False, "not checked: no database"),
                Check("tasks", False, "not checked: no database")]
    return [database, *rest, _sprites_api()]


def _database() -> Check:
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure is "not ready", with its class
        connection.close()  # a broken persistent connection: the next probe starts afresh
        return Check("database", False, f"unreachable ({type(exc).__name__})")
    return Check("database", True, "ok")


_migrated = False


def _migrations() -> Check:
    global _migrated
    if not _migrated:
        try:
            executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
            pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except Exception as exc:  # noqa: BLE001
            return Check("migrations", False, f"not readable ({type(exc).__name__})")
        if pending:
            return Check("migrations", False, f"{len(pending)} not applied: run `manage.py migrate`")
        _migrated = True
    return Check("migrations", True, "ok")


def _heartbeat() -> Check:
    limit = HEARTBEAT_INTERVALS * timedelta(minutes=settings.HEARTBEAT_INTERVAL_MINUTES)
    try:
        started = (
            HeartbeatRun.objects.filter(dry_run=False).exclude(trigger=HeartbeatRun.Trigger.STAFF)
            .order_by("-started_at").values_list("started_at", flat=True).first()
        )
    except Exception as exc:  # noqa: BLE001
        return Check("heartbeat", False, f"not readable ({type(exc).__name__})")
    if started is None:
        return Check("heartbeat", False, "no sweep has run yet")
    age = timezone.now() - started
    minutes = max(age.total_seconds(), 0) / 60
    if age > limit:
        check = Check("heartbeat", False, f"last sweep started {minutes:.0f} min ago (limit {limit.total_seconds() / 60:.0f})")
        try:
            notify.sweep_missed(last_started=started, detail=check.detail)  # once per gap (keyed by the last sweep)
        except Exception:  # noqa: BLE001 - a probe answers whatever happens
            logger.exception("Could not record the missed-sweep notification")
        return check
    return Check("heartbeat", True, f"last sweep started {minutes:.0f} min ago")


def _tasks() -> Check:
    try:
        queue = oldest_waiting()
    except Exception as exc:  # noqa: BLE001
        return Check("tasks", False, f"not readable ({type(exc).__name__})")
    if not queue["waiting"]:
        return Check("tasks", True, "none waiting")
    detail = f"{queue['waiting']} waiting, oldest {queue['oldest_seconds']:.0f} s"
    if queue["oldest_seconds"] > settings.TASK_QUEUE_ALERT_SECONDS:
        return Check("tasks", False, f"{detail} (limit {settings.TASK_QUEUE_ALERT_SECONDS}): is a worker running?")
    return Check("tasks", True, detail)


_api_lock = threading.Lock()
_api_cache: dict[str, tuple[float, Check]] = {}


def _sprites_api() -> Check:
    key = f"{settings.SPRITES_API_URL}|{hash(settings.SPRITES_API_TOKEN)}"
    with _api_lock:
        cached = _api_cache.get(key)
        if cached and time.monotonic() - cached[0] < SPRITES_CHECK_TTL:
            return cached[1]
    t0 = time.monotonic()
    kind = services.sprites_api_problem(timeout=3.0)
    check = Check("sprites_api", True, f"answered in {(time.monotonic() - t0) * 1000:.0f} ms") if not kind \
        else Check("sprites_api", False, kind)
    with _api_lock:
        _api_cache.clear()
        _api_cache[key] = (time.monotonic(), check)
    return check


def forget() -> None:
    """Drop what the checks remember (tests; a settings change)."""
    global _migrated
    _migrated = False
    with _api_lock:
        _api_cache.clear()
