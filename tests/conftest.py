"""The shared kit: personas (alice owns a sprite, bob is another user, staff), a real Sprites
emulator over HTTP, the mocked API's base URL, `make_sprite`, keyword ledger rows (`usage`)
and `assert_ledger_consistent`."""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Sum
from django.utils import timezone

from sprites import billing
from sprites.models import SpriteDailyCost, UsageRecord, UserSprite

API = "https://api.sprites.test/v1"  # what the `responses` mocks answer; never a real host


@pytest.fixture(autouse=True)
def _sprites_settings(settings):
    """Tests never reach a real Sprites API: fast retries, a fake token, no stray base URL."""
    settings.SPRITES_API_URL = "https://api.sprites.test"
    settings.SPRITES_API_TOKEN = "test-token"
    settings.SPRITES_BACKOFF_SECONDS = 0.001
    settings.SPRITES_MAX_RETRIES = 2
    settings.SPRITES_READ_TIMEOUT = 10
    settings.CRON_SECRET = "cron-secret-for-tests-0123456789abcdef"
    settings.SPRITE_POOL_SIZE = 0


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", "alice@example.com", "alice-password-1")


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", "bob@example.com", "bob-password-1")


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_superuser("staff", "staff@example.com", "staff-password-1")


@pytest.fixture
def emulator(settings):
    """A real emulator on a free loopback port, with short idle times; settings point at it."""
    from sprites_emulator.testing import start_emulator

    handle = start_emulator(idle_seconds=1, cold_seconds=2, exec_seconds=0.05, setup_seconds=0)
    settings.SPRITES_API_URL = handle.url
    try:
        yield handle
    finally:
        handle.stop()


DB_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "setup"]}}


@pytest.fixture
def task_queue(settings):
    """The real database queue instead of the tests' immediate backend: tasks wait as rows
    until `task_queue.run()` works them off in this process (what `manage.py worker` does)."""
    settings.TASKS = DB_TASKS

    class Queue:
        @staticmethod
        def rows():
            from django_tasks_db.models import DBTaskResult

            return DBTaskResult.objects.all()

        @staticmethod
        def run(max_tasks: int | None = None) -> int:
            from sprites.worker import Worker

            worker = Worker(queue_names=["*"], interval=0, batch=True, backend_name="default", startup_delay=False,
                            max_tasks=max_tasks, worker_id="test-worker", excluded_queue_names=[])
            worker.run()
            return worker._run_tasks

    return Queue()


def make_sprite(name, *, user=True, status=UserSprite.Status.SLEEPING, age_days=None, **fields) -> UserSprite:
    """A sprite row. `user`: True = a new user of its own, a User = theirs, None = a pool
    sprite. `age_days` back-dates its creation (now - age_days)."""
    if user is True:
        user = get_user_model().objects.create_user(f"user-{name}")
    sprite = UserSprite.objects.create(user=user or None, sprite_name=name, status=status, **fields)
    if age_days is not None:
        UserSprite.objects.filter(pk=sprite.pk).update(created_at=timezone.now() - timedelta(days=age_days))
        sprite.refresh_from_db()
    return sprite


def usage(sprite, *, started_at: datetime, cost="0", kind="active", cause="heartbeat", seconds="0",
          minutes: float = 2, key: str | None = None) -> billing.Usage:
    """A ledger row to hand to `billing.record_usage`, with a test key unless one is given."""
    return billing.Usage(
        sprite_id=sprite.pk, kind=kind, cause=cause, started_at=started_at,
        ended_at=started_at + timedelta(minutes=minutes), cost_usd=Decimal(cost), seconds=Decimal(seconds),
        key=key or f"test:{sprite.pk}:{kind}:{started_at.isoformat()}",
    )


def assert_ledger_consistent(*sprites: UserSprite) -> None:
    """The totals cached on each sprite (all of them by default) and the daily rollup equal the
    ledger's sums."""
    for sprite in sprites or UserSprite.objects.all():
        sprite.refresh_from_db()
        rows = UsageRecord.objects.filter(sprite=sprite)
        assert sprite.total_cost_usd == (rows.aggregate(s=Sum("cost_usd"))["s"] or Decimal("0")), sprite
        seconds = rows.filter(kind="active").aggregate(s=Sum("seconds"))["s"] or Decimal("0")
        assert sprite.total_runtime_seconds == seconds, sprite
        by_day: dict = {}
        for row in rows:
            day = row.started_at.astimezone(dt_timezone.utc).date()
            by_day[day] = by_day.get(day, 0) + row.cost_usd
        assert {r.day: r.cost_usd for r in SpriteDailyCost.objects.filter(sprite=sprite)} == by_day, sprite
