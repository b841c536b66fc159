"""When a sprite's heartbeat is due: the clock cut into intervals, and each sprite's own place
in the interval (its window), in Python and as SQL for the claim."""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db.models import F, Func, IntegerField, Value
from django.db.models.functions import Mod


def window_start(at: datetime, interval: timedelta) -> datetime:
    """Start of the heartbeat slot `at` falls in: the clock (UTC) cut into `interval` slots
    aligned to the epoch. A slot rather than "older than 15 minutes" because a sprite woken
    ten seconds into the 10:00 sweep is only 14:50 old at 10:15 and would skip every other run."""
    step = int(interval.total_seconds())
    return datetime.fromtimestamp(int(at.timestamp()) // step * step, tz=dt_timezone.utc)


def heartbeat_interval() -> timedelta:
    return timedelta(minutes=settings.HEARTBEAT_INTERVAL_MINUTES)


# --- Pacing: each sprite's own place in the interval ------------------------------------------
#
# A sprite is woken once per interval, but not at the interval's start with everyone else: each
# has a stable offset (a hash of its primary key, spread evenly over the interval) and its own
# window [slot, slot + interval) with slot = the latest instant ≤ now that is `offset` past an
# epoch-aligned interval boundary. Waking the fleet this way keeps the provider's running cap
# busy evenly instead of queueing everyone at :00, :15, :30, :45. The rule is written twice,
# here in Python (for billing keys and leases) and as SQL (`slot_epoch`) for the claim; a test
# keeps the two equal.

_OFFSET_HASH = 2654435761  # Knuth's multiplicative hash: consecutive keys land far apart


def heartbeat_offset_seconds(pk: int, interval: timedelta) -> int:
    """The sprite's stable offset into every interval, in whole seconds, in [0, interval)."""
    return (pk * _OFFSET_HASH) % int(interval.total_seconds())


def heartbeat_slot(pk: int, at: datetime, interval: timedelta) -> datetime:
    """Start of the sprite's own heartbeat window that `at` falls in (UTC, whole seconds)."""
    step, now = int(interval.total_seconds()), int(at.timestamp())
    offset = heartbeat_offset_seconds(pk, interval)
    return datetime.fromtimestamp(now - (now - offset) % step, tz=dt_timezone.utc)


class Epoch(Func):
    """Whole seconds since the epoch of a datetime column (NULL stays NULL)."""

    output_field = IntegerField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="FLOOR(EXTRACT(EPOCH FROM %(expressions)s))::bigint",
                           **extra)

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="CAST(strftime('%%%%s', %(expressions)s) AS INTEGER)",
                           **extra)


def slot_epoch(now: datetime, interval: timedelta):
    """SQL for `heartbeat_slot(pk, now, interval)` as epoch seconds, per row."""
    step, epoch = int(interval.total_seconds()), int(now.timestamp())
    offset = Mod(F("pk") * Value(_OFFSET_HASH), Value(step))
    return Value(epoch) - Mod(Value(epoch) - offset, Value(step))
