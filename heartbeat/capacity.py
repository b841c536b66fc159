"""The provider's running cap, as one sweep sees it: how many wakes may start now.

An org may have only `running_limit` sprites running at once (sprites-api.md, "Running and
warm caps"); a sprite holds its slot for its turn and then its idle tail. The gate reads the
cap and the org's running count from the API (`sprites.services.read_org`, one small list
call), and between readings keeps the count current from what this sweep itself starts and
finishes: +1 when a wake starts, -1 when its idle tail ends (or at once if it never reached
the sprite). Wakes admitted now = min(running_limit - running, HEARTBEAT_CONCURRENCY - in
flight). Other hosts and users' own sessions show up at the next reading, and if the count was
wrong the API answers 429 `concurrent_sprite_limit_exceeded`: the gate then stops admitting
until the slot the API says frees (its Retry-After) and reads the cap again. With no cap
reported (an API that says nothing), only the concurrency bounds it.
"""

import heapq
import time
from collections.abc import Callable

REFRESH_SECONDS = 2.0  # re-read the org at least this often while admitting
MIN_BACKOFF, MAX_BACKOFF = 0.05, 30.0


class Gate:
    def __init__(self, *, concurrency: int, idle_seconds: float, read_org: Callable,
                 clock: Callable[[], float] = time.monotonic):
        self.concurrency = concurrency
        self.idle_seconds = idle_seconds
        self._read_org = read_org
        self._clock = clock
        self.limit: int | None = None
        self._running_seen = 0  # the org's running count at the last reading
        self._started = 0  # wakes this sweep started since then
        self._tails: list[float] = []  # when the slots this sweep holds in idle tails free
        self._freed = 0  # of those (and wakes that never ran), freed since the reading
        self._read_at: float | None = None
        self.blocked_until = 0.0
        self.rejections = 0
        self.peak_estimate = 0

    # -- reading the org

    def refresh(self) -> None:
        now = self._clock()
        self._expire(now)
        org = self._read_org()
        self._read_at = now
        if org is None or org.running_limit is None:
            if org is None and self.limit is not None:
                return  # could not read: keep the estimate we have
            self.limit = None
            return
        self.limit = org.running_limit
        self._running_seen, self._started, self._freed = org.running, 0, 0
        self._tails = [t for t in self._tails if t > now]

    def _expire(self, now: float) -> None:
        while self._tails and self._tails[0] <= now:
            heapq.heappop(self._tails)
            self._freed += 1

    @property
    def running(self) -> int:
        """The org's running count as this sweep estimates it now."""
        self._expire(self._clock())
        return max(self._running_seen + self._started - self._freed, 0)

    # -- admission

    def admissible(self, in_flight: int) -> int:
        """How many wakes may start now (0 while backing off or the cap is full)."""
        now = self._clock()
        if now < self.blocked_until:
            return 0
        if self._read_at is None or now - self._read_at >= REFRESH_SECONDS:
            self.refresh()
        threads = max(self.concurrency - in_flight, 0)
        if self.limit is None:
            return threads
        return max(min(self.limit - self.running, threads), 0)

    def next_change(self) -> float | None:
        """Seconds until admission may change by itself (a tail ends, a backoff ends)."""
        now = self._clock()
        moments = [t for t in (self.blocked_until, self._tails[0] if self._tails else 0.0) if t > now]
        return min(moments) - now if moments else None

    def started(self, count: int) -> None:
        self._started += count
        if self.limit is not None:
            self.peak_estimate = max(self.peak_estimate, self.running)

    def finished(self, *, reached: bool, deferred: bool = False, retry_after: float | None = None) -> None:
        """A wake ended: its slot stays taken for the idle tail if it reached the sprite, frees
        now if it did not; a 429 (deferred) also says the cap is full: back off, read again."""
        now = self._clock()
        if reached:
            heapq.heappush(self._tails, now + self.idle_seconds)
        else:
            self._freed += 1
        if deferred:
            self.rejections += 1
            wait = min(max(retry_after if retry_after is not None else 1.0, MIN_BACKOFF), MAX_BACKOFF)
            self.blocked_until = max(self.blocked_until, now + wait)
            self._read_at = None  # read the org again before admitting anyone else


def backoff_seconds(retry_after: float | None, attempt: int) -> float:
    """How long a sprite refused for capacity waits before it may be claimed again."""
    base = min(max(retry_after if retry_after is not None else 1.0, MIN_BACKOFF), MAX_BACKOFF)
    return min(base * (2 ** min(attempt, 3)), MAX_BACKOFF)
