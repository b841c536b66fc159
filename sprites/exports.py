"""The ledger as CSV: one user's rows for one calendar month (UTC), for the admin and the API.

Read-only. The rows are the user's ledger rows (every sprite they had, destroyed ones included)
whose `started_at` falls in the month: the same rows the console's "This month" adds up
through the daily rollup, so the CSV's total equals the console's figure.
"""

import csv
import io
import re
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.text import slugify

from sprites.models import ZERO, UsageRecord, UserSprite

MONTH = re.compile(r"(?P<year>20[0-9]{2})-(?P<month>0[1-9]|1[0-2])")
COLUMNS = ["started_at", "ended_at", "sprite", "kind", "cause", "seconds", "cost_usd", "idempotency_key"]


def parse_month(text: str | None, *, now: datetime | None = None) -> datetime:
    """`YYYY-MM` (empty: this month) as the month's first instant, UTC. Raises ValueError."""
    if not text:
        now = (now or timezone.now()).astimezone(dt_timezone.utc)
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    match = MONTH.fullmatch(text)
    if not match:
        raise ValueError("month must be YYYY-MM, e.g. 2026-12")
    return datetime(int(match["year"]), int(match["month"]), 1, tzinfo=dt_timezone.utc)


def next_month(start: datetime) -> datetime:
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def ledger_rows(sprite: UserSprite, month: datetime) -> QuerySet:
    """The month's ledger rows of the sprite's user (of the sprite alone if it is a pool sprite)."""
    rows = UsageRecord.objects.filter(started_at__gte=month, started_at__lt=next_month(month))
    rows = rows.filter(sprite=sprite) if sprite.user_id is None else rows.filter(sprite__user_id=sprite.user_id)
    return rows.select_related("sprite").order_by("started_at", "pk")


def filename(sprite: UserSprite, month: datetime) -> str:
    who = slugify(sprite.user.get_username()) if sprite.user_id else sprite.sprite_name
    return f"ledger-{who or 'user'}-{month:%Y-%m}.csv"


def ledger_csv(sprite: UserSprite, month: datetime) -> tuple[str, Decimal]:
    """The CSV text (a header, one line per row, a last `total` line) and the month's total."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    seconds, cost = ZERO, ZERO
    for row in ledger_rows(sprite, month).iterator(chunk_size=2000):
        seconds += row.seconds
        cost += row.cost_usd
        writer.writerow([row.started_at.isoformat(), row.ended_at.isoformat(), row.sprite.sprite_name, row.kind,
                         row.cause, row.seconds, row.cost_usd, row.idempotency_key])
    writer.writerow(["total", "", "", "", "", seconds, cost, ""])
    return out.getvalue(), cost
