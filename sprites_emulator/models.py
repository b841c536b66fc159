"""The emulator's model of what lives in a sprite: files, services, checkpoints, exec sessions.

Plain data. `EmulatorState` (state.py) owns every instance and guards them with its lock.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .formats import rfc3339

HOME = "/home/sprite"


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
                "started_at": rfc3339(self.started_at),
                "error": self.error,
                "restart_count": self.restart_count,
                "next_restart_at": None,
            },
        }

    def definition(self) -> Service:
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
    config_corrupt: bool = False


@dataclass
class Checkpoint:
    id: str
    create_time: float  # wall clock
    comment: str
    snapshot: Snapshot

    def to_json(self) -> dict:
        data = {"id": self.id, "create_time": rfc3339(self.create_time, seconds=True)}
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
            "created": rfc3339(self.created, seconds=True),
            "bytes_per_second": 0,
            "is_active": True,
            "last_activity": rfc3339(self.last_activity, seconds=True),
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
    # Activity and meter, all monotonic seconds. See state.py's docstring.
    active: int = 0
    run_start: float | None = None  # start of the current (or last) running period
    last_end: float | None = None  # when the last activity ended
    closed_seconds: float = 0.0  # length of the running periods already over
    previous_warming: float | None = None  # monotonic time the previous period went warm
    wakes: int = 0
    url_sessions: int = 0  # sessions opened through the sprite URL (sessions.py)
    # Inside the VM
    files: dict = field(default_factory=dict)
    dirs: set = field(default_factory=lambda: {"/", "/home", HOME, "/tmp"})
    services: dict = field(default_factory=dict)
    openclaw_installed: bool = False
    config_corrupt: bool = False  # the OpenClaw config is broken: the gateway exits 78
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
            config_corrupt=self.config_corrupt,
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
