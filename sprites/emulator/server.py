"""The emulator's HTTP layer: stdlib `ThreadingHTTPServer`, HTTP/1.1 keep-alive, no Django.

Routes (details in docs/emulator.md):

    /v1/...                  the Sprites REST API (bearer token; latency and faults apply)
    /_sprite/{name}/...      the sprite's public URL (wakes it; answered by its gateway)
    /_emulator/...           control: meter, state, reset, faults, behaviours, pairing

Exec answers are chunked with exactly one frame per HTTP chunk (stream byte + payload, exit
frame `0x03 <code>` last), which lets a client split stdout from stderr without a length
field. Nothing here logs a header, a query string or a body: exec arguments and service
environments carry gateway tokens.

Run it on its own with `python -m sprites.emulator.server --port 8765` or through
`python manage.py sprites_emulator`.
"""

from __future__ import annotations

import argparse
import json
import logging
import select
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable
from urllib.parse import parse_qs, unquote, urlsplit

from .state import SPRITE_VERSION, ApiError, ClientGone, EmulatorState, Options

logger = logging.getLogger("sprites.emulator")

MAX_BODY = 256 * 1024 * 1024  # fs/write uploads can be tarballs
_BAD_JSON = object()


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


class EmulatorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sprites-emulator"
    sys_version = ""
    disable_nagle_algorithm = True  # small frames must leave at once (no 40 ms Nagle stalls)
    timeout = 900  # reap keep-alive connections idle this long
    server: EmulatorServer

    # -- plumbing

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet by default. With --verbosity 2, one line per request: method and path only,
        never the query string (exec arguments and tokens live there)."""

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        if self.server.log_requests:
            logger.info("%s %s %s", self.command, urlsplit(self.path).path, code)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib answers malformed requests with HTML; an API answers with JSON."""
        self.close_connection = True
        try:
            self._send_json(code, {"error": message or self.responses.get(code, ("error",))[0]})
        except OSError:
            pass

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        self._headers_sent = False
        self._status = 0
        try:
            self._read_body()
            parts = urlsplit(self.path)
            self._query = parse_qs(parts.query, keep_blank_values=True)
            segments = [unquote(s) for s in parts.path.split("/")[1:]]
            if segments and segments[-1] == "" and len(segments) > 1:
                segments.pop()
            if segments[:1] == ["v1"]:
                self._v1(segments[1:])
            elif segments[:1] == ["_emulator"]:
                self._control(segments[1:])
            elif segments[:1] == ["_sprite"] and len(segments) >= 2:
                self._sprite_url(segments[1], "/".join(segments[2:]))
            else:
                raise ApiError(404, {"error": "not found"})
        except ApiError as exc:
            self._send_json(exc.status, exc.body, exc.headers)
        except (ClientGone, ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            logger.exception("Emulator error on %s %s", self.command, urlsplit(self.path).path)
            self.close_connection = True
            if not self._headers_sent:
                try:
                    self._send_json(500, {"error": "internal emulator error"})
                except OSError:
                    pass
        self.log_request(self._status or "-")

    def _read_body(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline(64).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                total += size
                if total > MAX_BODY:
                    raise ApiError(413, {"error": "request body too large"})
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
            self._body = b"".join(chunks)
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ApiError(400, {"error": "invalid Content-Length"}) from None
        if length > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, {"error": "request body too large"})
        self._body = self.rfile.read(length) if length > 0 else b""

    def _json_body(self, *, optional: bool = False) -> Any:
        if not self._body.strip():
            if optional:
                return None
            raise ApiError(400, {"error": "request body must be JSON"})
        try:
            return json.loads(self._body)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, {"error": "malformed JSON body"}) from None

    # -- responses (head and body go out in one write: fewer packets, no Nagle stalls)

    def _head(self, status: int, headers: dict[str, str]) -> bytes:
        self._status = status
        reason = self.responses.get(status, ("",))[0]
        lines = [f"HTTP/1.1 {status} {reason}", f"Date: {self.date_time_string()}",
                 f"Server: {self.server_version}", f"Sprite-Version: {SPRITE_VERSION}"]
        lines += [f"{key}: {value}" for key, value in headers.items()]
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, status: int, body: bytes = b"", content_type: str | None = None,
              headers: dict | None = None) -> None:
        all_headers = dict(headers or {})
        if content_type:
            all_headers["Content-Type"] = content_type
        if status != 204 and status >= 200:
            all_headers["Content-Length"] = str(len(body))
        head = self._head(status, all_headers)
        self._headers_sent = True
        self.wfile.write(head + (b"" if self.command == "HEAD" or status == 204 else body))

    def _send_json(self, status: int, data: Any, headers: dict | None = None) -> None:
        body = json.dumps(data, separators=(",", ":")).encode()
        self._send(status, body, "application/json", headers)

    def _start_chunked(self, content_type: str) -> None:
        head = self._head(200, {"Content-Type": content_type, "Transfer-Encoding": "chunked",
                                "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})
        self._headers_sent = True
        self.wfile.write(head)

    def _chunk(self, data: bytes) -> None:
        if not data:
            return  # an empty chunk would end the body
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        except OSError as exc:
            raise ClientGone() from exc

    def _end_chunked(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
        except OSError as exc:
            raise ClientGone() from exc

    def _stream_ndjson(self, events: Iterable) -> None:
        """NDJSON, one event per chunk; a float in the stream means "hold this long"."""
        try:
            self._start_chunked("application/x-ndjson")
            for event in events:
                if isinstance(event, float):
                    time.sleep(event)
                    continue
                self._chunk(json.dumps(event, separators=(",", ":")).encode() + b"\n")
            self._end_chunked()
        finally:
            close = getattr(events, "close", None)
            if close:
                close()

    def _client_connected(self) -> bool:
        """True unless the client has closed its end (hung up, or readable with nothing to
        read). poll(), not select(): select() fails past file descriptor 1024."""
        try:
            poller = select.poll()
            poller.register(self.connection, select.POLLIN | select.POLLHUP | select.POLLERR)
            events = poller.poll(0)
            if not events:
                return True
            if events[0][1] & (select.POLLHUP | select.POLLERR):
                return False
            return self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except BlockingIOError:
            return True
        except (OSError, ValueError):
            return False

    # -- /v1: the Sprites API

    def _v1(self, path: list[str]) -> None:
        state = self.server.state
        faults, outcome, slowed = state.roll_faults()
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        if outcome == "drop":
            # Close without a word: the client sees a reset/closed connection.
            self.close_connection = True
            self._headers_sent = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if outcome == "rate_limit":
            raise self._rate_limited(faults.retry_after, path)
        if outcome == "fail":
            raise ApiError(faults.fault_status, {"error": "the Sprites API is temporarily unavailable "
                                                          "(emulated fault)"})
        if slowed:
            time.sleep(faults.slow_ms / 1000)
        if not state.token_ok(self.headers.get("Authorization")):
            raise ApiError(401, {"error": "authentication failed"})
        self._api(path)

    @staticmethod
    def _rate_limited(retry_after: float, path: list[str]) -> ApiError:
        creating = path == ["sprites"]
        # The real API sends whole seconds; a fraction is passed through as given so tests
        # can inject rate limits without sleeping a full second per retry.
        seconds = f"{retry_after:g}"
        return ApiError(429, {
            "error": "sprite_creation_rate_limited" if creating else "rate_limited",
            "message": "Rate limit exceeded (emulated); retry later",
            "limit": 10,
            "window_seconds": 60,
            "retry_after_seconds": retry_after,
            "current_count": 10,
            "upgrade_available": False,
            "upgrade_url": None,
        }, {
            "Retry-After": seconds,
            "X-RateLimit-Limit": "10",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(time.time() + retry_after)),
        })

    def _api(self, path: list[str]) -> None:
        state, method, q = self.server.state, self.command, self._query
        if path[:1] != ["sprites"]:
            raise ApiError(404, {"error": "not found"})
        if len(path) == 1:
            if method == "GET":
                return self._send_json(200, state.list_sprites(q))
            if method == "POST":
                return self._send_json(201, state.create_sprite(self._json_body()))
            raise _method_not_allowed()
        name, rest = path[1], path[2:]
        if not rest:
            if method == "GET":
                return self._send_json(200, state.get_sprite(name))
            if method == "PUT":
                return self._send_json(200, state.update_sprite(name, self._json_body()))
            if method == "DELETE":
                state.delete_sprite(name)
                return self._send(204)
            raise _method_not_allowed()
        head, tail = rest[0], rest[1:]
        if head == "exec":
            return self._exec(name, tail)
        if head == "services":
            return self._services(name, tail)
        if head == "checkpoint" and not tail and method == "POST":
            return self._stream_ndjson(state.create_checkpoint(name, self._json_body(optional=True)))
        if head == "checkpoints":
            if not tail and method == "GET":
                return self._send_json(200, state.list_checkpoints(name))
            if len(tail) == 1 and method == "GET":
                return self._send_json(200, state.get_checkpoint(name, tail[0]))
            if len(tail) == 2 and tail[1] == "restore" and method == "POST":
                return self._stream_ndjson(state.restore_checkpoint(name, tail[0]))
        if head == "fs" and len(tail) == 1:
            return self._fs(name, tail[0])
        if head == "policy" and tail == ["network"]:
            if method == "GET":
                return self._send_json(200, state.get_policy(name))
            if method == "POST":
                state.set_policy(name, self._json_body())
                return self._send(204)
            raise _method_not_allowed()
        if head == "upgrade" and not tail and method == "POST":
            state.upgrade_sprite(name)
            return self._send(204)
        state.get_sprite(name)  # a missing sprite is a 404 whatever the rest of the path
        raise ApiError(404, {"error": "not found"})

    def _exec(self, name: str, tail: list[str]) -> None:
        state, method = self.server.state, self.command
        if not tail and method == "GET":
            return self._send_json(200, state.list_sessions(name))
        if len(tail) == 2 and tail[1] == "kill" and method == "POST":
            body = self._json_body(optional=True)
            signal = (body or {}).get("signal") if isinstance(body, dict) else None
            signal = signal or (self._query.get("signal") or ["TERM"])[-1]
            return self._stream_ndjson(state.kill_session(name, tail[0], signal))
        if tail or method != "POST":
            raise _method_not_allowed() if not tail else ApiError(404, {"error": "not found"})
        argv = self._query.get("cmd") or []
        if not argv and self._query.get("path"):
            argv = self._query["path"][-1:]
        workdir = (self._query.get("dir") or [None])[-1]
        sprite, session = state.begin_exec(name, argv, workdir)
        try:
            session.connected = self._client_connected
            self._start_chunked("application/octet-stream")
            code = state.run_exec(sprite, session, argv, lambda stream, data: self._chunk(bytes([stream]) + data))
            self._chunk(bytes([3, code & 0xFF]))
            self._end_chunked()
        finally:
            state.end_exec(sprite, session)

    def _services(self, name: str, tail: list[str]) -> None:
        state, method = self.server.state, self.command
        duration = (self._query.get("duration") or [None])[-1]
        if not tail:
            if method == "GET":
                return self._send_json(200, state.list_services(name))
            raise _method_not_allowed()
        service = tail[0]
        if len(tail) == 1:
            if method == "GET":
                return self._send_json(200, state.get_service(name, service))
            if method == "PUT":
                return self._stream_ndjson(state.put_service(name, service, self._json_body(), duration))
            if method == "DELETE":
                state.delete_service(name, service)
                return self._send(204)
            raise _method_not_allowed()
        if len(tail) == 2 and method == "POST" and tail[1] == "start":
            return self._stream_ndjson(state.start_service(name, service, duration))
        if len(tail) == 2 and method == "POST" and tail[1] == "stop":
            return self._stream_ndjson(state.stop_service(name, service))
        raise ApiError(404, {"error": "not found"})

    def _fs(self, name: str, op: str) -> None:
        state, method, q = self.server.state, self.command, self._query
        if op == "write" and method in ("PUT", "POST"):
            return self._send_json(200, state.fs_write(name, q, self._body))
        if op == "read" and method == "GET":
            return self._send(200, state.fs_read(name, q), "application/octet-stream")
        if op == "list" and method == "GET":
            return self._send_json(200, state.fs_list(name, q))
        if op == "delete" and method == "DELETE":
            return self._send_json(200, state.fs_delete(name, q))
        raise ApiError(404, {"error": "not found"})

    # -- the sprite URL

    def _sprite_url(self, name: str, rest: str) -> None:
        status, body = self.server.state.visit_url(name, rest)
        if isinstance(body, dict):
            return self._send_json(status, body)
        return self._send(status, body.encode(), "text/html; charset=utf-8")

    # -- control endpoints (no auth, no faults: they are the test harness, loopback only)

    def _control(self, path: list[str]) -> None:
        state, method = self.server.state, self.command
        if path == ["meter"] and method == "GET":
            return self._send_json(200, state.meter())
        if path == ["state"] and method == "GET":
            return self._send_json(200, state.summary())
        if path == ["reset"] and method == "POST":
            state.reset()
            return self._send_json(200, {"ok": True})
        if path == ["faults"]:
            if method == "GET":
                return self._send_json(200, state.get_faults())
            if method == "POST":
                body = self._json_body()
                if not isinstance(body, dict):
                    raise ApiError(400, {"error": "faults must be a JSON object"})
                return self._send_json(200, state.set_faults(**body))
            raise _method_not_allowed()
        if len(path) == 3 and path[0] == "sprites":
            name, what = path[1], path[2]
            if what == "behavior":
                if method == "GET":
                    return self._send_json(200, state.get_behavior(name))
                if method == "POST":
                    return self._send_json(200, state.set_behavior(name, self._json_body()))
                raise _method_not_allowed()
            if what == "pairing-request" and method == "POST":
                return self._send_json(201, state.add_pairing_request(name, self._json_body(optional=True)))
        raise ApiError(404, {"error": "not found"})


def _method_not_allowed() -> ApiError:
    return ApiError(405, {"error": "method not allowed"})


# --- starting it -----------------------------------------------------------------------------


def make_server(host: str = "127.0.0.1", port: int = 0, *, log_requests: bool = False,
                **options) -> EmulatorServer:
    """Bind (port 0 = any free port) and return the server; call `serve_forever()` on it."""
    return EmulatorServer((host, port), EmulatorState(Options.from_kwargs(**options)),
                          log_requests=log_requests)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags, shared by `manage.py sprites_emulator` and `python -m ...server`."""
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


OPTION_NAMES = ("token", "idle_seconds", "cold_seconds", "exec_seconds", "setup_seconds", "latency_ms",
                "fault_rate", "fault_status", "rate_limit_rate", "retry_after", "drop_rate",
                "slow_rate", "slow_ms", "seed")


def options_from(values: dict) -> dict:
    return {name: values[name] for name in OPTION_NAMES if name in values}


def describe(server: EmulatorServer) -> str:
    options = server.state.options
    return (f"Sprites emulator listening on {server.url} (API at {server.url}/v1, control at "
            f"{server.url}/_emulator/state; idle {options.idle_seconds:g}s, cold after "
            f"{options.cold_seconds:g}s more)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local Sprites API emulator")
    add_arguments(parser)
    parser.add_argument("--log-requests", action="store_true", help="Log method, path and status.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server = make_server(args.host, args.port, log_requests=args.log_requests, **options_from(vars(args)))
    print(describe(server), flush=True)
    serve(server)


def serve(server: "EmulatorServer") -> None:
    """Serve until Ctrl-C, then release the port."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
