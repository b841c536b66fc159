"""User sessions through the sprite URL, and the emulator's clock control.

A mixin of `EmulatorState` (state.py), which supplies the lock, the clocks and the activity
state machine (`_begin`/`_end`).

* **A session through the sprite URL** is what a user's browser holds open to its OpenClaw
  gateway (a WebSocket on `wss://<sprite url>/`). An open connection through the URL is
  activity (sprites-api.md §5): the sprite wakes on the request and stays `running` while
  the connection is open, then for the idle window. Two ways in:
  - for real: a request to `/_sprite/{name}/...` with `Upgrade: websocket` is answered
    `101 Switching Protocols` and held open; the session lasts until the client hangs up;
  - simulated: `POST /_emulator/sprites/{name}/session {"seconds": N}` opens a session that
    ends N seconds later on the emulator's clock (no thread, no socket), so a benchmark can
    run thousands of them in compressed time.
* **The clock** (`POST /_emulator/clock {"advance": seconds}`) moves the emulator's time
  forward: status, the meter, `last_running_at`/`last_warming_at` and simulated sessions all
  follow it, so a test can play a 10-minute session in milliseconds. It never goes back.
"""

from __future__ import annotations

import heapq
import itertools

from .errors import ApiError
from .formats import rfc3339
from .models import Sprite

MAX_SESSION_SECONDS = 7 * 86400.0


class SessionsMixin:
    def _init_sessions(self) -> None:
        self._session_ends: list[tuple[float, int, str, str]] = []  # (end, seq, name, sprite id)
        self._session_seq = itertools.count()

    # -- the clock

    def advance_clock(self, seconds) -> dict:
        """Move the emulator's clock forward by `seconds` (0 <= seconds <= 7 days; 0 reads it)."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= MAX_SESSION_SECONDS:
            raise ApiError(400, {"error": "advance must be a number of seconds between 0 and 604800"})
        with self.lock:
            self._clock_offset += float(seconds)
            now = self.now()
            self._advance(now)
            return {"now": rfc3339(self.wall(now)), "offset_seconds": round(self._clock_offset, 6)}

    def clock(self) -> dict:
        with self.lock:
            return {"now": rfc3339(self.wall(self.now())), "offset_seconds": round(self._clock_offset, 6)}

    # -- sessions

    def open_session(self, name: str, seconds=None) -> Sprite:
        """Open a session through the URL: wakes the sprite (429 past the running cap). With
        `seconds`, it ends on its own that much later (emulator clock); without, the caller
        ends it with `close_session`."""
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                                    or not 0 < seconds <= MAX_SESSION_SECONDS):
            raise ApiError(400, {"error": "seconds must be a number between 0 and 604800"})
        with self.lock:
            sprite = self._get(name)
            now = self.now()
            self._begin(sprite, now)
            sprite.url_sessions += 1
            if seconds is not None:
                heapq.heappush(self._session_ends, (now + float(seconds), next(self._session_seq), name, sprite.id))
            return sprite

    def close_session(self, sprite: Sprite) -> None:
        with self.lock:
            if self.sprites.get(sprite.name) is sprite and sprite.active:
                self._end(sprite, self.now())

    def simulate_session(self, name: str, body) -> dict:
        """POST /_emulator/sprites/{name}/session: a user session of `seconds`, starting now."""
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if seconds is None:
            raise ApiError(400, {"error": "seconds is required"})
        sprite = self.open_session(name, seconds)
        with self.lock:
            now = self.now()
            return {"name": name, "started_at": rfc3339(self.wall(now)),
                    "ends_at": rfc3339(self.wall(now + float(seconds))), "status": self.status(sprite, now)}

    def _settle_sessions(self, now: float) -> None:
        """End the simulated sessions whose time is up, in order, at their own end time."""
        while self._session_ends and self._session_ends[0][0] <= now:
            end, _, name, sprite_id = heapq.heappop(self._session_ends)
            sprite = self.sprites.get(name)
            if sprite is not None and sprite.id == sprite_id and sprite.active:
                self._end(sprite, end)
