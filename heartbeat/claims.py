"""Claiming due sprites: one statement per chunk, and a sweep acts only on the rows it won.

An UPDATE of `heartbeat_lease_until` over the due rows picked first (`FOR UPDATE SKIP LOCKED`
on PostgreSQL; SQLite serializes writers), RETURNING the rows won: sweeps overlapping on one
host or many never wake a sprite twice.

The pick is a MATERIALIZED common table expression, not a sub-select in the WHERE clause: the
planner may run an `IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)` once per outer row, each run
locking and returning different rows, so one claim of 1 could lease 6 (seen on PostgreSQL 15
once the table's statistics made a nested loop cheapest). A materialized CTE runs exactly once.
"""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from sprites.models import UserSprite
from sprites.models.schedule import heartbeat_slot
from sprites.services import Target


def due(*, now: datetime, interval: timedelta, force: bool = False, sprite_ids=None):
    rows = UserSprite.objects.due(now=now, interval=interval, force=force)
    return rows if sprite_ids is None else rows.filter(pk__in=list(sprite_ids))


def claim(*, limit: int, interval: timedelta, lease: timedelta, force: bool = False, sprite_ids=None) -> list[Target]:
    """Lease up to `limit` due sprites in one statement and return exactly the ones won, each
    with the start of its own window (`heartbeat_slot`; None when forced)."""
    if limit < 1 or (sprite_ids is not None and not sprite_ids):
        return []
    now = timezone.now()
    inner_sql, inner_params = (
        due(now=now, interval=interval, force=force, sprite_ids=sprite_ids).values("pk")[:limit]
        .query.sql_with_params()
    )
    if connection.features.has_select_for_update_skip_locked:
        inner_sql += " FOR UPDATE SKIP LOCKED"
    meta = UserSprite._meta
    qn = connection.ops.quote_name
    table, pk = qn(meta.db_table), qn(meta.pk.column)
    lease_col = qn(meta.get_field("heartbeat_lease_until").column)
    name_col = qn(meta.get_field("sprite_name").column)
    public_col = qn(meta.get_field("public_id").column)
    url_col, good_col = qn(meta.get_field("sprite_url").column), qn(meta.get_field("known_good_at").column)
    token_field = meta.get_field("gateway_token")  # for the connect after the turn (verify)
    adapt = connection.ops.adapt_datetimefield_value
    # The lease test is repeated outside: PostgreSQL re-checks it on the row's latest version.
    sql = (
        f"WITH picked (pk) AS MATERIALIZED ({inner_sql}) "
        f"UPDATE {table} SET {lease_col} = %s WHERE {pk} IN (SELECT pk FROM picked) "
        f"AND ({lease_col} IS NULL OR {lease_col} < %s) "
        f"RETURNING {pk}, {name_col}, {public_col}, {url_col}, {good_col}, {qn(token_field.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*inner_params, adapt(now + lease), adapt(now)])
        rows = cursor.fetchall()
    stale = now - timedelta(hours=settings.HEAL_CHECKPOINT_EVERY_HOURS)
    return sorted((Target(pk=row[0], name=row[1], public_id=str(row[2]), url=row[3] or "",
                          checkpoint_due=_before(row[4], stale),
                          token=token_field.from_db_value(row[5], None, connection) or "",
                          slot=None if force else heartbeat_slot(row[0], now, interval)) for row in rows),
                  key=lambda t: t.pk)


def _before(value, instant: datetime) -> bool:
    """A raw timestamp column (a datetime on PostgreSQL, text on SQLite) is None or before
    `instant`: whether a verified turn should leave a known-good checkpoint (issue 14)."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is None:
        return True
    if timezone.is_naive(value):  # SQLite keeps UTC without the offset
        value = value.replace(tzinfo=dt_timezone.utc)
    return value < instant


def release(pks: list[int]) -> None:
    """Hand sprites back at once (claimed, never started)."""
    if pks:
        UserSprite.objects.filter(pk__in=pks).release_leases()


def defer(pks: list[int], until: datetime) -> None:
    """Hand sprites back, claimable again from `until` (refused for capacity: a backoff, so
    no sweep spins on them; they are still due, in their window)."""
    if pks:
        UserSprite.objects.filter(pk__in=pks).update(heartbeat_lease_until=until)
