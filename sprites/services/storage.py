"""Storage accrual: every live sprite (pool included) costs storage by the hour, asleep or not."""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from sprites import billing
from sprites.models import UserSprite

STORAGE_BACKFILL_HOURS = 48  # per sprite per call; a long outage catches up over a few calls
STORAGE_CHUNK = 500  # sprites per transaction


def hour_start(at: datetime) -> datetime:
    return at.astimezone(dt_timezone.utc).replace(minute=0, second=0, microsecond=0)


def accrue_storage(*, now: datetime | None = None) -> Decimal:
    """Bill every whole hour of storage not yet billed, for every live sprite (pool included).

    An hour [H, H+1h) is billed once it has ended, one row per sprite and hour, and
    `storage_billed_until` advances in the same transaction, so any number of sweeps in an
    hour bill it once. A sprite is billed from the hour it was created in (that hour counts
    whole); at most STORAGE_BACKFILL_HOURS per sprite per call. Returns the cost written.
    """
    until = hour_start(now or timezone.now())
    rows = list(
        UserSprite.objects.live()
        .filter(Q(storage_billed_until__isnull=True) | Q(storage_billed_until__lt=until))
        .order_by("pk")
        .values_list("pk", "created_at", "storage_billed_until")
    )
    billed = Decimal("0")
    for i in range(0, len(rows), STORAGE_CHUNK):
        usages: list[billing.Usage] = []
        ends: dict[datetime, list[int]] = {}
        for pk, created_at, billed_until in rows[i:i + STORAGE_CHUNK]:
            start = billed_until or hour_start(created_at)
            end = min(until, start + timedelta(hours=STORAGE_BACKFILL_HOURS))
            hour = start
            while hour < end:
                usages.append(billing.storage_hour(sprite_id=pk, hour=hour))
                hour += timedelta(hours=1)
            if end > start:
                ends.setdefault(end, []).append(pk)
        if usages:
            billed += billing.retry_deadlocks(_write, usages, ends)
    return billed


def _write(usages: list[billing.Usage], ends: dict[datetime, list[int]]) -> Decimal:
    with transaction.atomic():
        written = billing.record_usage(usages)
        for end, pks in ends.items():
            # Never backwards: a concurrent sweep may already have gone further.
            UserSprite.objects.filter(pk__in=pks).filter(
                Q(storage_billed_until__isnull=True) | Q(storage_billed_until__lt=end)
            ).update(storage_billed_until=end)
    return sum((u.cost_usd for u in written), Decimal("0"))
