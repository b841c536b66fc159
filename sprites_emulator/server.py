"""The emulator's HTTP server: stdlib `ThreadingHTTPServer`, HTTP/1.1 keep-alive, stdlib only.

The routes are in routes.py (details in docs/emulator.md), the HTTP plumbing in wire.py.
Run it with `python -m sprites_emulator --port 8765` (`main` below); in this repository's
development setup, `python manage.py sprites_emulator` wraps the same functions.
"""

from __future__ import annotations

import argparse
import logging
import socket
import threading
from http.server import ThreadingHTTPServer

from .options import Options
from .routes import EmulatorHandler
from .state import EmulatorState


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for idle keep-alive connections
    allow_reuse_address = True
    request_queue_size = 1024  # benchmarks open a hundred connections at once

    def __init__(self, address: tuple[str, int], state: EmulatorState, *, log_requests: bool = False):
        self.state = state
        self.log_requests = log_requests
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, EmulatorHandler)
        host, port = self.server_address[:2]
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        self.url = f"http://{host}:{port}"
        state.base_url = self.url

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            (self._connections.add if alive else self._connections.discard)(conn)

    def close_connections(self) -> None:
        """Hang up on every client (keep-alive sockets would otherwise outlive the server)."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# --- starting it -----------------------------------------------------------------------------


def make_server(host: str = "127.0.0.1", port: int = 0, *, log_requests: bool = False,
                **options) -> EmulatorServer:
    """Bind (port 0 = any free port) and return the server; call `serve_forever()` on it."""
    return EmulatorServer((host, port), EmulatorState(Options.from_kwargs(**options)),
                          log_requests=log_requests)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags, shared by `python -m sprites_emulator` and the manage.py wrapper."""
    parser.add_argument("--host", default="127.0.0.1",
                        help="Address to bind (default 127.0.0.1: loopback only).")
    parser.add_argument("--port", type=int, default=8765, help="Port to listen on (default 8765).")
    parser.add_argument("--token", default=None,
                        help="Accept only this bearer token (default: any non-empty token).")
    parser.add_argument("--idle-seconds", type=float, default=30.0,
                        help="Seconds without activity before a running sprite goes warm (30).")
    parser.add_argument("--cold-seconds", type=float, default=300.0,
                        help="Further seconds before a warm sprite goes cold (300).")
    parser.add_argument("--exec-seconds", type=float, default=2.0,
                        help="How long a simulated `openclaw agent` heartbeat turn takes (2.0).")
    parser.add_argument("--setup-seconds", type=float, default=0.5,
                        help="How long a simulated set-up script takes (0.5).")
    parser.add_argument("--running-limit", type=int, default=10,
                        help="Sprites that may run at once; a wake past it answers 429 "
                             "concurrent_sprite_limit_exceeded (10, a small plan's cap).")
    parser.add_argument("--warm-limit", type=int, default=10,
                        help="The warm cap reported in the list's org block (10).")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="Added to every /v1 call.")
    parser.add_argument("--fault-rate", type=float, default=0.0,
                        help="Share of /v1 calls answered with a 5xx (--fault-status, default 503).")
    parser.add_argument("--fault-status", type=int, default=503)
    parser.add_argument("--rate-limit-rate", type=float, default=0.0,
                        help="Share of /v1 calls answered 429 with Retry-After (--retry-after s).")
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--drop-rate", type=float, default=0.0,
                        help="Share of /v1 calls whose connection is closed without an answer.")
    parser.add_argument("--slow-rate", type=float, default=0.0,
                        help="Share of /v1 calls delayed by an extra --slow-ms (client timeouts).")
    parser.add_argument("--slow-ms", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None, help="Seed for reproducible faults.")


OPTION_NAMES = ("token", "idle_seconds", "cold_seconds", "exec_seconds", "setup_seconds", "running_limit",
                "warm_limit", "latency_ms",
                "fault_rate", "fault_status", "rate_limit_rate", "retry_after", "drop_rate",
                "slow_rate", "slow_ms", "seed")


def options_from(values: dict) -> dict:
    return {name: values[name] for name in OPTION_NAMES if name in values}


def describe(server: EmulatorServer) -> str:
    options = server.state.options
    return (f"Sprites emulator listening on {server.url} (API at {server.url}/v1, control at "
            f"{server.url}/_emulator/state; idle {options.idle_seconds:g}s, cold after "
            f"{options.cold_seconds:g}s more; running cap {options.running_limit})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sprites_emulator", description="Local Sprites API emulator")
    add_arguments(parser)
    parser.add_argument("--log-requests", action="store_true", help="Log method, path and status.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server = make_server(args.host, args.port, log_requests=args.log_requests, **options_from(vars(args)))
    print(describe(server), flush=True)
    serve(server)


def serve(server: EmulatorServer) -> None:
    """Serve until Ctrl-C, then release the port."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
