"""Exec: sessions, running a simulated command, listing and killing sessions.

A mixin of `EmulatorState` (state.py). The command itself is played by openclaw_guest.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .errors import ApiError, CommandExit
from .formats import ms
from .models import HOME, ExecSession, Sprite
from .openclaw_guest import Simulator

SIGNAL_EXIT_CODES = {"TERM": 143, "SIGTERM": 143, "KILL": 137, "SIGKILL": 137, "INT": 130, "SIGINT": 130}


class ExecMixin:
    def begin_exec(self, name: str, argv: list[str], workdir: str | None) -> tuple[Sprite, ExecSession]:
        """Register a session and wake the sprite: it is running until `end_exec`."""
        with self.lock:
            sprite = self._get(name)
            now = self.now()
            self._begin(sprite, now)  # first: past the running cap it raises the 429
            session = ExecSession(next(self._ids), " ".join(argv), workdir or HOME, self.wall(now))
            sprite.sessions[session.id] = session
            self.counters["execs"] += 1
            return sprite, session

    def end_exec(self, sprite: Sprite, session: ExecSession) -> None:
        with self.lock:
            if sprite.sessions.pop(session.id, None) is not None:
                self._end(sprite, self.now())

    def run_exec(self, sprite: Sprite, session: ExecSession, argv: list[str],
                 emit: Callable[[int, bytes], None]) -> int:
        """Simulate argv; `emit(stream, data)` sends output (1 stdout, 2 stderr). Returns the
        exit code. May sleep (lock released); raises ClientGone if the client left."""
        try:
            return Simulator(self, sprite, session, emit).run(argv)
        except CommandExit as stop:
            return stop.code

    def list_sessions(self, name: str) -> dict:
        with self.lock:
            return {"sessions": [s.to_json() for s in self._get(name).sessions.values()]}

    def kill_session(self, name: str, session_id: str, signal: str) -> Iterator[dict]:
        signal = (signal or "TERM").upper()
        with self.lock:
            sprite = self._get(name)
            try:
                session = sprite.sessions[int(session_id)]
            except (KeyError, ValueError):
                raise ApiError(404, {"error": "session not found"}) from None
            session.kill_code = SIGNAL_EXIT_CODES.get(signal, 143)
            session.cancelled.set()
        now_ms = ms(self.wall(self.now()))
        return iter([
            {"type": "signal", "signal": signal, "pid": session.id, "timestamp": now_ms},
            {"type": "exited", "pid": session.id, "exit_code": session.kill_code, "timestamp": now_ms},
            {"type": "complete", "exit_code": session.kill_code, "timestamp": now_ms},
        ])

    @staticmethod
    def _cancel_sessions(sprite: Sprite) -> None:
        for session in sprite.sessions.values():
            session.kill_code = 137
            session.cancelled.set()
