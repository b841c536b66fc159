"""The emulator's routes: which `EmulatorState` call answers which request.

    /v1/...                  the Sprites REST API (bearer token; latency and faults apply)
    /_sprite/{name}/...      the sprite's public URL (wakes it; answered by its gateway)
    /_emulator/...           control: meter, state, reset, faults, behaviours, pairing

Exec answers are chunked with exactly one frame per HTTP chunk (stream byte + payload, exit
frame `0x03 <code>` last), which lets a client split stdout from stderr without a length
field. Nothing here logs a header, a query string or a body: exec arguments and service
environments carry gateway tokens.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import parse_qs, unquote, urlsplit

from . import gateway_ws
from .errors import ApiError, ClientGone
from .wire import WireHandler, logger


class EmulatorHandler(WireHandler):
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
        state, method = self.server.state, self.command
        if path[:1] != ["sprites"]:
            raise ApiError(404, {"error": "not found"})
        if len(path) == 1:
            if method == "GET":
                return self._send_json(200, state.list_sprites(self._query))
            if method == "POST":
                return self._send_json(201, state.create_sprite(self._json_body()))
            raise _method_not_allowed()
        name, rest = path[1], path[2:]
        if rest:
            return self._sprite_resource(name, rest[0], rest[1:])
        if method == "GET":
            return self._send_json(200, state.get_sprite(name))
        if method == "PUT":
            return self._send_json(200, state.update_sprite(name, self._json_body()))
        if method == "DELETE":
            state.delete_sprite(name)
            return self._send(204)
        raise _method_not_allowed()

    def _sprite_resource(self, name: str, head: str, tail: list[str]) -> None:
        state, method = self.server.state, self.command
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
            if len(tail) == 1 and method == "DELETE":
                state.delete_checkpoint(name, tail[0])
                return self._send(204)
            if len(tail) == 2 and tail[1] == "restore" and method == "POST":
                return self._stream_ndjson(state.restore_checkpoint(name, tail[0]))
        if head == "fs" and len(tail) == 1:
            return self._fs(name, tail[0])
        if head == "policy" and tail == ["network"]:
            return self._policy(name)
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
        finally:  # the process has ended before the client reads its exit code, as on the real VM
            state.end_exec(sprite, session)
        self._chunk(bytes([3, code & 0xFF]))
        self._end_chunked()

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

    def _policy(self, name: str) -> None:
        state, method = self.server.state, self.command
        if method == "GET":
            return self._send_json(200, state.get_policy(name))
        if method == "POST":
            state.set_policy(name, self._json_body())
            return self._send(204)
        raise _method_not_allowed()

    # -- the sprite URL

    def _sprite_url(self, name: str, rest: str) -> None:
        if self.headers.get("Upgrade", "").lower() == "websocket":
            return self._url_session(name)
        status, body = self.server.state.visit_url(name, rest)
        if isinstance(body, dict):
            return self._send_json(status, body)
        return self._send(status, body.encode(), "text/html; charset=utf-8")

    def _url_session(self, name: str) -> None:
        """A WebSocket to the sprite URL (the user's browser on its gateway): answered 101, then
        the gateway's opening (gateway_ws.py: the challenge, `connect` with the gateway token
        answered hello-ok, a wrong token refused and closed 1008); the sprite stays running
        until the client hangs up (sessions.py)."""
        state = self.server.state
        sprite = state.open_session(name)
        if not sprite.gateway_running():  # the session ends before the client hears the 503
            state.close_session(sprite)
            return self._send_json(503, {"error": "no service is listening on this sprite's http_port"})
        try:
            token = sprite.gateway().env.get("OPENCLAW_GATEWAY_TOKEN", "")
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            key = self.headers.get("Sec-WebSocket-Key")
            if key:
                self.send_header("Sec-WebSocket-Accept", gateway_ws.accept_key(key))
            self.end_headers()
            self.wfile.flush()
            self._headers_sent = True
            self.close_connection = True
            gateway_ws.serve(self.rfile, self.wfile, token)
        finally:
            state.close_session(sprite)

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
        if path == ["sprites"] and method == "POST":
            return self._send_json(201, {"created": self._create_many(state)})
        if path == ["clock"]:
            if method == "GET":
                return self._send_json(200, state.clock())
            if method == "POST":
                body = self._json_body()
                return self._send_json(200, state.advance_clock(body.get("advance") if isinstance(body, dict) else None))
            raise _method_not_allowed()
        if len(path) == 3 and path[0] == "sprites":
            return self._control_sprite(path[1], path[2])
        raise ApiError(404, {"error": "not found"})

    def _create_many(self, state) -> int:
        """POST /_emulator/sprites {"names": [...]}: create sprites directly (a benchmark's
        fleet; no latency, no faults, not counted), as `EmulatorHandle.create_sprite` does."""
        body = self._json_body()
        names = body.get("names") if isinstance(body, dict) else None
        if not isinstance(names, list) or not all(isinstance(name, str) and name for name in names):
            raise ApiError(400, {"error": "names must be a list of sprite names"})
        for name in names:
            state.create_sprite({"name": name})
        return len(names)

    def _control_sprite(self, name: str, what: str) -> None:
        state, method = self.server.state, self.command
        if what == "behavior":
            if method == "GET":
                return self._send_json(200, state.get_behavior(name))
            if method == "POST":
                return self._send_json(200, state.set_behavior(name, self._json_body()))
            raise _method_not_allowed()
        if what == "session" and method == "POST":
            return self._send_json(201, state.simulate_session(name, self._json_body()))
        if what == "pairing-request" and method == "POST":
            return self._send_json(201, state.add_pairing_request(name, self._json_body(optional=True)))
        if what == "orphan" and method == "POST":
            return self._send_json(201, state.make_orphan(name, self._json_body(optional=True)))
        if what == "vanish" and method == "POST":
            state.vanish(name)
            return self._send(204)
        raise ApiError(404, {"error": "not found"})


def _method_not_allowed() -> ApiError:
    return ApiError(405, {"error": "method not allowed"})
