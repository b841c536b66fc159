"""Fleet and per-sprite cost figures as SQL: annotations and aggregates, never a query per row.

Every figure comes from the usage ledger or from the totals `record_usage` keeps equal to it:

- cost to date        = `UserSprite.total_cost_usd` (the sum of all the sprite's ledger rows);
- cost this month     = the sum of the sprite's ledger rows whose `started_at` falls in the
                        current calendar month (UTC);
- projected monthly   = from the schedule (sprites.billing.schedule, docs/cost-model.md
                        "Projection"): heartbeat wakes per month at the interval × the
                        sprite's mean billed seconds per heartbeat wake over its last 7 UTC
                        days (today's so far included; the default turn + idle tail before
                        it has one) × the rate, + its user sessions' seconds over the same
                        days (or its age, if younger, at least a day) scaled to the month ×
                        the rate, + storage by the hour; read from the daily rollup, in the
                        database, so the admin can sort and filter on it;
- daily cost          = the sum of ledger rows per UTC day of `started_at`, read from the
                        per-day rollup `SpriteDailyCost` that `record_usage` keeps equal to it.

Used by the operator console (sprites/admin.py) and free for anyone else who needs them.
"""

from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db.models import (
    Case,
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
    When,
)
from django.db.models.functions import Coalesce, Greatest, Least, NullIf
from django.utils import timezone

from sprites.billing.schedule import Schedule, default_billed_seconds
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


PROJECTION_DAYS = 7  # the UTC days a projection measures: today and the 6 before


def _window(now: datetime) -> tuple[date, Decimal]:
    """The projection's window: its first UTC day, and its length in seconds up to `now`."""
    first = now.astimezone(dt_timezone.utc).date() - timedelta(days=PROJECTION_DAYS - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=dt_timezone.utc)
    return first, Decimal((now - start).total_seconds())


def _rollup_since(first: date, value) -> Subquery:
    """A per-sprite figure from its daily rollup rows since `first` (at most 7 rows a sprite)."""
    rows = (SpriteDailyCost.objects.filter(sprite=OuterRef("pk"), day__gte=first)
            .order_by().values("sprite").annotate(v=value).values("v"))
    return Subquery(rows, output_field=DecimalField(max_digits=20, decimal_places=6))


def annotate_projection(queryset: QuerySet, *, schedule: Schedule | None = None, now: datetime | None = None) -> QuerySet:
    """Add the schedule's projection per sprite: `projected_heartbeat_usd`, `projected_user_usd`,
    `projected_storage_usd` and their sum `projected_monthly_usd` (module docstring)."""
    schedule, now = schedule or Schedule.current(), now or timezone.now()
    first, window = _window(now)
    idle_now = Value(Decimal(settings.SPRITE_IDLE_SECONDS))
    mean = _rollup_since(first, ExpressionWrapper(
        Sum("heartbeat_seconds") / NullIf(Sum("heartbeat_wakes"), 0), output_field=MONEY))
    turn = Value(schedule.turn_seconds) if schedule.turn_seconds is not None else Coalesce(
        ExpressionWrapper(mean - idle_now, output_field=MONEY), Value(Decimal(settings.COST_DEFAULT_TURN_SECONDS)),
        output_field=MONEY)
    per_second = schedule.active_usd_per_hour / 3600
    wakeable = Q(user__isnull=False, status__in=UserSprite.WAKEABLE)
    heartbeat = Case(When(wakeable, then=ExpressionWrapper(
        (turn + Value(schedule.idle_seconds)) * Value(schedule.wakes_per_month * per_second), output_field=MONEY)),
        default=Value(ZERO), output_field=MONEY)
    age = Value(Decimal(now.timestamp())) - EpochSeconds(Coalesce("assigned_at", "created_at"))
    days = Greatest(Least(age, Value(window)), Value(SECONDS_PER_DAY), output_field=EpochSeconds.output_field)
    user_seconds = Coalesce(_rollup_since(first, Sum("user_seconds")), Value(ZERO), output_field=MONEY)
    user = Case(When(user__isnull=False, then=ExpressionWrapper(
        user_seconds * Value(HOURS_PER_MONTH * 3600 * per_second) / days, output_field=MONEY)),
        default=Value(ZERO), output_field=MONEY)
    storage = Case(When(status=UserSprite.Status.DESTROYED, then=Value(ZERO)),
                   default=Value(schedule.storage_per_month), output_field=MONEY)
    return queryset.annotate(
        projected_heartbeat_usd=heartbeat, projected_user_usd=user, projected_storage_usd=storage,
    ).annotate(projected_monthly_usd=ExpressionWrapper(
        F("projected_heartbeat_usd") + F("projected_user_usd") + F("projected_storage_usd"), output_field=MONEY))


def sprite_projection(sprite: UserSprite, *, schedule: Schedule | None = None, now: datetime | None = None) -> dict:
    """One sprite's projected month and its breakdown (USD, two decimals), in one query."""
    row = annotate_projection(UserSprite.objects.filter(pk=sprite.pk), schedule=schedule, now=now).values(
        "projected_heartbeat_usd", "projected_user_usd", "projected_storage_usd", "projected_monthly_usd").get()
    return {key.removeprefix("projected_").removesuffix("_usd") + "_usd": _cents(value) for key, value in row.items()}


def fleet_projection(*, schedule: Schedule | None = None, now: datetime | None = None) -> dict:
    """The fleet's projected month under `schedule` (today's by default), in two queries (the
    sprites' counts; one GROUP BY over the last 7 days of the daily rollup): `total_usd`,
    `per_user_usd` (assigned live sprites; None without any), the breakdown (`heartbeat_usd`,
    `user_usd`, `storage_usd`, pool storage included), `users`, `pool` (the pool sprites
    counted: the schedule's `pool_size`, else those there are) and the schedule's own figures
    (`wakes_per_month`, `billed_seconds_per_wake` averaged over the sprites the heartbeat
    wakes). The same arithmetic as `annotate_projection`, summed: the sums are linear, so the
    fleet needs each sprite's 7-day means only where it has rows."""
    schedule, now = schedule or Schedule.current(), now or timezone.now()
    counts = UserSprite.objects.order_by().aggregate(**_projection_counts())
    return _projection_from(counts, schedule, now)


def _projection_counts() -> dict:
    live = ~Q(status=UserSprite.Status.DESTROYED)
    return {
        "p_users": Count("pk", filter=live & Q(user__isnull=False)),
        "p_pool": Count("pk", filter=live & Q(user__isnull=True)),
        "p_wakeable": Count("pk", filter=Q(user__isnull=False, status__in=UserSprite.WAKEABLE)),
    }


def _measured(first: date):
    """Per assigned live sprite with rollup rows since `first`: its status, start, heartbeat
    wakes and seconds, and user seconds (one GROUP BY over at most 7 rollup rows a sprite)."""
    return (
        SpriteDailyCost.objects.filter(day__gte=first, sprite__user__isnull=False)
        .exclude(sprite__status=UserSprite.Status.DESTROYED).order_by()
        .values_list("sprite", "sprite__status", "sprite__assigned_at", "sprite__created_at")
        .annotate(w=Sum("heartbeat_wakes"), hs=Sum("heartbeat_seconds"), us=Sum("user_seconds"))
    )


def _projection_from(counts: dict, schedule: Schedule, now: datetime) -> dict:
    users, wakeable = counts["p_users"], counts["p_wakeable"]
    per_second = schedule.active_usd_per_hour / 3600
    idle_now, default_turn = Decimal(settings.SPRITE_IDLE_SECONDS), Decimal(settings.COST_DEFAULT_TURN_SECONDS)
    turns, measured, user = ZERO, 0, ZERO
    first, window = _window(now)
    for _pk, status, assigned_at, created_at, wakes, hs, us in _measured(first):
        if wakes and status in UserSprite.WAKEABLE:
            turns, measured = turns + Decimal(str(hs)) / wakes - idle_now, measured + 1
        if us:
            age = Decimal((now - (assigned_at or created_at)).total_seconds())
            days = max(min(age, window), SECONDS_PER_DAY)
            user += Decimal(str(us)) * HOURS_PER_MONTH * 3600 * per_second / days
    if schedule.turn_seconds is not None:
        turns = schedule.turn_seconds * wakeable
    else:
        turns += default_turn * (wakeable - measured)
    heartbeat = (turns + schedule.idle_seconds * wakeable) * schedule.wakes_per_month * per_second
    pool_count = counts["p_pool"] if schedule.pool_size is None else schedule.pool_size
    storage = schedule.storage_per_month * (users + pool_count)
    assigned_total = heartbeat + user + schedule.storage_per_month * users
    billed = (turns / wakeable + schedule.idle_seconds) if wakeable else default_billed_seconds(schedule)
    return {
        "schedule": schedule.as_dict(),
        "users": users,
        "pool": pool_count,
        "wakes_per_month": schedule.wakes_per_month.quantize(Decimal("0.01")),
        "billed_seconds_per_wake": Decimal(billed).quantize(Decimal("0.1")),
        "heartbeat_usd": _cents(heartbeat),
        "user_usd": _cents(user),
        "storage_usd": _cents(storage),
        "total_usd": _cents(heartbeat + user + storage),
        "per_user_usd": _cents(assigned_total / users) if users else None,
    }


def _cents(value) -> Decimal:
    return _money(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def annotate_costs(queryset: QuerySet, *, now: datetime | None = None) -> QuerySet:
    """Add `cost_month_usd`, `model_month_usd` (its model part) and the projection
    (`projected_monthly_usd` and its breakdown: `annotate_projection`) to a UserSprite queryset."""
    now = now or timezone.now()
    return annotate_projection(queryset.annotate(
        cost_month_usd=cost_since(month_start(now)),
        model_month_usd=model_cost_since(month_start(now)),
    ), now=now)


def fleet_summary(*, now: datetime | None = None) -> dict:
    """The fleet's figures in two queries, whatever its size (one over sprites, one over the ledger).

    Returns counts by status (`counts`), `pool_ready`, `live` (not destroyed), `users`
    (live sprites with a user), `cost_to_date_usd` (all sprites, ever), `cost_month_usd`
    (every ledger row started this month, destroyed sprites included: that money was
    spent), `projected_monthly_usd` (the schedule's projection over live sprites, pool
    included: pool sprites cost storage), `avg_per_user_usd` (per live sprite with a user;
    None when there are none) and `projection` (`fleet_projection`: the breakdown; one more query), `model_month_usd` (this month's `llm` rows: model
    spend, the rest of `cost_month_usd` is the VMs'; one more query), and `daily`:
    `daily_costs(days=31)`, the last 31 days of fleet cost (the chart's data).
    """
    now = now or timezone.now()
    live = ~Q(status=UserSprite.Status.DESTROYED)
    assigned = live & Q(user__isnull=False)
    figures = (
        UserSprite.objects.order_by()
        .aggregate(
            **_projection_counts(),
            **{f"n_{s}": Count("pk", filter=Q(status=s)) for s in UserSprite.Status.values},
            pool_ready=Count("pk", filter=Q(user__isnull=True, status=UserSprite.Status.READY)),
            live=Count("pk", filter=live),
            users=Count("pk", filter=assigned),
            cost_to_date_usd=Sum("total_cost_usd"),
        )
    )
    projection = _projection_from(figures, Schedule.current(), now)
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
        "projected_monthly_usd": projection["total_usd"],
        "avg_per_user_usd": projection["per_user_usd"],
        "projection": projection,
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
