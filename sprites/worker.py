"""The task worker: django-tasks-db's `db_worker` loop, with a liveness lease per task.

django-tasks-db claims a task with `SELECT … FOR UPDATE SKIP LOCKED` and marks it RUNNING,
but nothing notices when the worker that claimed it dies: the row stays RUNNING forever. So
each claim here also takes a PostgreSQL session advisory lock keyed by the task (the task's
own heartbeat: the lock lives exactly as long as the worker's database session, and the
server drops it the moment the process dies and its socket closes). Every worker looks, every
`TASK_REAP_SECONDS`, for RUNNING tasks whose lock it can take: their worker is gone, and the
task goes back to READY for the next worker, seconds after the death instead of after a
stuck-timeout. A task claimed `TASK_MAX_CLAIMS` times (a task that kills its worker) fails
instead of looping. The session's TCP keepalives are set short, so a host that vanishes
without closing its sockets is noticed within about a minute too.

Needs a session, not a transaction-pooled connection (pgbouncer `pool_mode=session` or
direct). On SQLite (development, one host) there are no advisory locks: a worker resets the
RUNNING tasks of workers that no longer exist only at its start.

`manage.py worker --processes N` runs N of these loops, one per process (docs/operations.md).
"""

import logging
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import OperationalError, close_old_connections, connection
from django.utils import timezone
from django_tasks_db.management.commands.db_worker import Worker as DBWorker
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction, is_locked_database_exception

from sprites.services.metrics import persist_api_calls

logger = logging.getLogger(__name__)

READY, RUNNING, FAILED = "READY", "RUNNING", "FAILED"
TASK_LOCK_NS = 0x7461736B  # "task": advisory-lock namespace of running tasks (two-int form)


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def task_lock_key(task_id) -> int:
    """The task's lease key: a stable signed 32-bit number from its UUID."""
    return int.from_bytes(uuid.UUID(str(task_id)).bytes[:4], "big", signed=True)


def _try_lock(task_id) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [TASK_LOCK_NS, task_lock_key(task_id)])
        return cursor.fetchone()[0]


def _unlock(task_id) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [TASK_LOCK_NS, task_lock_key(task_id)])


def reap_dead_tasks() -> int:
    """Put RUNNING tasks whose worker is gone back to READY (or FAILED after TASK_MAX_CLAIMS
    claims); returns how many. Safe to run from any number of workers at once."""
    if not _postgres():
        return 0
    reaped = 0
    for task_id, worker_ids in DBTaskResult.objects.filter(status=RUNNING).values_list("id", "worker_ids"):
        if not _try_lock(task_id):
            continue  # its worker is alive and holds it
        try:
            reaped += _requeue(task_id, worker_ids)
        finally:
            _unlock(task_id)
    return reaped


def _requeue(task_id, worker_ids) -> int:
    running = DBTaskResult.objects.filter(id=task_id, status=RUNNING)
    if len(worker_ids) >= settings.TASK_MAX_CLAIMS:
        done = running.update(
            status=FAILED, finished_at=timezone.now(), exception_class_path="sprites.worker.WorkerDied",
            traceback=f"Its worker died {len(worker_ids)} times running it; not retried again.",
        )
        if done:
            logger.error("Task %s failed: its worker died %d times", task_id, len(worker_ids))
        return done
    done = running.update(status=READY)
    if done:
        logger.warning("Task %s: its worker (%s) died; queued again", task_id, worker_ids[-1] if worker_ids else "?")
    return done


def reset_orphans_sqlite() -> int:
    """SQLite only (development: one host, one worker process): at the worker's start, every
    RUNNING task belongs to a worker that is gone."""
    if _postgres():
        return 0
    return DBTaskResult.objects.filter(status=RUNNING).update(status=READY)


def oldest_waiting() -> dict:
    """For readiness probes and the console: how many tasks are due and how long the oldest
    has waited (seconds; 0 when none)."""
    now = timezone.now()
    due = DBTaskResult.objects.ready()
    first = due.order_by("enqueued_at").values_list("enqueued_at", "run_after").first()
    if first is None:
        return {"waiting": 0, "oldest_seconds": 0.0}
    enqueued, run_after = first
    since = max(enqueued, run_after) if run_after.year < 9999 else enqueued
    return {"waiting": due.count(), "oldest_seconds": max(0.0, round((now - since).total_seconds(), 1))}


def prune_finished() -> int:
    """Delete finished task results older than TASK_RESULT_RETENTION_DAYS (what
    `prune_db_task_results` does, run by the heartbeat's hourly housekeeping). Returns how many."""
    cutoff = timezone.now() - timedelta(days=settings.TASK_RESULT_RETENTION_DAYS)
    deleted, _ = DBTaskResult.objects.finished().filter(finished_at__lte=cutoff).delete()
    return deleted


class Worker(DBWorker):
    """One claim-run loop (a thread of `manage.py worker`). Same claim as db_worker, plus the
    lease lock taken in the claim's transaction, released when the task is recorded."""

    def run(self) -> None:
        next_reap = 0.0
        while self.running:
            if not connection.in_atomic_block:  # (in-process in a test's transaction: keep it)
                close_old_connections()
            if _postgres():
                self._keepalive()
            if time.monotonic() >= next_reap:
                reap_dead_tasks()
                next_reap = time.monotonic() + settings.TASK_REAP_SECONDS
            db_task = self._claim()
            if db_task is not None:
                try:
                    self.run_task(db_task)
                finally:
                    if _postgres():
                        _unlock(db_task.id)
                    persist_api_calls()  # this process's Sprites calls, for /metrics
            if self.batch and db_task is None:
                return
            if self.max_tasks is not None and self._run_tasks >= self.max_tasks:
                return
            if self.running and db_task is None:
                time.sleep(self.interval)

    def _claim(self) -> DBTaskResult | None:
        tasks = DBTaskResult.objects.ready().filter(backend_name=self.backend_name)
        if not self.process_all_queues:
            tasks = tasks.filter(queue_name__in=self.queue_names)
        if self.excluded_queue_names:
            tasks = tasks.exclude(queue_name__in=self.excluded_queue_names)
        try:
            # BEGIN EXCLUSIVE on SQLite (no row locks there), a plain transaction on PostgreSQL.
            with exclusive_transaction(tasks.db):
                db_task = tasks.get_locked()
                if db_task is None:
                    return None
                # Held from the claim's commit until the outcome is written: the task's heartbeat.
                if _postgres() and not _try_lock(db_task.id):
                    return None  # a reaper holds it this instant; next round
                db_task.claim(self.worker_id)
        except OperationalError as exc:
            if is_locked_database_exception(exc):  # SQLite busy: try again next round
                return None
            raise
        return db_task

    _keepalive_on = None

    def _keepalive(self) -> None:
        # Server-side TCP keepalives for this session: a host that disappears without closing
        # its socket is dropped (and its leases freed) in about a minute, not the OS's 2 hours.
        connection.ensure_connection()
        if self._keepalive_on is connection.connection:
            return
        with connection.cursor() as cursor:
            cursor.execute("SET tcp_keepalives_idle = 20")
            cursor.execute("SET tcp_keepalives_interval = 10")
            cursor.execute("SET tcp_keepalives_count = 3")
        self._keepalive_on = connection.connection


def run(*, worker_id: str, **options) -> Worker:
    """Run one worker loop in this process until it is told to stop (`worker.running = False`,
    which SIGTERM/SIGINT do through `Worker.configure_signals`)."""
    worker = Worker(worker_id=worker_id, **options)
    worker.configure_signals()
    worker.run()
    return worker
