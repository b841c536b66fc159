"""The emulator's in-memory model of a Sprites organisation: `EmulatorState`.

Shapes, status codes and texts follow ../../shared/sprites-api.md (the real API as read from
the official SDKs, docs and recorded responses); where that document marks something
UNCONFIRMED the choice made here is written down in docs/emulator.md.

Three ideas carry the design:

* **Status is computed, never scheduled.** A sprite stores only how many activities are in
  progress and when the last one ended; `running`/`warm`/`cold` is derived from those
  timestamps on read. Ten thousand idle sprites cost no timers and no threads.
* **The meter is the union of running periods.** A period opens when activity starts on a
  sprite that is not running and closes `idle_seconds` after the last activity ended, unless
  new activity arrives first (then the period simply continues). Overlapping activity can
  therefore never be counted twice.
* **The running cap is a count, kept exactly.** `_hot` holds the sprites that are running
  now (active, or inside their idle tail) and a heap holds when each idle one's tail ends, so
  admitting a wake past `running_limit` (429 concurrent_sprite_limit_exceeded) and the meter
  of how long the cap was full cost O(log n), never a scan of the fleet.
* **Nothing runs on the host.** Exec is simulated (openclaw_guest.py) by recognising the
  command text; it knows the handful of OpenClaw commands ClawDirector uses and a few shell
  builtins, and answers "exit 0, no output" for everything else.

One lock guards all state. It is never held while sleeping: sleeps happen in the request
thread with the lock released, so slow execs and injected latency never block other clients.

This module is the core (clocks, faults, counters, the activity state machine and the meter);
each resource's endpoints are a mixin in its own module, composed into `EmulatorState` here.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import secrets
import threading
import time
from dataclasses import asdict, replace

from .checkpoints import CheckpointsMixin
from .control import ControlMixin
from .drift import DriftMixin
from .errors import ApiError, not_found
from .exec import ExecMixin
from .fs import FilesMixin
from .models import Sprite
from .options import Faults, Options
from .policy import PolicyMixin
from .services import ServicesMixin
from .sessions import SessionsMixin
from .sprites import SpritesMixin

SPRITE_VERSION = "v0.0.1-emulator"


class EmulatorState(SpritesMixin, ExecMixin, ServicesMixin, CheckpointsMixin, FilesMixin, PolicyMixin,
                    ControlMixin, DriftMixin, SessionsMixin):
    """Everything the emulator knows. Thread-safe; the server holds one per process."""

    def __init__(self, options: Options | None = None, *, base_url: str = "http://127.0.0.1"):
        self.options = options or Options()
        self.base_url = base_url  # the server sets its real address after binding
        self.lock = threading.Lock()
        self._wall_offset = time.time() - time.monotonic()
        self._clock_offset = 0.0  # moved forward by advance_clock (sessions.py), never back
        self._rng = random.Random(self.options.seed)
        self._ids = itertools.count(1000)
        self.reset()

    # -- clocks and helpers

    def now(self) -> float:
        return time.monotonic() + self._clock_offset

    def wall(self, monotonic: float) -> float:
        return monotonic + self._wall_offset

    def sprite_url(self, name: str) -> str:
        return f"{self.base_url}/_sprite/{name}"

    def _get(self, name: str) -> Sprite:
        sprite = self.sprites.get(name)
        if sprite is None:
            raise not_found()
        return sprite

    # -- reset, faults, counters

    def reset(self) -> None:
        """Forget every sprite, meter reading and behaviour; faults back to start-up values."""
        with self.lock:
            for sprite in getattr(self, "sprites", {}).values():
                self._cancel_sessions(sprite)
            self.sprites: dict[str, Sprite] = {}
            self._names: list[str] = []  # sorted, for prefix listing and pagination
            self.retired: dict[str, float] = {}  # running seconds of deleted sprites, by name
            self.behaviors: dict[str, dict] = {}
            self.faults = replace(self.options.faults)
            self.counters = {
                "requests": 0, "dropped": 0, "rate_limited": 0, "failed": 0, "slowed": 0,
                "execs": 0, "capacity_rejected": 0,
            }
            # The running cap: who holds a slot, when idle ones free it, how long it was full.
            self._hot: dict[str, Sprite] = {}
            self._tails: list[tuple[float, int, str]] = []  # (tail end, tie-breaker, name)
            self._tail_seq = itertools.count()
            self._cap_mark = self.now()
            self.cap_full_seconds = 0.0
            self.peak_running = 0
            self._init_sessions()

    def get_faults(self) -> dict:
        with self.lock:
            return asdict(self.faults)

    def set_faults(self, **changes) -> dict:
        with self.lock:
            self.faults = self.faults.updated(changes)
            return asdict(self.faults)

    def roll_faults(self) -> tuple[Faults, str | None, bool]:
        """For one /v1 request: (faults in force, outcome, slowed). Outcome is None, "drop",
        "rate_limit" or "fail"; the shares are carved out of one draw so they add up."""
        with self.lock:
            faults = replace(self.faults)
            self.counters["requests"] += 1
            draw = self._rng.random()
            outcome = None
            edge = faults.drop_rate
            if draw < edge:
                outcome = "drop"
            elif draw < (edge := edge + faults.rate_limit_rate):
                outcome = "rate_limit"
            elif draw < edge + faults.fault_rate:
                outcome = "fail"
            slowed = outcome is None and faults.slow_ms > 0 and self._rng.random() < faults.slow_rate
            key = {"drop": "dropped", "rate_limit": "rate_limited", "fail": "failed"}.get(outcome or "")
            if key:
                self.counters[key] += 1
            if slowed:
                self.counters["slowed"] += 1
            return faults, outcome, slowed

    def token_ok(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        if self.options.token is None:
            return True
        return secrets.compare_digest(token.encode(), self.options.token.encode())

    # -- the running cap

    def _advance(self, now: float) -> None:
        """Free the slots whose idle tails ended by `now`, in order, metering time at the cap."""
        self._settle_sessions(now)
        limit = self.options.running_limit
        while self._tails and self._tails[0][0] <= now:
            ended, _, name = heapq.heappop(self._tails)
            sprite = self._hot.get(name)
            if sprite is None or sprite.active or sprite.last_end + self.options.idle_seconds != ended:
                continue  # stale: it woke again (or was deleted) since this entry was pushed
            self._meter_cap(ended, limit)
            del self._hot[name]
        self._meter_cap(now, limit)

    def _meter_cap(self, until: float, limit: int) -> None:
        if until > self._cap_mark:
            if len(self._hot) >= limit:
                self.cap_full_seconds += until - self._cap_mark
            self._cap_mark = until

    def _admit(self, sprite: Sprite, now: float) -> None:
        """Raise the provider's 429 if waking `sprite` now would pass `running_limit`. A sprite
        already running holds its slot and is always admitted. Call before changing anything."""
        self._advance(now)
        limit = self.options.running_limit
        if sprite.name in self._hot or len(self._hot) < limit:
            return
        self.counters["capacity_rejected"] += 1
        idle_tails = [s.last_end + self.options.idle_seconds for s in self._hot.values() if not s.active]
        wait = min(idle_tails) - now if idle_tails else self.options.idle_seconds
        # Whole seconds in the real API; a fraction here, so tests and benchmarks need not sleep.
        wait = max(math.ceil(wait * 100) / 100, 0.01)
        raise ApiError(429, {
            "error": "concurrent_sprite_limit_exceeded",
            "message": f"Your organization has reached its limit of {limit} running sprites",
            "limit": limit,
            "current_count": len(self._hot),
            "retry_after_seconds": wait,
        }, {"Retry-After": f"{wait:g}"})

    def running_count(self) -> int:
        with self.lock:
            self._advance(self.now())
            return len(self._hot)

    def cap_meter(self) -> dict:
        """How the cap was used: limits, running now, peak, seconds full, 429s given."""
        with self.lock:
            self._advance(self.now())
            return {"running_limit": self.options.running_limit, "warm_limit": self.options.warm_limit,
                    "running": len(self._hot), "peak_running": self.peak_running,
                    "cap_full_seconds": round(self.cap_full_seconds, 6),
                    "capacity_rejected": self.counters["capacity_rejected"]}

    # -- activity: the state machine and the meter

    def _begin(self, sprite: Sprite, now: float) -> None:
        self._admit(sprite, now)
        if sprite.name not in self._hot:
            self._hot[sprite.name] = sprite
            self.peak_running = max(self.peak_running, len(self._hot))
        if sprite.active == 0:
            idle = self.options.idle_seconds
            if sprite.run_start is None or now >= sprite.last_end + idle:
                if sprite.run_start is not None:  # the previous period is over: bank it
                    sprite.closed_seconds += sprite.last_end + idle - sprite.run_start
                    sprite.previous_warming = sprite.last_end + idle
                sprite.run_start = now
                sprite.wakes += 1
                self._on_wake(sprite)
        sprite.active += 1

    def _end(self, sprite: Sprite, now: float) -> None:
        sprite.active = max(sprite.active - 1, 0)
        if sprite.active == 0:
            sprite.last_end = now if sprite.last_end is None else max(sprite.last_end, now)
            if sprite.name in self._hot:
                heapq.heappush(self._tails, (sprite.last_end + self.options.idle_seconds,
                                             next(self._tail_seq), sprite.name))

    def _touch(self, sprite: Sprite, now: float) -> None:
        """An instant activity (a request to the URL, a service start): wakes the sprite and
        leaves it running for the idle window."""
        self._begin(sprite, now)
        self._end(sprite, now)

    def status(self, sprite: Sprite, now: float) -> str:
        if sprite.active:
            return "running"
        if sprite.run_start is None:
            return "cold"  # never woken: new sprites start cold
        tail_end = sprite.last_end + self.options.idle_seconds
        if now < tail_end:
            return "running"
        if now < tail_end + self.options.cold_seconds:
            return "warm"
        return "cold"

    def _running_seconds(self, sprite: Sprite, now: float) -> tuple[float, float]:
        """(up to now, once it sleeps): the second includes the committed idle tail."""
        if sprite.run_start is None:
            return sprite.closed_seconds, sprite.closed_seconds
        idle = self.options.idle_seconds
        if sprite.active:
            current = now - sprite.run_start
            return sprite.closed_seconds + current, sprite.closed_seconds + current + idle
        tail_end = sprite.last_end + idle
        return (sprite.closed_seconds + min(now, tail_end) - sprite.run_start,
                sprite.closed_seconds + tail_end - sprite.run_start)

    def meter(self) -> dict:
        """The exact meter, served at GET /_emulator/meter."""
        with self.lock:
            now = self.now()
            self._advance(now)
            sprites: dict[str, dict] = {}
            for name, seconds in self.retired.items():
                sprites[name] = {"running_seconds": seconds, "running_seconds_final": seconds,
                                 "status": "deleted"}
            for name, sprite in self.sprites.items():
                so_far, final = self._running_seconds(sprite, now)
                before = self.retired.get(name, 0.0)  # an earlier sprite of the same name
                sprites[name] = {"running_seconds": before + so_far,
                                 "running_seconds_final": before + final,
                                 "status": self.status(sprite, now), "wakes": sprite.wakes,
                                 "url_sessions": sprite.url_sessions}
        for entry in sprites.values():
            entry["running_seconds"] = round(entry["running_seconds"], 6)
            entry["running_seconds_final"] = round(entry["running_seconds_final"], 6)
        return {
            "sprites": sprites,
            "total_running_seconds": round(sum(e["running_seconds"] for e in sprites.values()), 6),
            "total_running_seconds_final": round(
                sum(e["running_seconds_final"] for e in sprites.values()), 6),
            "idle_seconds": self.options.idle_seconds,
            "cold_seconds": self.options.cold_seconds,
            "cap": self.cap_meter(),
        }

    def summary(self) -> dict:
        """GET /_emulator/state: counts, faults, options, counters."""
        with self.lock:
            counts = self._counts(self.now())
            return {
                "sprites": len(self.sprites),
                **counts,
                "active_execs": sum(len(s.sessions) for s in self.sprites.values()),
                "faults": asdict(self.faults),
                "counters": dict(self.counters),
                "options": {
                    "idle_seconds": self.options.idle_seconds,
                    "cold_seconds": self.options.cold_seconds,
                    "exec_seconds": self.options.exec_seconds,
                    "setup_seconds": self.options.setup_seconds,
                    "token_required": self.options.token is not None,
                    "organization": self.options.organization,
                    "running_limit": self.options.running_limit,
                    "warm_limit": self.options.warm_limit,
                },
                "sprite_version": SPRITE_VERSION,
            }

    def _counts(self, now: float) -> dict:
        self._advance(now)
        counts = {"running": 0, "warm": 0, "cold": 0}
        for sprite in self.sprites.values():
            counts[self.status(sprite, now)] += 1
        return counts
