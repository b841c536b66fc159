"""The schedule a projection assumes, and what-ifs on it (docs/cost-model.md, "Projection").

A sprite's projected month = expected heartbeat wakes per month at the interval × billed
seconds per wake (its measured turn, or `COST_DEFAULT_TURN_SECONDS` before it has one, + the
idle tail) × the active rate, + its user sessions' average, + storage by the hour. `Schedule`
holds the knobs; `Schedule.current()` is today's from settings; `what_if` parses overrides
(`interval=30 idle=15 pool=5 turn=90 rate=0.735 storage_rate=0.0000274 storage_gb=10`,
or a named rate card `card=published`) from the command, the console's form and the API.
"""

from dataclasses import dataclass, fields, replace
from decimal import Decimal, InvalidOperation

from django.conf import settings

from sprites.models import HOURS_PER_MONTH

# The published Sprites card at full allocation (sprites-api.md §7; docs/cost-model.md).
RATE_CARDS = {
    "guide": {"active_usd_per_hour": Decimal("0.18"), "storage_usd_per_gb_hour": Decimal("0.0003")},
    "published": {"active_usd_per_hour": Decimal("0.735"), "storage_usd_per_gb_hour": Decimal("0.0000274")},
}
# what-if key: (field, lowest, highest)
KEYS = {
    "interval": ("interval_minutes", Decimal("1"), Decimal("1440")),
    "idle": ("idle_seconds", Decimal("0"), Decimal("3600")),
    "turn": ("turn_seconds", Decimal("0"), Decimal("3600")),
    "pool": ("pool_size", Decimal("0"), Decimal("100000")),
    "rate": ("active_usd_per_hour", Decimal("0"), Decimal("1000")),
    "storage_rate": ("storage_usd_per_gb_hour", Decimal("0"), Decimal("10")),
    "storage_gb": ("storage_gb", Decimal("0"), Decimal("100000")),
}


class WhatIfError(ValueError):
    """A what-if the caller got wrong; the message says which key and why."""


@dataclass(frozen=True)
class Schedule:
    interval_minutes: Decimal
    idle_seconds: Decimal
    active_usd_per_hour: Decimal
    storage_usd_per_gb_hour: Decimal
    storage_gb: Decimal
    turn_seconds: Decimal | None = None  # None: each sprite's measured turn (the default before any)
    pool_size: int | None = None  # None: the pool sprites there are

    @classmethod
    def current(cls) -> "Schedule":
        return cls(
            interval_minutes=Decimal(settings.HEARTBEAT_INTERVAL_MINUTES),
            idle_seconds=Decimal(settings.SPRITE_IDLE_SECONDS),
            active_usd_per_hour=settings.SPRITE_ACTIVE_USD_PER_HOUR,
            storage_usd_per_gb_hour=settings.SPRITE_STORAGE_USD_PER_GB_HOUR,
            storage_gb=settings.SPRITE_STORAGE_GB,
        )

    @property
    def wakes_per_month(self) -> Decimal:
        return HOURS_PER_MONTH * 60 / self.interval_minutes

    @property
    def storage_per_month(self) -> Decimal:
        return HOURS_PER_MONTH * self.storage_usd_per_gb_hour * self.storage_gb

    def as_dict(self) -> dict:
        return {f.name: (None if getattr(self, f.name) is None else str(getattr(self, f.name))) for f in fields(self)}

    def what_if(self, overrides: dict[str, str]) -> "Schedule":
        """This schedule with `overrides` (key → text, as typed) applied; WhatIfError if any is wrong."""
        changes: dict = {}
        for key, raw in overrides.items():
            if key == "card":
                if raw not in RATE_CARDS:
                    raise WhatIfError(f"card must be one of {', '.join(RATE_CARDS)}.")
                changes.update(RATE_CARDS[raw])
                continue
            if key not in KEYS:
                raise WhatIfError(f"Unknown what-if key {key!r}: use {', '.join([*KEYS, 'card'])}.")
            name, low, high = KEYS[key]
            try:
                value = Decimal(str(raw).strip())
            except InvalidOperation:
                raise WhatIfError(f"{key} must be a number.") from None
            if not value.is_finite() or not low <= value <= high or (key == "interval" and value != value.to_integral()):
                raise WhatIfError(f"{key} must be {'a whole number ' if key in ('interval', 'pool') else ''}"
                                  f"between {low} and {high}.")
            changes[name] = int(value) if key == "pool" else value
        return replace(self, **changes)


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """`["interval=30", "idle=15"]` → `{"interval": "30", "idle": "15"}`; WhatIfError on a bad pair."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise WhatIfError(f"{pair!r} is not key=value.")
        out[key.strip()] = value.strip()
    return out


def monthly_cost(*, active_seconds: Decimal, schedule: Schedule) -> Decimal:
    """One sprite's month for `active_seconds` of running time: compute + storage by the hour."""
    return active_seconds * schedule.active_usd_per_hour / 3600 + schedule.storage_per_month


def default_billed_seconds(schedule: Schedule) -> Decimal:
    """Billed seconds per wake before a sprite has a measured one: the default turn + the idle tail."""
    turn = schedule.turn_seconds if schedule.turn_seconds is not None else Decimal(settings.COST_DEFAULT_TURN_SECONDS)
    return turn + schedule.idle_seconds
