"""Start an emulator in a background thread, for tests and benchmarks.

    with start_emulator(idle_seconds=1, exec_seconds=0.05) as emulator:
        requests.get(f"{emulator.url}/v1/sprites", headers={"Authorization": "Bearer t"})
        emulator.meter()["total_running_seconds_final"]
"""

from __future__ import annotations

import threading
from typing import Any

from .server import EmulatorServer, make_server
from .state import EmulatorState, Sprite


class EmulatorHandle:
    """A running emulator: its base URL, its state (for direct inspection) and its knobs."""

    def __init__(self, server: EmulatorServer, thread: threading.Thread):
        self.server = server
        self.thread = thread
        self.url: str = server.url
        self.state: EmulatorState = server.state

    def __repr__(self) -> str:
        return f"<EmulatorHandle {self.url}>"

    def set_faults(self, **faults: Any) -> dict:
        """Switch faults now (latency_ms, fault_rate, fault_status, rate_limit_rate,
        retry_after, drop_rate, slow_rate, slow_ms); returns the faults in force."""
        return self.state.set_faults(**faults)

    def meter(self) -> dict:
        """The exact meter, as GET /_emulator/meter answers it."""
        return self.state.meter()

    def set_behavior(self, name: str, **behavior: Any) -> dict:
        """Per-sprite overrides (heartbeat_exit_code, heartbeat_seconds, heartbeat_cost_usd,
        hang, gateway_fails); name "*" sets them for every sprite; a None value clears one."""
        return self.state.set_behavior(name, behavior)

    def add_pairing_request(self, name: str, **fields: Any) -> dict:
        """A browser asks this sprite's gateway to pair; returns the pending request."""
        return self.state.add_pairing_request(name, fields)

    def sprite(self, name: str) -> Sprite | None:
        """The internal sprite object (files, services, paired devices...), or None."""
        return self.state.sprite(name)

    def reset(self) -> None:
        self.state.reset()

    def stop(self) -> None:
        """Stop serving, end running execs and hang up on every client. Idempotent."""
        if not self.thread.is_alive():
            return
        self.server.shutdown()
        self.state.reset()  # cancels running execs so their threads end promptly
        self.server.close_connections()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> "EmulatorHandle":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def start_emulator(*, host: str = "127.0.0.1", port: int = 0, **options: Any) -> EmulatorHandle:
    """Start an emulator on a free loopback port. Options are the command's flag names:
    idle_seconds, cold_seconds, exec_seconds, setup_seconds, token, latency_ms, fault_rate,
    fault_status, rate_limit_rate, retry_after, drop_rate, slow_rate, slow_ms, seed."""
    server = make_server(host, port, **options)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                              name=f"sprites-emulator-{server.server_address[1]}", daemon=True)
    thread.start()
    return EmulatorHandle(server, thread)
