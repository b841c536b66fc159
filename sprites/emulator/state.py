"""The emulator's in-memory model of a Sprites organisation.

Shapes, status codes and texts follow ../../../shared/sprites-api.md (the real API as read from
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
* **Nothing runs on the host.** Exec is simulated (simulator.py) by recognising the command text; the
  simulator knows the handful of OpenClaw commands ClawDirector uses and a few shell
  builtins, and answers "exit 0, no output" for everything else.

One lock guards all state. It is never held while sleeping: sleeps happen in the request
thread with the lock released, so slow execs and injected latency never block other clients.
"""

from __future__ import annotations

import base64
import bisect
import copy
import itertools
import posixpath
import random
import re
import secrets
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

SPRITE_VERSION = "v0.0.1-emulator"
HOME = "/home/sprite"

# Fly's reference control plane enforces this (sprites-api.md, "Sprite name rules").
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*[a-z0-9]$")
MAX_NAME_LENGTH = 63
MAX_PAGE = 50  # docs: max_results is 1-50; larger values are clamped, not refused
MAX_STREAM_HOLD = 0.2  # service streams stay open at most this long, whatever `duration` says

# Per-sprite test overrides accepted by POST /_emulator/sprites/{name}/behavior.
BEHAVIOR_FIELDS: dict[str, type] = {
    "heartbeat_exit_code": int,
    "heartbeat_seconds": float,
    "heartbeat_cost_usd": float,
    "hang": bool,
    "gateway_fails": bool,
}


class ApiError(Exception):
    """An HTTP error answer: the server turns it into `status` with `body` as JSON."""

    def __init__(self, status: int, body: dict, headers: dict | None = None):
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


class ClientGone(Exception):
    """The HTTP client went away mid-stream; stop working for it."""


class _Exit(Exception):
    """Ends a simulated command early with an exit code (124 timeout, 137 killed...)."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def _not_found(what: str = "sprite") -> ApiError:
    return ApiError(404, {"error": f"{what} not found"})


# --- Configuration ---------------------------------------------------------------------------


@dataclass
class Faults:
    """Injected misbehaviour, switchable at run time. Applies to /v1 requests only."""

    latency_ms: float = 0.0  # added to every /v1 call
    fault_rate: float = 0.0  # share of calls answered with `fault_status`
    fault_status: int = 503
    rate_limit_rate: float = 0.0  # share answered 429 with Retry-After
    retry_after: float = 1.0  # seconds, in the Retry-After header and the body
    drop_rate: float = 0.0  # share whose connection is closed without an answer
    slow_rate: float = 0.0  # share delayed by an extra `slow_ms` (client timeouts)
    slow_ms: float = 0.0

    RATES = ("fault_rate", "rate_limit_rate", "drop_rate", "slow_rate")

    def updated(self, changes: dict) -> "Faults":
        """A copy with `changes` applied; ApiError(400) on an unknown key or a bad value."""
        known = {f.name for f in fields(self)}
        clean: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in known:
                raise ApiError(400, {"error": f"unknown fault setting {key!r}"})
            try:
                number = int(value) if key == "fault_status" else float(value)
            except (TypeError, ValueError):
                raise ApiError(400, {"error": f"{key} must be a number"}) from None
            if isinstance(value, bool) or number < 0:
                raise ApiError(400, {"error": f"{key} must be a non-negative number"})
            if key in self.RATES and number > 1:
                raise ApiError(400, {"error": f"{key} is a share between 0 and 1"})
            if key == "fault_status" and not 500 <= number <= 599:
                raise ApiError(400, {"error": "fault_status must be a 5xx status"})
            clean[key] = number
        return replace(self, **clean)


@dataclass(frozen=True)
class Options:
    """Start-up settings. Names match the management command's flags."""

    idle_seconds: float = 30.0  # running -> warm after this long without activity
    cold_seconds: float = 300.0  # warm -> cold after this much longer
    exec_seconds: float = 2.0  # how long a simulated heartbeat turn takes
    setup_seconds: float = 0.5  # how long a simulated set-up script takes
    token: str | None = None  # when set, the only bearer token accepted
    organization: str = "emulator"
    seed: int | None = None  # makes injected faults reproducible
    faults: Faults = field(default_factory=Faults)

    @classmethod
    def from_kwargs(cls, **kwargs) -> "Options":
        """Accept the flat keyword style of `start_emulator(latency_ms=50, idle_seconds=1)`."""
        fault_names = {f.name for f in fields(Faults)}
        fault_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in fault_names}
        unknown = set(kwargs) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown emulator option(s): {', '.join(sorted(unknown))}")
        faults = kwargs.pop("faults", None) or Faults()
        try:
            faults = faults.updated(fault_kwargs)
        except ApiError as exc:
            raise ValueError(exc.body["error"]) from None
        return cls(faults=faults, **kwargs)


# --- The model -------------------------------------------------------------------------------


@dataclass
class FileEntry:
    data: bytes
    mode: str
    mtime: float  # wall clock


@dataclass
class Service:
    name: str
    cmd: str
    args: list = field(default_factory=list)
    needs: list = field(default_factory=list)
    http_port: int | None = None
    env: dict = field(default_factory=dict)
    dir: str | None = None
    status: str = "stopped"
    pid: int | None = None
    started_at: float | None = None  # wall clock
    error: str | None = None
    restart_count: int = 0

    def to_json(self) -> dict:
        # env is deliberately left out: it carries the gateway token.
        return {
            "name": self.name,
            "cmd": self.cmd,
            "args": list(self.args),
            "needs": list(self.needs),
            "http_port": self.http_port,
            "dir": self.dir,
            "state": {
                "name": self.name,
                "status": self.status,
                "pid": self.pid,
                "started_at": _rfc3339(self.started_at),
                "error": self.error,
                "restart_count": self.restart_count,
                "next_restart_at": None,
            },
        }

    def definition(self) -> "Service":
        """The definition only, as a checkpoint keeps it: a restored service is stopped."""
        return Service(self.name, self.cmd, list(self.args), list(self.needs), self.http_port,
                       dict(self.env), self.dir)


@dataclass
class Snapshot:
    """What a checkpoint captures: the writable filesystem, which is where service
    definitions, the OpenClaw install and its pairing store live."""

    files: dict
    dirs: set
    services: dict
    openclaw_installed: bool
    pending: dict
    paired: dict


@dataclass
class Checkpoint:
    id: str
    create_time: float  # wall clock
    comment: str
    snapshot: Snapshot

    def to_json(self) -> dict:
        data = {"id": self.id, "create_time": _rfc3339(self.create_time, seconds=True)}
        if self.comment:
            data["comment"] = self.comment
        data["is_auto"] = False
        return data


class ExecSession:
    """One running simulated command. `cancelled` is set by a restore, a kill or a delete."""

    def __init__(self, session_id: int, command: str, workdir: str, now_wall: float):
        self.id = session_id
        self.command = command
        self.workdir = workdir
        self.created = now_wall
        self.last_activity = now_wall
        self.cancelled = threading.Event()
        self.kill_code = 137
        self.deadline: float | None = None  # monotonic; from a `timeout N` wrapper
        self.connected: Callable[[], bool] = lambda: True

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "command": self.command,
            "workdir": self.workdir,
            "created": _rfc3339(self.created, seconds=True),
            "bytes_per_second": 0,
            "is_active": True,
            "last_activity": _rfc3339(self.last_activity, seconds=True),
            "tty": False,
        }


@dataclass
class Sprite:
    id: str
    name: str
    created_at: float  # wall clock
    updated_at: float
    url_settings: dict = field(default_factory=lambda: {"auth": "sprite"})
    labels: list = field(default_factory=list)
    # Activity and meter, all monotonic seconds. See the module docstring.
    active: int = 0
    run_start: float | None = None  # start of the current (or last) running period
    last_end: float | None = None  # when the last activity ended
    closed_seconds: float = 0.0  # length of the running periods already over
    previous_warming: float | None = None  # monotonic time the previous period went warm
    wakes: int = 0
    # Inside the VM
    files: dict = field(default_factory=dict)
    dirs: set = field(default_factory=lambda: {"/", "/home", HOME, "/tmp"})
    services: dict = field(default_factory=dict)
    openclaw_installed: bool = False
    pending: dict = field(default_factory=dict)  # requestId -> pending pairing request
    paired: dict = field(default_factory=dict)  # deviceId -> paired device
    checkpoints: list = field(default_factory=list)
    next_checkpoint: int = 1
    policy: list = field(default_factory=list)
    sessions: dict = field(default_factory=dict)

    def snapshot(self) -> Snapshot:
        return Snapshot(
            files=dict(self.files),  # FileEntry objects are replaced, never mutated
            dirs=set(self.dirs),
            services={n: s.definition() for n, s in self.services.items()},
            openclaw_installed=self.openclaw_installed,
            pending=copy.deepcopy(self.pending),
            paired=copy.deepcopy(self.paired),
        )

    def gateway(self) -> Service | None:
        """The service the sprite URL routes to: the one with an http_port, else one that
        looks like the OpenClaw gateway by name or command."""
        for service in self.services.values():
            if service.http_port is not None:
                return service
        for service in self.services.values():
            text = " ".join([service.name, service.cmd, *map(str, service.args)])
            if "openclaw" in text or "gateway" in text:
                return service
        return None

    def gateway_running(self) -> bool:
        gateway = self.gateway()
        return gateway is not None and gateway.status == "running"


# --- State ---------------------------------------------------------------------------------


class EmulatorState:
    """Everything the emulator knows. Thread-safe; the server holds one per process."""

    def __init__(self, options: Options | None = None, *, base_url: str = "http://127.0.0.1"):
        self.options = options or Options()
        self.base_url = base_url  # the server sets its real address after binding
        self.lock = threading.Lock()
        self._wall_offset = time.time() - time.monotonic()
        self._rng = random.Random(self.options.seed)
        self._ids = itertools.count(1000)
        self.reset()

    # -- clocks and helpers

    @staticmethod
    def now() -> float:
        return time.monotonic()

    def wall(self, monotonic: float) -> float:
        return monotonic + self._wall_offset

    def sprite_url(self, name: str) -> str:
        return f"{self.base_url}/_sprite/{name}"

    def _get(self, name: str) -> Sprite:
        sprite = self.sprites.get(name)
        if sprite is None:
            raise _not_found()
        return sprite

    def sprite(self, name: str) -> Sprite | None:
        """Direct access for tests; read it under `state.lock` if the server is busy."""
        return self.sprites.get(name)

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
                "execs": 0,
            }

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

    # -- activity: the state machine and the meter

    def _begin(self, sprite: Sprite, now: float) -> None:
        if sprite.active == 0:
            idle = self.options.idle_seconds
            if sprite.run_start is None or now >= sprite.last_end + idle:
                if sprite.run_start is not None:  # the previous period is over: bank it
                    sprite.closed_seconds += sprite.last_end + idle - sprite.run_start
                    sprite.previous_warming = sprite.last_end + idle
                sprite.run_start = now
                sprite.wakes += 1
        sprite.active += 1

    def _end(self, sprite: Sprite, now: float) -> None:
        sprite.active = max(sprite.active - 1, 0)
        if sprite.active == 0:
            sprite.last_end = now if sprite.last_end is None else max(sprite.last_end, now)

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
            sprites: dict[str, dict] = {}
            for name, seconds in self.retired.items():
                sprites[name] = {"running_seconds": seconds, "running_seconds_final": seconds,
                                 "status": "deleted"}
            for name, sprite in self.sprites.items():
                so_far, final = self._running_seconds(sprite, now)
                before = self.retired.get(name, 0.0)  # an earlier sprite of the same name
                sprites[name] = {"running_seconds": before + so_far,
                                 "running_seconds_final": before + final,
                                 "status": self.status(sprite, now), "wakes": sprite.wakes}
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
                },
                "sprite_version": SPRITE_VERSION,
            }

    def _counts(self, now: float) -> dict:
        counts = {"running": 0, "warm": 0, "cold": 0}
        for sprite in self.sprites.values():
            counts[self.status(sprite, now)] += 1
        return counts

    # -- sprites

    def _sprite_json(self, sprite: Sprite, now: float) -> dict:
        status = self.status(sprite, now)
        last_running = last_warming = None
        if sprite.run_start is not None:
            if status == "running":
                last_running = now
            else:
                last_running = last_warming = sprite.last_end + self.options.idle_seconds
            if last_warming is None:
                last_warming = sprite.previous_warming
        return {
            "id": sprite.id,
            "name": sprite.name,
            "organization": self.options.organization,
            "status": status,
            "url": self.sprite_url(sprite.name),
            "url_settings": dict(sprite.url_settings),
            "created_at": _rfc3339(sprite.created_at),
            "updated_at": _rfc3339(sprite.updated_at),
            "last_running_at": _rfc3339(self.wall(last_running)) if last_running else None,
            "last_warming_at": _rfc3339(self.wall(last_warming)) if last_warming else None,
            "labels": list(sprite.labels),
            "version": None,
            "environment_version": None,
        }

    def create_sprite(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, {"errors": ["request body must be a JSON object"]})
        name = body.get("name")
        if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or not NAME_RE.match(name):
            raise ApiError(400, {"errors": ["invalid sprite name format"]})
        url_settings = _url_settings({"auth": "sprite"}, body.get("url_settings"))
        labels = _labels(body.get("labels", []))
        with self.lock:
            if name in self.sprites:
                raise ApiError(409, {"error": f"A sprite named '{name}' already exists. "
                                              "Please choose a different name."})
            now = self.now()
            wall = self.wall(now)
            sprite = Sprite(id=f"sprite-{uuid.uuid4()}", name=name, created_at=wall, updated_at=wall,
                            url_settings=url_settings, labels=labels)
            # Every sprite has a v0 from creation (sprites-api.md, "Listing quirks").
            sprite.checkpoints.append(Checkpoint("v0", wall, "", sprite.snapshot()))
            self.sprites[name] = sprite
            bisect.insort(self._names, name)
            return self._sprite_json(sprite, now)

    def get_sprite(self, name: str) -> dict:
        with self.lock:
            return self._sprite_json(self._get(name), self.now())

    def list_sprites(self, query: dict) -> dict:
        prefix = _one(query, "prefix") or ""
        raw_max = _one(query, "max_results")
        try:
            max_results = int(raw_max) if raw_max not in (None, "") else MAX_PAGE
        except ValueError:
            raise ApiError(400, {"errors": ["invalid max_results"]}) from None
        max_results = min(max(max_results, 1), MAX_PAGE)
        after = ""
        token = _one(query, "continuation_token")
        if token:
            try:
                after = base64.urlsafe_b64decode(token.encode() + b"==").decode()
            except (ValueError, UnicodeDecodeError):
                raise ApiError(400, {"error": "invalid continuation_token"}) from None
        with self.lock:
            now = self.now()
            start = bisect.bisect_right(self._names, after) if after else 0
            start = max(start, bisect.bisect_left(self._names, prefix))
            page: list[Sprite] = []
            has_more = False
            for name in itertools.islice(self._names, start, None):
                if not name.startswith(prefix):
                    break
                if len(page) == max_results:
                    has_more = True
                    break
                page.append(self.sprites[name])
            counts = self._counts(now)
            next_token = None
            if has_more:
                next_token = base64.urlsafe_b64encode(page[-1].name.encode()).decode().rstrip("=")
            return {
                "sprites": [self._sprite_json(s, now) for s in page],
                "has_more": has_more,
                "next_continuation_token": next_token,
                # The Go SDK reads org counts, the Python SDK top-level ones: give both.
                "org": {"name": self.options.organization, **counts,
                        "running_limit": 10_000, "warm_limit": 10_000},
                **counts,
            }

    def update_sprite(self, name: str, body: Any) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, {"errors": ["request body must be a JSON object"]})
        with self.lock:
            sprite = self._get(name)
            url_settings = _url_settings(sprite.url_settings, body.get("url_settings"))
            labels = sprite.labels
            if body.get("clear_labels"):
                labels = []
            if "labels" in body and body["labels"] is not None:
                labels = _labels(body["labels"])
            sprite.url_settings, sprite.labels = url_settings, labels
            now = self.now()
            sprite.updated_at = self.wall(now)
            return self._sprite_json(sprite, now)

    def delete_sprite(self, name: str) -> None:
        """Delete it and its checkpoints. Its running time so far stays on the meter."""
        with self.lock:
            sprite = self._get(name)
            now = self.now()
            if sprite.run_start is not None:
                if sprite.active:
                    ran = now - sprite.run_start
                else:  # the VM is destroyed: an idle tail still ahead is never billed
                    ran = min(now, sprite.last_end + self.options.idle_seconds) - sprite.run_start
                self.retired[name] = self.retired.get(name, 0.0) + sprite.closed_seconds + ran
            self._cancel_sessions(sprite)
            del self.sprites[name]
            del self._names[bisect.bisect_left(self._names, name)]

    def upgrade_sprite(self, name: str) -> None:
        with self.lock:
            self._get(name)

    # -- behaviours and pairing (control endpoints)

    def set_behavior(self, name: str, changes: Any) -> dict:
        """Per-sprite overrides for tests; `*` sets the default for every sprite. The sprite
        need not exist yet (tests often know the name before ClawDirector creates it)."""
        if not isinstance(changes, dict):
            raise ApiError(400, {"error": "behavior must be a JSON object"})
        clean = {}
        for key, value in changes.items():
            kind = BEHAVIOR_FIELDS.get(key)
            if kind is None:
                raise ApiError(400, {"error": f"unknown behavior {key!r}; known: "
                                              + ", ".join(BEHAVIOR_FIELDS)})
            if value is None:
                clean[key] = None
                continue
            if kind is bool and not isinstance(value, bool):
                raise ApiError(400, {"error": f"{key} must be true or false"})
            if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ApiError(400, {"error": f"{key} must be a number"})
            clean[key] = kind(value)
        with self.lock:
            current = self.behaviors.setdefault(name, {})
            for key, value in clean.items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = value
            return dict(current)

    def get_behavior(self, name: str) -> dict:
        with self.lock:
            return self._behavior(name)

    def _behavior(self, name: str) -> dict:
        return {**self.behaviors.get("*", {}), **self.behaviors.get(name, {})}

    def add_pairing_request(self, name: str, body: Any = None) -> dict:
        """Simulate a browser asking the sprite's gateway to pair (it then waits for approval).
        Shape: OpenClaw's DevicePairingPendingRequest (src/infra/device-pairing.ts)."""
        body = body if isinstance(body, dict) else {}
        with self.lock:
            sprite = self._get(name)
            request = {
                "requestId": str(body.get("requestId") or uuid.uuid4()),
                "deviceId": str(body.get("deviceId") or secrets.token_hex(32)),
                "publicKey": str(body.get("publicKey") or base64.b64encode(secrets.token_bytes(32)).decode()),
                "displayName": str(body.get("displayName") or "Chrome on macOS"),
                "platform": str(body.get("platform") or "web"),
                "clientId": "openclaw-control-ui",
                "clientMode": "webchat",
                "role": str(body.get("role") or "operator"),
                "roles": [str(body.get("role") or "operator")],
                "scopes": ["operator.read", "operator.write"],
                "remoteIp": str(body.get("remoteIp") or "203.0.113.7"),
                "silent": False,
                "isRepair": False,
                "ts": int(self.wall(self.now()) * 1000),
            }
            sprite.pending[request["requestId"]] = request
            return dict(request)

    # -- exec

    def begin_exec(self, name: str, argv: list[str], workdir: str | None) -> tuple[Sprite, ExecSession]:
        """Register a session and wake the sprite: it is running until `end_exec`."""
        with self.lock:
            sprite = self._get(name)
            now = self.now()
            session = ExecSession(next(self._ids), " ".join(argv), workdir or HOME, self.wall(now))
            sprite.sessions[session.id] = session
            self._begin(sprite, now)
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
            from .simulator import Simulator  # it needs this module's types

            return Simulator(self, sprite, session, emit).run(argv)
        except _Exit as stop:
            return stop.code

    def list_sessions(self, name: str) -> dict:
        with self.lock:
            return {"sessions": [s.to_json() for s in self._get(name).sessions.values()]}

    def kill_session(self, name: str, session_id: str, signal: str) -> Iterator[dict]:
        codes = {"TERM": 143, "SIGTERM": 143, "KILL": 137, "SIGKILL": 137, "INT": 130, "SIGINT": 130}
        signal = (signal or "TERM").upper()
        with self.lock:
            sprite = self._get(name)
            try:
                session = sprite.sessions[int(session_id)]
            except (KeyError, ValueError):
                raise ApiError(404, {"error": "session not found"}) from None
            session.kill_code = codes.get(signal, 143)
            session.cancelled.set()
        now_ms = _ms(self.wall(self.now()))
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

    # -- services

    def list_services(self, name: str) -> list:
        with self.lock:
            return [s.to_json() for s in self._get(name).services.values()]

    def get_service(self, name: str, service: str) -> dict:
        with self.lock:
            found = self._get(name).services.get(service)
            if found is None:
                raise _not_found("service")
            return found.to_json()

    def put_service(self, name: str, service_name: str, body: Any, duration: str | None) -> Iterator:
        """Create or replace a service definition and start it (the answer is its start log)."""
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
        hold = _hold_seconds(duration)
        with self.lock:
            sprite = self._get(name)
            if http_port is not None:
                for other in sprite.services.values():
                    if other.name != service_name and other.http_port is not None:
                        raise ApiError(409, {"error": f"service '{other.name}' already has http_port "
                                                      f"{other.http_port}; only one service may have one"})
            previous = sprite.services.get(service_name)
            service = Service(service_name, cmd, list(args), list(needs), http_port, dict(env), workdir)
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
                raise _not_found("service")
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
        if self._behavior(sprite.name).get("gateway_fails") and service is sprite.gateway():
            # OpenClaw exits 78 on an invalid config (openclaw.md).
            service.status, service.pid, service.error = "failed", None, "exited with code 78"
            return [
                self._event("started", f"{command} (pid {pid})"),
                self._event("stderr", "Invalid config: gateway refused to start (emulated)"),
                {"type": "exit", "exit_code": 78, "timestamp": _ms(self.wall(now))},
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
                raise _not_found("service")
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
                raise _not_found("service")
            dependants = [s.name for s in sprite.services.values() if service_name in s.needs]
            if dependants:
                raise ApiError(409, {"error": f"service is needed by {', '.join(dependants)}"})
            del sprite.services[service_name]

    def _event(self, kind: str, data: str) -> dict:
        return {"type": kind, "data": data, "timestamp": _ms(self.wall(self.now()))}

    def _stream(self, sprite: Sprite, events: list[dict], hold: float) -> "_ActivityStream":
        return _ActivityStream(self, sprite, events, hold)

    # -- checkpoints

    def create_checkpoint(self, name: str, body: Any) -> Iterator[dict]:
        comment = ""
        if isinstance(body, dict) and body.get("comment") is not None:
            comment = str(body["comment"])
        elif body not in (None, {}) and not isinstance(body, dict):
            raise ApiError(400, {"error": "request body must be a JSON object"})
        with self.lock:
            sprite = self._get(name)
            now = self.now()
            self._touch(sprite, now)
            checkpoint_id = f"v{sprite.next_checkpoint}"
            sprite.next_checkpoint += 1
            wall = self.wall(now)
            sprite.checkpoints.append(Checkpoint(checkpoint_id, wall, comment, sprite.snapshot()))
        created = datetime.fromtimestamp(wall, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        # The text lines of a recorded real response (sprites-ruby checkpoints_create.yml).
        lines = [
            ("info", "Creating checkpoint..."),
            ("info", "Checkpoint created successfully"),
            ("info", "\nCheckpoint Details:"),
            ("info", f"  ID: {checkpoint_id}"),
            ("info", f"  Created: {created}"),
            ("info", f"  Path: checkpoints/{checkpoint_id}"),
            ("complete", f"Checkpoint {checkpoint_id} created successfully"),
        ]
        return iter([{"type": kind, "data": data, "time": _rfc3339(self.wall(self.now()), nanos=True)}
                     for kind, data in lines])

    def list_checkpoints(self, name: str) -> list:
        with self.lock:
            sprite = self._get(name)
            current = {"id": "Current", "create_time": _rfc3339(self.wall(self.now()), seconds=True),
                       "is_auto": False}
            return [current] + [c.to_json() for c in reversed(sprite.checkpoints)]

    def get_checkpoint(self, name: str, checkpoint_id: str) -> dict:
        with self.lock:
            return self._checkpoint(self._get(name), checkpoint_id).to_json()

    @staticmethod
    def _checkpoint(sprite: Sprite, checkpoint_id: str) -> Checkpoint:
        for checkpoint in sprite.checkpoints:
            if checkpoint.id == checkpoint_id:
                return checkpoint
        raise ApiError(404, {"error": "checkpoint not found"})

    def restore_checkpoint(self, name: str, checkpoint_id: str) -> Iterator[dict]:
        """Replace the filesystem, terminate sessions; services come back stopped."""
        with self.lock:
            sprite = self._get(name)
            snap = self._checkpoint(sprite, checkpoint_id).snapshot
            self._touch(sprite, self.now())
            self._cancel_sessions(sprite)
            sprite.files, sprite.dirs = dict(snap.files), set(snap.dirs)
            sprite.services = {n: s.definition() for n, s in snap.services.items()}
            sprite.openclaw_installed = snap.openclaw_installed
            sprite.pending, sprite.paired = copy.deepcopy(snap.pending), copy.deepcopy(snap.paired)
        # The text lines of a recorded real response (sprites-ruby checkpoints_restore.yml).
        lines = [
            ("info", f"Restoring from checkpoint {checkpoint_id}..."),
            ("info", "Container components started successfully"),
            ("complete", f"Restore from {checkpoint_id} complete"),
        ]
        return iter([{"type": kind, "data": data, "time": _rfc3339(self.wall(self.now()), nanos=True)}
                     for kind, data in lines])

    # -- filesystem

    def fs_write(self, name: str, query: dict, data: bytes) -> dict:
        path = _resolve(query)
        mode = _one(query, "mode") or "0644"
        if not re.fullmatch(r"0?[0-7]{3,4}", mode):
            raise ApiError(400, {"error": "invalid mode", "code": "EINVAL", "path": path})
        make_parents = (_one(query, "mkdirParents") or "true").lower() not in ("false", "0", "no")
        with self.lock:
            sprite = self._get(name)
            parent = posixpath.dirname(path)
            if path in sprite.dirs:
                raise ApiError(400, {"error": "is a directory", "code": "EISDIR", "path": path})
            if parent not in sprite.dirs:
                if not make_parents:
                    raise ApiError(404, {"error": "parent directory does not exist", "code": "ENOENT",
                                         "path": path})
                while parent not in sprite.dirs:
                    sprite.dirs.add(parent)
                    parent = posixpath.dirname(parent)
            sprite.files[path] = FileEntry(bytes(data), mode.zfill(4), self.wall(self.now()))
            return {"path": path, "size": len(data)}

    def fs_read(self, name: str, query: dict) -> bytes:
        path = _resolve(query)
        with self.lock:
            entry = self._get(name).files.get(path)
            if entry is None:
                raise ApiError(404, {"error": "file not found", "code": "ENOENT", "path": path})
            return entry.data

    def fs_list(self, name: str, query: dict) -> dict:
        path = _resolve(query)
        with self.lock:
            sprite = self._get(name)
            if path in sprite.files:
                entries = [self._fs_entry(path, sprite.files[path])]
            elif path in sprite.dirs:
                prefix = path.rstrip("/") + "/"
                children = {p for p in itertools.chain(sprite.files, sprite.dirs)
                            if p != path and p.startswith(prefix) and "/" not in p[len(prefix):]}
                entries = [self._fs_entry(p, sprite.files.get(p)) for p in sorted(children)]
            else:
                raise ApiError(404, {"error": "no such file or directory", "code": "ENOENT", "path": path})
            return {"path": path, "entries": entries, "count": len(entries)}

    def _fs_entry(self, path: str, entry: FileEntry | None) -> dict:
        is_dir = entry is None
        return {
            "name": posixpath.basename(path) or "/",
            "path": path,
            "type": "directory" if is_dir else "file",
            "size": 0 if is_dir else len(entry.data),
            "mode": "0755" if is_dir else entry.mode,
            "modTime": _rfc3339(entry.mtime if entry else self.wall(self.now())),
            "isDir": is_dir,
        }

    def fs_delete(self, name: str, query: dict) -> dict:
        path = _resolve(query)
        recursive = (_one(query, "recursive") or "").lower() in ("true", "1", "yes")
        with self.lock:
            sprite = self._get(name)
            if sprite.files.pop(path, None) is not None:
                return {"path": path, "deleted": True}
            if path not in sprite.dirs or path == "/":
                raise ApiError(404, {"error": "no such file or directory", "code": "ENOENT", "path": path})
            prefix = path.rstrip("/") + "/"
            inside = [p for p in itertools.chain(sprite.files, sprite.dirs) if p.startswith(prefix)]
            if inside and not recursive:
                raise ApiError(400, {"error": "directory not empty", "code": "ENOTEMPTY", "path": path})
            for p in inside:
                sprite.files.pop(p, None)
                sprite.dirs.discard(p)
            sprite.dirs.discard(path)
            return {"path": path, "deleted": True}

    # -- network policy

    def get_policy(self, name: str) -> dict:
        with self.lock:
            return {"rules": copy.deepcopy(self._get(name).policy)}

    def set_policy(self, name: str, body: Any) -> None:
        rules = body.get("rules") if isinstance(body, dict) else None
        if not isinstance(rules, list) or not all(_valid_rule(r) for r in rules):
            raise ApiError(400, {"error": "invalid policy"})
        with self.lock:
            self._get(name).policy = copy.deepcopy(rules)

    # -- the sprite URL

    def visit_url(self, name: str, path: str) -> tuple[int, dict | str]:
        """A request to the sprite's public URL: wakes it; answered by the gateway service."""
        with self.lock:
            sprite = self._get(name)
            self._touch(sprite, self.now())
            up = sprite.gateway_running()
        if path.strip("/") in ("healthz", "startupz", "readyz"):
            return (200, {"ok": True}) if up else (503, {"ok": False, "error": "gateway not running"})
        if not up:
            return 503, {"error": "no service is listening on this sprite's http_port"}
        return 200, ("<!doctype html><title>OpenClaw Control UI</title>"
                     "<p>OpenClaw gateway (Sprites emulator)</p>")


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


# --- helpers ---------------------------------------------------------------------------------


def _rfc3339(wall: float | None, *, seconds: bool = False, nanos: bool = False) -> str | None:
    if wall is None:
        return None
    moment = datetime.fromtimestamp(wall, timezone.utc)
    if seconds:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text + ("000Z" if nanos else "Z")


def _ms(wall: float) -> int:
    return int(wall * 1000)


def _one(query: dict, key: str) -> str | None:
    values = query.get(key)
    return values[-1] if values else None


def _url_settings(current: dict, update: Any) -> dict:
    if update is None:
        return dict(current)
    if not isinstance(update, dict):
        raise ApiError(400, {"errors": ["invalid url_settings"]})
    merged = {**current, **{k: v for k, v in update.items() if v is not None}}
    if merged.get("auth") not in ("sprite", "public"):
        raise ApiError(400, {"errors": ["url_settings.auth must be 'sprite' or 'public'"]})
    if merged.get("private_access") not in (None, "admins", "org_users"):
        raise ApiError(400, {"errors": ["url_settings.private_access must be 'admins' or 'org_users'"]})
    return merged


def _labels(value: Any) -> list:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, {"errors": ["labels must be a list of strings"]})
    return list(value)


def _valid_rule(rule: Any) -> bool:
    if not isinstance(rule, dict):
        return False
    if set(rule) == {"include"}:
        return rule["include"] == "defaults"
    return (set(rule) == {"domain", "action"} and isinstance(rule["domain"], str)
            and bool(rule["domain"].strip()) and rule["action"] in ("allow", "deny"))


def _resolve(query: dict) -> str:
    path = _one(query, "path")
    if not path:
        raise ApiError(400, {"error": "path is required", "code": "EINVAL"})
    working_dir = _one(query, "workingDir") or "/"
    joined = posixpath.normpath(posixpath.join("/", working_dir, path))
    return "/" + joined.lstrip("/")


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)?")


def _duration_seconds(text: str) -> float:
    """Go-style durations ("5s", "500ms", "1m30s") and bare numbers (seconds)."""
    text = str(text).strip()
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, None: 1}
    parts = _DURATION_PART.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {text!r}")
    return sum(float(n) * units[u or None] for n, u in parts)


def _hold_seconds(duration: str | None) -> float:
    """How long a service stream stays open: `duration` (default 5s), capped small so
    provisioning tests and benchmarks are not slowed by log tails nobody reads."""
    try:
        seconds = _duration_seconds(duration) if duration else 5.0
    except ValueError:
        raise ApiError(400, {"error": "invalid duration"}) from None
    return min(seconds, MAX_STREAM_HOLD)
