"""The rate card from settings, applied. Money is Decimal, never float.

Rounding: each row's cost is rounded half-up to 8 decimal places (1/1,000,000 of a cent);
totals are exact sums of the rounded rows.
"""

from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings

COST_QUANTUM = Decimal("0.00000001")
SECONDS_QUANTUM = Decimal("0.001")


def round_cost(value: Decimal) -> Decimal:
    return Decimal(value).quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


def round_seconds(value) -> Decimal:
    return Decimal(str(value)).quantize(SECONDS_QUANTUM, rounding=ROUND_HALF_UP)


def active_cost(seconds: Decimal) -> Decimal:
    """Compute cost of `seconds` awake, at SPRITE_ACTIVE_USD_PER_HOUR."""
    return round_cost(Decimal(seconds) * settings.SPRITE_ACTIVE_USD_PER_HOUR / 3600)


def storage_cost_per_hour() -> Decimal:
    return settings.SPRITE_STORAGE_USD_PER_GB_HOUR * settings.SPRITE_STORAGE_GB


def storage_cost(hours: int | Decimal) -> Decimal:
    return round_cost(storage_cost_per_hour() * Decimal(hours))
