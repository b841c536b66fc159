"""Start an emulator in a background thread, for tests and benchmarks.

    with start_emulator(idle_seconds=1, exec_seconds=0.05) as emulator:
        requests.get(f"{emulator.url}/v1/sprites", headers={"Authorization": "Bearer t"})
        emulator.meter()["total_running_seconds_final"]
        emulator.service_env("claw-abc", "openclaw-gateway")["OPENCLAW_GATEWAY_TOKEN"]

The handle answers what a test needs to know about the inside of a sprite with small typed
methods, each a copy read under the emulator's lock, so tests never hold its internal objects.
"""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .models import Service, Sprite
from .server import EmulatorServer, make_server

T = TypeVar("T")


@dataclass(frozen=True)
class ServiceInfo:
    """A service as the sprite has it, env included (the API never returns env)."""

    name: str
    status: str  # "running", "stopped" or "failed"
    http_port: int | None
    env: dict[str, str]


class EmulatorHandle:
    """A running emulator: its base URL, its knobs, and read-only views of its sprites."""

    def __init__(self, server: EmulatorServer, thread: threading.Thread):
        self._server = server
        self._state = server.state
        self._thread = thread
        self.url: str = server.url

    def __repr__(self) -> str:
        return f"<EmulatorHandle {self.url}>"

    # -- knobs

    def set_faults(self, **faults: Any) -> dict:
        """Switch faults now (latency_ms, fault_rate, fault_status, rate_limit_rate,
        retry_after, drop_rate, slow_rate, slow_ms); returns the faults in force."""
        return self._state.set_faults(**faults)

    def set_behavior(self, name: str, **behavior: Any) -> dict:
        """Per-sprite overrides (heartbeat_exit_code, heartbeat_seconds, heartbeat_cost_usd,
        heartbeat_error, hang, gateway_fails, gateway_crash_on_wake, gateway_corrupt_on_wake, restore_fails);
        name "*" sets them for every sprite; a None value clears one."""
        return self._state.set_behavior(name, behavior)

    def get_behavior(self, name: str) -> dict:
        """The overrides in force for a sprite (one-shot ones vanish once spent)."""
        return self._state.get_behavior(name)

    def add_pairing_request(self, name: str, **fields: Any) -> dict:
        """A browser asks this sprite's gateway to pair; returns the pending request."""
        return self._state.add_pairing_request(name, fields)

    def create_sprite(self, name: str) -> dict:
        """Create a sprite directly (no HTTP, no faults, not counted); returns it as the API would."""
        return self._state.create_sprite({"name": name})

    def run_service(self, name: str, service: str, *, cmd: str = "openclaw", args: tuple = ("gateway",),
                    http_port: int | None = 8080, env: dict[str, str] | None = None) -> None:
        """Define a service in a sprite and leave it running (no HTTP, no wake, not counted)."""
        with self._state.lock:
            sprite = self._state._get(name)
            sprite.services[service] = Service(service, cmd, list(args), env=dict(env or {}), http_port=http_port,
                                               status="running", pid=next(self._state._ids))

    def make_orphan(self, name: str, **body: Any) -> dict:
        """A sprite made behind the control plane's back (labels, checkpoint_comment, age_seconds)."""
        return self._state.make_orphan(name, body)

    def vanish(self, name: str) -> None:
        """Delete a sprite behind the control plane's back (a ghost row)."""
        self._state.vanish(name)

    def reset(self) -> None:
        self._state.reset()

    def advance_clock(self, seconds: float) -> dict:
        """Move the emulator's clock forward (as POST /_emulator/clock): `{"now", "offset_seconds"}`."""
        return self._state.advance_clock(seconds)

    def simulate_session(self, name: str, seconds: float) -> dict:
        """A user session through the sprite URL of `seconds` on the emulator's clock (as POST
        /_emulator/sprites/{name}/session)."""
        return self._state.simulate_session(name, {"seconds": seconds})

    # -- readings

    def meter(self) -> dict:
        """The exact meter, as GET /_emulator/meter answers it."""
        return self._state.meter()

    def cap(self) -> dict:
        """The running cap's meter: running_limit, warm_limit, running (now), peak_running,
        cap_full_seconds (how long every slot was taken), capacity_rejected (429s given)."""
        return self._state.cap_meter()

    def running(self) -> int:
        """How many sprites hold a running slot now (active, or inside their idle tail)."""
        return self._state.running_count()

    def counters(self) -> dict[str, int]:
        """How many /v1 requests and execs it has served, and faults it has injected: requests,
        execs, dropped, rate_limited, failed, slowed."""
        with self._state.lock:
            return dict(self._state.counters)

    def exists(self, name: str) -> bool:
        with self._state.lock:
            return name in self._state.sprites

    def activities(self, name: str) -> int:
        """Activities in progress on the sprite (execs, sessions through its URL)."""
        return self._read(name, lambda sprite: sprite.active)

    def openclaw_installed(self, name: str) -> bool:
        """Whether a set-up script has installed OpenClaw in it."""
        return self._read(name, lambda sprite: sprite.openclaw_installed)

    def checkpoint_ids(self, name: str) -> list[str]:
        """Its checkpoints, oldest first: ["v0", "v1", ...]."""
        return self._read(name, lambda sprite: [c.id for c in sprite.checkpoints])

    def service(self, name: str, service: str) -> ServiceInfo | None:
        """That service of the sprite, env included; None if it has no such service."""
        def read(sprite: Sprite) -> ServiceInfo | None:
            found = sprite.services.get(service)
            if found is None:
                return None
            return ServiceInfo(found.name, found.status, found.http_port, dict(found.env))

        return self._read(name, read)

    def service_env(self, name: str, service: str) -> dict[str, str]:
        """The environment a service runs with (KeyError if the sprite has no such service)."""
        info = self.service(name, service)
        if info is None:
            raise KeyError(f"sprite {name!r} has no service {service!r}")
        return info.env

    def file_text(self, name: str, path: str) -> str | None:
        """A file's content as UTF-8 text, or None if there is no such file."""
        entry = self._read(name, lambda sprite: sprite.files.get(path))
        return None if entry is None else entry.data.decode()

    def file_mode(self, name: str, path: str) -> str | None:
        """A file's mode ("0600"), or None if there is no such file."""
        entry = self._read(name, lambda sprite: sprite.files.get(path))
        return None if entry is None else entry.mode

    def network_policy(self, name: str) -> list[dict]:
        """The network policy rules last set on it."""
        return self._read(name, lambda sprite: copy.deepcopy(sprite.policy))

    def pending_request_ids(self, name: str) -> set[str]:
        """The ids of the pairing requests waiting for approval."""
        return self._read(name, lambda sprite: set(sprite.pending))

    def paired_device_ids(self, name: str) -> set[str]:
        """The ids of the devices paired with its gateway."""
        return self._read(name, lambda sprite: set(sprite.paired))

    def _read(self, name: str, read: Callable[[Sprite], T]) -> T:
        """`read(sprite)` under the lock; KeyError if there is no such sprite."""
        with self._state.lock:
            sprite = self._state.sprites.get(name)
            if sprite is None:
                raise KeyError(f"no sprite named {name!r}")
            return read(sprite)

    # -- lifecycle

    def stop(self) -> None:
        """Stop serving, end running execs and hang up on every client. Idempotent."""
        if not self._thread.is_alive():
            return
        self._server.shutdown()
        self._state.reset()  # cancels running execs so their threads end promptly
        self._server.close_connections()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> EmulatorHandle:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def start_emulator(*, host: str = "127.0.0.1", port: int = 0, **options: Any) -> EmulatorHandle:
    """Start an emulator on a free loopback port. Options are the command's flag names:
    idle_seconds, cold_seconds, exec_seconds, setup_seconds, token, running_limit, warm_limit,
    latency_ms, fault_rate,
    fault_status, rate_limit_rate, retry_after, drop_rate, slow_rate, slow_ms, seed."""
    server = make_server(host, port, **options)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                              name=f"sprites-emulator-{server.server_address[1]}", daemon=True)
    thread.start()
    return EmulatorHandle(server, thread)


class EmulatorProcess:
    """An emulator in its own process (`python -m sprites_emulator`), read over its control
    endpoints: what a benchmark needs so the emulator does not share the measured process's
    CPU and GIL. The readings match `EmulatorHandle`'s (meter, cap, create_sprite)."""

    def __init__(self, process: subprocess.Popen, url: str):
        self._process = process
        self.url = url

    def __repr__(self) -> str:
        return f"<EmulatorProcess {self.url}>"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/_emulator/{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
            return json.loads(response.read())

    def create_sprites(self, names: list[str], batch: int = 2000) -> None:
        for start in range(0, len(names), batch):
            self._call("POST", "sprites", {"names": names[start:start + batch]})

    def create_sprite(self, name: str) -> None:
        self.create_sprites([name])

    def meter(self) -> dict:
        return self._call("GET", "meter")

    def cap(self) -> dict:
        return self.meter()["cap"]

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def spawn_emulator(*, host: str = "127.0.0.1", ready_timeout: float = 15.0, **options: Any) -> EmulatorProcess:
    """Start `python -m sprites_emulator` on a free loopback port with these options (the
    command's flag names, as `start_emulator`) and wait until it answers."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-m", "sprites_emulator", "--host", host, "--port", str(port)]
    for name, value in options.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    emulator = EmulatorProcess(process, f"http://{host}:{port}")
    deadline = time.monotonic() + ready_timeout
    while True:
        try:
            emulator._call("GET", "state")
            return emulator
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                emulator.stop()
                raise RuntimeError(f"the emulator did not start (exit {process.poll()}): {' '.join(argv)}") from None
            time.sleep(0.05)
