"""The ledger writes: every row exactly once, totals and rollup in step.

Everything that bills goes through `record_usage`, which inserts only rows whose idempotency
key is new and adds exactly those rows to the sprite's cached totals, in one transaction:
the totals on `UserSprite` always equal the ledger's sums, and a retried or re-run write
bills nothing twice. It also keeps the per-day rollup (`SpriteDailyCost`) in step. It costs
four queries per call, whatever the batch size.
"""

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Case, F, Max, Value, When

from sprites.billing.usage import Usage
from sprites.models import SpriteDailyCost, UsageRecord, UserSprite

logger = logging.getLogger(__name__)

def record_usage(usages: Iterable[Usage]) -> list[Usage]:
    """Insert the usages whose key is new and add them to the sprites' totals.

    Returns the usages actually written. Safe to call again with the same usages (nothing
    is written twice) and from concurrent transactions: a racing duplicate fails on the
    unique key, the whole batch rolls back and is retried against what is now committed.
    """
    usages = list({u.key: u for u in usages}.values())
    if not usages:
        return []
    for attempt in range(3):
        try:
            with transaction.atomic():
                return _record_once(usages)
        except IntegrityError:
            if attempt == 2:
                raise
    return []  # pragma: no cover


def _record_once(usages: list[Usage]) -> list[Usage]:
    existing = set(
        UsageRecord.objects.filter(idempotency_key__in=[u.key for u in usages]).values_list(
            "idempotency_key", flat=True
        )
    )
    new = [u for u in usages if u.key not in existing]
    if not new:
        return []
    UsageRecord.objects.bulk_create(
        [
            UsageRecord(
                sprite_id=u.sprite_id,
                kind=u.kind,
                cause=u.cause,
                started_at=u.started_at,
                ended_at=u.ended_at,
                seconds=u.seconds if u.kind == UsageRecord.Kind.ACTIVE else Decimal("0"),
                cost_usd=u.cost_usd,
                idempotency_key=u.key,
                detail=u.detail,
            )
            for u in new
        ],
        batch_size=1000,
    )
    cost: dict[int, Decimal] = defaultdict(Decimal)
    seconds: dict[int, Decimal] = defaultdict(Decimal)
    for u in new:
        cost[u.sprite_id] += u.cost_usd
        if u.kind == UsageRecord.Kind.ACTIVE:
            seconds[u.sprite_id] += u.seconds
    ids = list(cost)
    _add_to_daily_rollup(new)
    UserSprite.objects.filter(pk__in=ids).update(
        total_cost_usd=F("total_cost_usd")
        + Case(*[When(pk=pk, then=Value(cost[pk])) for pk in ids], default=Value(Decimal("0"))),
        total_runtime_seconds=F("total_runtime_seconds")
        + Case(*[When(pk=pk, then=Value(seconds[pk])) for pk in ids], default=Value(Decimal("0"))),
    )
    return new


def _add_to_daily_rollup(usages: list[Usage]) -> None:
    """One upsert that adds each (sprite, UTC day) group to its rollup row: cost, active
    seconds, and what the projection reads (heartbeat wakes and seconds, user seconds)."""
    groups: dict[tuple[int, object], list] = defaultdict(lambda: [Decimal("0"), Decimal("0"), 0, Decimal("0"),
                                                                  Decimal("0")])
    for u in usages:
        group = groups[(u.sprite_id, u.started_at.astimezone(dt_timezone.utc).date())]
        group[0] += u.cost_usd
        if u.kind == UsageRecord.Kind.ACTIVE:
            group[1] += u.seconds
            if u.cause == UsageRecord.Cause.HEARTBEAT:
                group[2] += 1
                group[3] += u.seconds
            elif u.cause == UsageRecord.Cause.USER:
                group[4] += u.seconds
    table = connection.ops.quote_name(SpriteDailyCost._meta.db_table)
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(groups))
    params: list = []
    for (sprite_id, day), sums in groups.items():
        params += [sprite_id, day, *sums]
    added = ", ".join(f"{col} = {table}.{col} + EXCLUDED.{col}" for col in ROLLUP_SUMS)
    # INSERT … ON CONFLICT … DO UPDATE: PostgreSQL and SQLite (3.24+) alike. Django's
    # bulk_create(update_conflicts=True) can only overwrite, and this must add.
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (sprite_id, day, {', '.join(ROLLUP_SUMS)}) VALUES {values} "
            f"ON CONFLICT (sprite_id, day) DO UPDATE SET {added}",
            params,
        )


ROLLUP_SUMS = ("cost_usd", "active_seconds", "heartbeat_wakes", "heartbeat_seconds", "user_seconds")


def billed_until(sprite_id: int):
    """When the sprite's latest billed running ends (its rows' `ended_at`, idle tails included),
    or None: a wake that starts before it was already paid for until then."""
    return UsageRecord.objects.filter(sprite_id=sprite_id, kind=UsageRecord.Kind.ACTIVE).aggregate(
        end=Max("ended_at"))["end"]


def retry_deadlocks(fn, *args, **kwargs):
    """Overlapping writers (sweeps on several hosts) update the same sprite rows; PostgreSQL
    may pick one as a deadlock victim. Ledger writes are idempotent (keys), so run it again."""
    for attempt in range(3):
        try:
            return fn(*args, **kwargs)
        except OperationalError as exc:
            sqlstate = getattr(exc.__cause__, "sqlstate", None)
            if attempt == 2 or sqlstate not in ("40P01", "40001"):
                raise
            logger.warning("Ledger write hit %s; retrying", sqlstate)
            time.sleep(0.05 * (attempt + 1))
