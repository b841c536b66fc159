"""The warm pool: set-up, checkpointed sprites waiting for a user (see provisioning)."""

import threading

from django.conf import settings
from django.db import connection, transaction

from sprites.models import UserSprite

from .provisioning import new_sprite_name, resume_stuck_provisioning

Status = UserSprite.Status
_pool_lock_local = threading.Lock()


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
    """Top the warm pool up to `target` (default SPRITE_POOL_SIZE) set-up sprites: reserve the
    missing rows and queue one set-up task each (the worker runs them, SPRITE_SETUP_CONCURRENCY
    at once, after any user's set-up); returns how many were queued. Rows being set up count as
    pool members, and the count-and-reserve step is serialised, so two fills running at once
    never overfill. Queues stuck set-ups again first. Returns at once: the set-ups take minutes
    against the real API, and run on the immediate backend (tests) before this returns."""
    from .tasks import enqueue_setup

    target = settings.SPRITE_POOL_SIZE if target is None else target
    resume_stuck_provisioning()
    with _pool_lock():
        in_pool = UserSprite.objects.filter(user__isnull=True, status__in=[Status.READY, Status.PROVISIONING]).count()
        rows = [
            UserSprite.objects.create(user=None, status=Status.PROVISIONING, sprite_name=new_sprite_name())
            for _ in range(max(target - in_pool, 0))
        ]
    for row in rows:
        enqueue_setup(row.pk, for_user=False)
    return len(rows)
