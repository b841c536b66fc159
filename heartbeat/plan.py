"""The capacity plan: how large a fleet the provider's running cap carries at an interval.

A wake holds a running slot for its turn plus the idle tail before the sprite sleeps (its
occupancy). Over one interval of I seconds a cap of C slots offers C × I slot-seconds, so it
carries at most C × I ÷ occupancy sprites, and a fleet of N needs a cap of N × occupancy ÷ I.
The occupancy is measured: the mean duration of the completed wakes of the last day, plus
SPRITE_IDLE_SECONDS. Past 90% of the largest fleet, wakes start running late (fairly: the most
overdue first) and the plan warns.
"""

import math
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Avg, Count
from django.utils import timezone

from heartbeat.models import HeartbeatRun, HeartbeatWake
from sprites.models import UserSprite

WARN_SHARE = 0.9
MEASURE_OVER = timedelta(days=1)
ASSUMED_TURN_SECONDS = 60.0  # until a wake has been measured


@dataclass(frozen=True)
class Plan:
    fleet: int  # sprites the heartbeat wakes
    cap: int | None  # running_limit (None: unknown)
    interval_seconds: float
    turn_seconds: float
    idle_seconds: float
    measured_wakes: int  # how many wakes the turn length is the mean of (0: assumed)

    @property
    def occupancy_seconds(self) -> float:
        return self.turn_seconds + self.idle_seconds

    @property
    def max_fleet(self) -> int | None:
        if self.cap is None:
            return None
        return math.floor(self.cap * self.interval_seconds / self.occupancy_seconds)

    @property
    def cap_needed(self) -> int:
        return math.ceil(self.fleet * self.occupancy_seconds / self.interval_seconds)

    @property
    def load(self) -> float | None:
        """The fleet as a share of the largest fleet the cap carries."""
        if self.max_fleet is None:
            return None
        return self.fleet / self.max_fleet if self.max_fleet else float(self.fleet > 0) * 99.99

    @property
    def warning(self) -> str:
        if self.load is None or self.load < WARN_SHARE:
            return ""
        if self.load > 1:
            return (f"The fleet ({self.fleet}) is larger than the running cap carries ({self.max_fleet}) at "
                    f"{self.interval_seconds / 60:g} min: wakes run late (the most overdue first). Raise the "
                    f"cap to {self.cap_needed}, lengthen the interval, or shorten the turn.")
        return (f"The fleet ({self.fleet}) is at {self.load:.0%} of what the running cap carries "
                f"({self.max_fleet}); past 100% wakes run late. A cap of {self.cap_needed} is the minimum.")

    def lines(self) -> list[str]:
        source = f"mean of {self.measured_wakes} wakes in the last day" if self.measured_wakes else "assumed"
        cap = "unknown (the API did not say)" if self.cap is None else str(self.cap)
        out = [
            f"fleet: {self.fleet} sprites woken every {self.interval_seconds / 60:g} min",
            f"occupancy per wake: {self.occupancy_seconds:.1f}s = turn {self.turn_seconds:.1f}s ({source}) "
            f"+ idle tail {self.idle_seconds:g}s",
            f"running cap: {cap}",
        ]
        if self.max_fleet is not None:
            out.append(f"largest fleet this cap carries: {self.max_fleet} (fleet at {self.load:.0%})")
        out.append(f"cap this fleet needs: {self.cap_needed}")
        if self.warning:
            out.append("WARNING: " + self.warning)
        return out


def remembered_cap() -> int | None:
    """The running cap the latest tick read from the API (kept on its run record), for pages
    that must not call the API."""
    return (HeartbeatRun.objects.filter(running_limit__isnull=False).order_by("-started_at")
            .values_list("running_limit", flat=True).first())


def measured_turn() -> tuple[float, int]:
    """(mean wake duration in seconds, how many wakes) over the last day's completed wakes."""
    since = timezone.now() - MEASURE_OVER
    row = HeartbeatWake.objects.filter(started_at__gte=since, outcome=HeartbeatWake.Outcome.OK).aggregate(
        mean=Avg("duration_seconds"), n=Count("pk"))
    if not row["n"]:
        return ASSUMED_TURN_SECONDS, 0
    return float(row["mean"]), row["n"]


def capacity_plan(*, cap: int | None = None, interval_minutes: float | None = None,
                  turn_seconds: float | None = None, read_org=None) -> Plan:
    """The plan now; any of cap, interval and turn can be given for a what-if. The cap is read
    from the API (`read_org`) when not given."""
    if cap is None and read_org is not None:
        org = read_org()
        cap = None if org is None else org.running_limit
    if cap is None:
        cap = remembered_cap()
    turn, n = (turn_seconds, 0) if turn_seconds is not None else measured_turn()
    minutes = settings.HEARTBEAT_INTERVAL_MINUTES if interval_minutes is None else interval_minutes
    return Plan(fleet=UserSprite.objects.wakeable().count(), cap=cap, interval_seconds=minutes * 60.0,
                turn_seconds=turn, idle_seconds=float(settings.SPRITE_IDLE_SECONDS),
                measured_wakes=n if turn_seconds is None else 0)
