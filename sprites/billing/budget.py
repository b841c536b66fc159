"""The budget figures: each user's monthly budget, what they spent this month, and the state.

Read-only and cheap (the per-day rollup, at most 31 rows per sprite). Spent this month is the
sum of the user's sprites' ledger rows started this calendar month (UTC), destroyed sprites
included: exactly what the console's "This month" column adds up for their sprites. The rules
that act on these figures (warn, suspend, restore) are sprites/services/budgets.py.
"""

from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from sprites.models import ZERO, SpriteDailyCost, UserSprite


class State:
    OK = "ok"
    WARNED = "warned"
    OVER = "over"


@dataclass(frozen=True)
class Budget:
    """A budget (None: none) against what was spent this month."""

    budget_usd: Decimal | None
    spent_usd: Decimal

    @property
    def percent(self) -> Decimal | None:
        if self.budget_usd is None:
            return None
        if self.budget_usd <= 0:
            return Decimal(100) if self.spent_usd >= self.budget_usd else ZERO
        return (self.spent_usd * 100 / self.budget_usd).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)

    @property
    def state(self) -> str:
        if self.budget_usd is None:
            return State.OK
        if self.spent_usd >= self.budget_usd:
            return State.OVER
        if self.spent_usd * 100 >= self.budget_usd * settings.BUDGET_WARN_PERCENT:
            return State.WARNED
        return State.OK

    def as_dict(self) -> dict:
        return {
            "monthly_budget_usd": None if self.budget_usd is None else str(self.budget_usd),
            "spent_month_usd": str(self.spent_usd.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)),
            "percent": None if self.percent is None else str(self.percent),
            "state": self.state,
        }


def month_start(now: datetime | None = None) -> datetime:
    """Midnight UTC on the first of `now`'s month: budgets roll over then."""
    now = (now or timezone.now()).astimezone(dt_timezone.utc)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_label(now: datetime | None = None) -> str:
    return month_start(now).strftime("%Y-%m")


def monthly_budget_for(sprite: UserSprite) -> Decimal | None:
    """The sprite's user's monthly budget in USD: its own, else SPRITE_MONTHLY_BUDGET_USD; None = none."""
    if sprite.monthly_budget_usd is not None:
        return sprite.monthly_budget_usd
    return settings.SPRITE_MONTHLY_BUDGET_USD


def _month_rows(now: datetime | None):
    return SpriteDailyCost.objects.filter(day__gte=month_start(now).date()).order_by()


def spent_this_month(sprite: UserSprite, *, now: datetime | None = None) -> Decimal:
    """What the sprite's user spent this month over all their sprites (a pool sprite: its own)."""
    rows = _month_rows(now)
    rows = rows.filter(sprite_id=sprite.pk) if sprite.user_id is None else rows.filter(sprite__user_id=sprite.user_id)
    return _money(rows.aggregate(s=Sum("cost_usd"))["s"])


def spent_by_user(user_ids, *, now: datetime | None = None) -> dict[int, Decimal]:
    """This month's spend of each user in `user_ids`, in one query."""
    rows = (_month_rows(now).filter(sprite__user_id__in=list(user_ids)).values("sprite__user_id")
            .annotate(s=Sum("cost_usd")).values_list("sprite__user_id", "s"))
    return {user_id: _money(total) for user_id, total in rows}


def fleet_spent_this_month(*, now: datetime | None = None) -> Decimal:
    """Every ledger row started this month (pool and destroyed sprites too): the console's figure."""
    return _money(_month_rows(now).aggregate(s=Sum("cost_usd"))["s"])


def budget_of(sprite: UserSprite, *, now: datetime | None = None) -> Budget:
    return Budget(monthly_budget_for(sprite), spent_this_month(sprite, now=now))


def fleet_budget(*, now: datetime | None = None) -> Budget:
    cap = settings.FLEET_MONTHLY_CAP_USD
    return Budget(cap, fleet_spent_this_month(now=now) if cap is not None else ZERO)


def is_spent(sprite: UserSprite, *, now: datetime | None = None) -> bool:
    """Is the user's budget, or the fleet's cap, spent this month?"""
    return budget_of(sprite, now=now).state == State.OVER or fleet_budget(now=now).state == State.OVER


def _money(value) -> Decimal:
    return ZERO if value is None else Decimal(str(value)).quantize(Decimal("0.00000001"))
