"""User-session time from two observations of a sprite's VM: what ran between them that
nothing ClawDirector caused explains (docs/cost-model.md, "User sessions").

The sampler (sprites/services/sampling.py) sees each sprite's `status` and `last_warming_at`
every minute or so. Between two observations at t0 and t:

- running at t0 and at t, with no warming in between: it ran all of [t0, t];
- a `last_warming_at` w inside (t0, t]: a running period ended exactly at w; if the sprite
  was not running at t0, that period started somewhere in (t0, w - idle] (every period ends
  with the idle window);
- running at t after not running (at t0, or since w): a period started in (t0 or w, t].

An unknown start is the start of the first caused interval (a heartbeat, a start, a staff
action) that began in that range, when one did (the cause woke it), else the midpoint
of the range: unbiased when sessions begin at random, wrong by at most half the range. The
user's seconds are then the estimated running intervals minus every caused interval
(ledger `active` rows, each with its own idle tail): the tail of a cause stays that cause's.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

Interval = tuple[datetime, datetime]
# Our clock and the provider's are not the same clock, and a caused row's start is taken a
# moment before its request reaches the sprite: a cause covers this much more on each side,
# so its edges never leak slivers of `user` time.
CLOCK_TOLERANCE = timedelta(seconds=1)


@dataclass(frozen=True)
class Observation:
    at: datetime
    running: bool
    warmed_at: datetime | None = None  # the API's `last_warming_at`


def running_intervals(prev: Observation, cur: Observation, *, caused: list[Interval],
                      idle: timedelta) -> list[Interval]:
    """The sprite's running intervals inside (prev.at, cur.at], estimated (module docstring)."""
    t0, t = prev.at, cur.at
    if t <= t0:
        return []
    w = cur.warmed_at if cur.warmed_at is not None and t0 < cur.warmed_at <= t else None
    out: list[Interval] = []
    after = t0
    if prev.running:
        if w is None:
            # Still running, or asleep with no `last_warming_at` reported (then: half of it).
            return [(t0, t if cur.running else t0 + (t - t0) / 2)]
        out.append((t0, w))
        after = w
    elif w is not None:
        out.append((_start(t0, max(w - idle, t0), caused), w))
        after = w
    if cur.running and after < t:
        out.append((_start(after, t, caused), t))
    return [(a, b) for a, b in out if b > a]


def _start(lo: datetime, hi: datetime, caused: list[Interval]) -> datetime:
    """When a period that began in (lo, hi] began: with the first cause that started in the
    range (it woke the sprite), else at its midpoint. A cause that started before the range
    only reaches into it with its tail: it did not wake the sprite again."""
    starts = [max(s, lo) for s, e in caused if lo - CLOCK_TOLERANCE <= s <= hi]
    return min(starts) if starts else lo + (hi - lo) / 2


def uncaused_seconds(intervals: list[Interval], caused: list[Interval]) -> float:
    """Seconds of `intervals` (disjoint) that no caused interval (± CLOCK_TOLERANCE) covers."""
    merged: list[list[datetime]] = []
    for s, e in sorted((s - CLOCK_TOLERANCE, e + CLOCK_TOLERANCE) for s, e in caused):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    total = 0.0
    for a, b in intervals:
        seconds = (b - a).total_seconds()
        for s, e in merged:
            overlap = (min(b, e) - max(a, s)).total_seconds()
            if overlap > 0:
                seconds -= overlap
        total += max(seconds, 0.0)
    return total
