"""Services: define, start, stop, delete, and the NDJSON stream a start answers with.

A mixin of `EmulatorState` (state.py). Starting a service is an activity: it wakes the
sprite, and the activity lasts as long as its stream (`_ActivityStream`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .errors import ApiError, not_found
from .formats import duration_seconds, ms
from .models import Service, Sprite

if TYPE_CHECKING:
    from .state import EmulatorState

MAX_STREAM_HOLD = 0.2  # service streams stay open at most this long, whatever `duration` says


class ServicesMixin:
    def list_services(self, name: str) -> list:
        with self.lock:
            return [s.to_json() for s in self._get(name).services.values()]

    def get_service(self, name: str, service: str) -> dict:
        with self.lock:
            found = self._get(name).services.get(service)
            if found is None:
                raise not_found("service")
            return found.to_json()

    def put_service(self, name: str, service_name: str, body: Any, duration: str | None) -> Iterator:
        """Create or replace a service definition and start it (the answer is its start log)."""
        service = _service_from(service_name, body)
        hold = _hold_seconds(duration)
        with self.lock:
            sprite = self._get(name)
            self._admit(sprite, self.now())  # a start wakes it: past the running cap, 429
            if service.http_port is not None:
                for other in sprite.services.values():
                    if other.name != service_name and other.http_port is not None:
                        raise ApiError(409, {"error": f"service '{other.name}' already has http_port "
                                                      f"{other.http_port}; only one service may have one"})
            previous = sprite.services.get(service_name)
            if previous is not None:
                service.restart_count = previous.restart_count
            sprite.services[service_name] = service
            events = self._start(sprite, service)
        return self._stream(sprite, events, hold)

    def start_service(self, name: str, service_name: str, duration: str | None) -> Iterator:
        hold = _hold_seconds(duration)
        with self.lock:
            sprite = self._get(name)
            service = sprite.services.get(service_name)
            if service is None:
                raise not_found("service")
            if service.status == "running":
                events = [self._event("complete", f"service {service_name} is already running")]
                self._begin(sprite, self.now())
                return self._stream(sprite, events, 0.0)
            events = self._start(sprite, service)
        return self._stream(sprite, events, hold)

    def _start(self, sprite: Sprite, service: Service) -> list[dict]:
        """Start under the lock: wakes the sprite (the caller's stream ends the activity)."""
        now = self.now()
        self._begin(sprite, now)
        pid = next(self._ids)
        command = " ".join([service.cmd, *service.args])
        broken = self._behavior(sprite.name).get("gateway_fails") or sprite.config_corrupt
        if broken and service is sprite.gateway():
            # OpenClaw exits 78 on an invalid config (openclaw.md).
            service.status, service.pid, service.error = "failed", None, "exited with code 78"
            return [
                self._event("started", f"{command} (pid {pid})"),
                self._event("stderr", "Invalid config: gateway refused to start (emulated)"),
                {"type": "exit", "exit_code": 78, "timestamp": ms(self.wall(now))},
                self._event("error", f"service {service.name} exited with code 78"),
            ]
        service.status, service.pid, service.error = "running", pid, None
        service.started_at = self.wall(now)
        listening = f" listening on port {service.http_port}" if service.http_port else ""
        return [
            self._event("started", f"{command} (pid {pid})"),
            self._event("stdout", f"{service.name}{listening} (emulated)"),
        ]

    def stop_service(self, name: str, service_name: str) -> Iterator:
        with self.lock:
            sprite = self._get(name)
            service = sprite.services.get(service_name)
            if service is None:
                raise not_found("service")
            if service.status != "running":
                raise ApiError(409, {"error": "service not running"})
            events = [self._event("stopping", f"stopping {service_name}")]
            service.status, service.pid = "stopped", None
            events.append({**self._event("stopped", f"{service_name} stopped"), "exit_code": 0})
        return iter(events)

    def delete_service(self, name: str, service_name: str) -> None:
        with self.lock:
            sprite = self._get(name)
            if service_name not in sprite.services:
                raise not_found("service")
            dependants = [s.name for s in sprite.services.values() if service_name in s.needs]
            if dependants:
                raise ApiError(409, {"error": f"service is needed by {', '.join(dependants)}"})
            del sprite.services[service_name]

    def _event(self, kind: str, data: str) -> dict:
        return {"type": kind, "data": data, "timestamp": ms(self.wall(self.now()))}

    def _stream(self, sprite: Sprite, events: list[dict], hold: float) -> _ActivityStream:
        return _ActivityStream(self, sprite, events, hold)


class _ActivityStream:
    """A service start's NDJSON answer: the events, then the stream held open `hold` seconds
    (yielded as a float for the server to sleep on), then `complete`. The sprite's activity
    ends on `close()`, which the server always calls, even if the stream never started."""

    def __init__(self, state: EmulatorState, sprite: Sprite, events: list[dict], hold: float):
        self.state, self.sprite, self.events, self.hold = state, sprite, events, hold
        self._closed = False

    def __iter__(self) -> Iterator:
        yield from self.events
        if self.events and self.events[-1]["type"] in ("error", "complete"):
            return
        if self.hold > 0:
            yield self.hold
        yield self.state._event("complete", "duration elapsed")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with self.state.lock:
                self.state._end(self.sprite, self.state.now())


def _service_from(service_name: str, body: Any) -> Service:
    """A new (stopped) service from a PUT body; ApiError(400) on anything malformed."""
    if not isinstance(body, dict):
        raise ApiError(400, {"error": "request body must be a JSON object"})
    cmd = body.get("cmd")
    if not isinstance(cmd, str) or not cmd.strip():
        raise ApiError(400, {"error": "cmd is required"})
    args, needs = body.get("args") or [], body.get("needs") or []
    env, workdir, http_port = body.get("env") or {}, body.get("dir"), body.get("http_port")
    if not (isinstance(args, list) and all(isinstance(a, str) for a in args)):
        raise ApiError(400, {"error": "args must be a list of strings"})
    if not (isinstance(needs, list) and all(isinstance(n, str) for n in needs)):
        raise ApiError(400, {"error": "needs must be a list of service names"})
    if not (isinstance(env, dict) and all(isinstance(v, str) for v in env.values())):
        raise ApiError(400, {"error": "env must be an object of strings"})
    if workdir is not None and not isinstance(workdir, str):
        raise ApiError(400, {"error": "dir must be a string"})
    if http_port is not None and (isinstance(http_port, bool) or not isinstance(http_port, int)
                                  or not 1 <= http_port <= 65535):
        raise ApiError(400, {"error": "http_port must be a port number"})
    return Service(service_name, cmd, list(args), list(needs), http_port, dict(env), workdir)


def _hold_seconds(duration: str | None) -> float:
    """How long a service stream stays open: `duration` (default 5s), capped small so
    provisioning tests and benchmarks are not slowed by log tails nobody reads."""
    try:
        seconds = duration_seconds(duration) if duration else 5.0
    except ValueError:
        raise ApiError(400, {"error": "invalid duration"}) from None
    return min(seconds, MAX_STREAM_HOLD)
