"""Fleet and per-sprite cost figures as SQL: annotations and aggregates, never a query per row.

Every figure comes from the usage ledger or from the totals `record_usage` keeps equal to it:

- cost to date        = `UserSprite.total_cost_usd` (the sum of all the sprite's ledger rows);
- cost this month     = the sum of the sprite's ledger rows whose `started_at` falls in the
                        current calendar month (UTC);
- projected monthly   = cost to date × 730 h ÷ the sprite's age in hours (since it was
                        assigned, else created), with the age floored at 24 h: exactly
                        `UserSprite.projected_monthly_cost`, computed in the database so the
                        admin can sort and filter on it;
- daily cost          = the sum of ledger rows per UTC day of `started_at`, read from the
                        per-day rollup `SpriteDailyCost` that `record_usage` keeps equal to it.

Used by the operator console (sprites/admin.py) and free for anyone else who needs them.
"""

from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.db.models import (
    Avg,
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from sprites.models import HOURS_PER_MONTH, ZERO, SpriteDailyCost, UsageRecord, UserSprite

MONEY = DecimalField(max_digits=14, decimal_places=8)
SECONDS_PER_DAY = Decimal(86400)


class EpochSeconds(Func):
    """Seconds since 1970 of a timestamp, on PostgreSQL and SQLite alike (sortable ages)."""

    output_field = DecimalField(max_digits=20, decimal_places=6)

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, template="EXTRACT(EPOCH FROM %(expressions)s)")

    def as_sqlite(self, compiler, connection, **extra_context):
        # julianday() of the Unix epoch is 2440587.5.
        return self.as_sql(
            compiler, connection, template="((julianday(%(expressions)s) - 2440587.5) * 86400.0)"
        )


def month_start(now: datetime | None = None) -> datetime:
    """Midnight UTC on the first day of `now`'s calendar month (UTC)."""
    now = (now or timezone.now()).astimezone(dt_timezone.utc)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def cost_since(since: datetime) -> Coalesce:
    """Per-sprite cost of the UTC days from `since`'s day on (a correlated subquery over the
    daily rollup: at most one row per sprite and day, however dense the ledger)."""
    rows = (
        SpriteDailyCost.objects.filter(sprite=OuterRef("pk"), day__gte=since.astimezone(dt_timezone.utc).date())
        .order_by()
        .values("sprite")
        .annotate(total=Sum("cost_usd"))
        .values("total")
    )
    return Coalesce(Subquery(rows, output_field=MONEY), Value(ZERO), output_field=MONEY)


def model_cost_since(since: datetime) -> Coalesce:
    """Per-sprite model spend (`llm` rows: turns + proxy reconciliation) from `since` (a
    correlated subquery on the ledger's (sprite, started_at) index). VM cost = cost - this."""
    rows = (
        UsageRecord.objects.filter(sprite=OuterRef("pk"), kind=UsageRecord.Kind.LLM, started_at__gte=since)
        .order_by()
        .values("sprite")
        .annotate(total=Sum("cost_usd"))
        .values("total")
    )
    return Coalesce(Subquery(rows, output_field=MONEY), Value(ZERO), output_field=MONEY)


def projected_monthly(now: datetime | None = None) -> ExpressionWrapper:
    """`UserSprite.projected_monthly_cost` as an SQL expression (see the module docstring)."""
    now = now or timezone.now()
    age_seconds = Value(Decimal(now.timestamp())) - EpochSeconds(Coalesce("assigned_at", "created_at"))
    age_floored = Greatest(age_seconds, Value(SECONDS_PER_DAY), output_field=EpochSeconds.output_field)
    return ExpressionWrapper(
        F("total_cost_usd") * Value(HOURS_PER_MONTH * 3600) / age_floored, output_field=MONEY
    )


def annotate_costs(queryset: QuerySet, *, now: datetime | None = None) -> QuerySet:
    """Add `cost_month_usd`, `model_month_usd` (its model part) and `projected_monthly_usd` to a
    UserSprite queryset."""
    now = now or timezone.now()
    return queryset.annotate(
        cost_month_usd=cost_since(month_start(now)),
        model_month_usd=model_cost_since(month_start(now)),
        projected_monthly_usd=projected_monthly(now),
    )


def fleet_summary(*, now: datetime | None = None) -> dict:
    """The fleet's figures in two queries, whatever its size (one over sprites, one over the ledger).

    Returns counts by status (`counts`), `pool_ready`, `live` (not destroyed), `users`
    (live sprites with a user), `cost_to_date_usd` (all sprites, ever), `cost_month_usd`
    (every ledger row started this month, destroyed sprites included: that money was
    spent), `projected_monthly_usd` (sum over live sprites, pool included: pool sprites
    cost storage) and `avg_per_user_usd` (projected monthly averaged over live sprites
    with a user; None when there are none), `model_month_usd` (this month's `llm` rows: model
    spend, the rest of `cost_month_usd` is the VMs'; one more query), and `daily`:
    `daily_costs(days=31)`, the last 31 days of fleet cost (the chart's data).
    """
    now = now or timezone.now()
    live = ~Q(status=UserSprite.Status.DESTROYED)
    assigned = live & Q(user__isnull=False)
    figures = (
        UserSprite.objects.order_by()
        .annotate(projected=projected_monthly(now))
        .aggregate(
            **{f"n_{s}": Count("pk", filter=Q(status=s)) for s in UserSprite.Status.values},
            pool_ready=Count("pk", filter=Q(user__isnull=True, status=UserSprite.Status.READY)),
            live=Count("pk", filter=live),
            users=Count("pk", filter=assigned),
            cost_to_date_usd=Sum("total_cost_usd"),
            projected_monthly_usd=Sum("projected", filter=live),
            avg_per_user_usd=Avg("projected", filter=assigned),
        )
    )
    # The month's total from the same one scan as the chart: 31 days always reach back to
    # the 1st, and it spares a second pass over the ledger.
    daily = daily_costs(days=31, now=now)
    first = month_start(now).date()
    month = sum((cost for day, cost in daily if day >= first), ZERO)
    model_month = UsageRecord.objects.filter(kind=UsageRecord.Kind.LLM, started_at__gte=month_start(now)).aggregate(
        s=Sum("cost_usd"))["s"]
    counts = {s: figures.pop(f"n_{s}") for s in UserSprite.Status.values}
    return {
        "counts": counts,
        "pool_ready": figures["pool_ready"],
        "live": figures["live"],
        "users": figures["users"],
        "cost_to_date_usd": _money(figures["cost_to_date_usd"]),
        "cost_month_usd": _money(month),
        "model_month_usd": _money(model_month),
        "projected_monthly_usd": _money(figures["projected_monthly_usd"]),
        "avg_per_user_usd": None
        if figures["avg_per_user_usd"] is None
        else _money(figures["avg_per_user_usd"]),
        "daily": daily,
    }


def daily_costs(*, days: int = 30, now: datetime | None = None) -> list[tuple[date, Decimal]]:
    """Fleet cost per UTC day for the last `days` days (today included), zeros filled in.

    One GROUP BY query over the daily rollup. A ledger row counts on the day its interval started.
    """
    now = (now or timezone.now()).astimezone(dt_timezone.utc)
    first = now.date() - timedelta(days=days - 1)
    rows = (
        SpriteDailyCost.objects.filter(day__gte=first)
        .order_by()
        .values("day")
        .annotate(total=Sum("cost_usd"))
        .values_list("day", "total")
    )
    by_day = {day: _money(total) for day, total in rows}
    return [(first + timedelta(days=i), by_day.get(first + timedelta(days=i), ZERO)) for i in range(days)]


def _money(value) -> Decimal:
    """SQLite hands sums back as floats or with noise digits: one scale for every backend."""
    if value is None:
        return ZERO
    return Decimal(str(value)).quantize(Decimal("0.00000001"))
