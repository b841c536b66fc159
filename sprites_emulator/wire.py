"""The HTTP plumbing under the routes: reading request bodies, writing answers (plain,
chunked, NDJSON) and noticing a client that hung up.

`WireHandler` knows nothing of sprites; routes.py's `EmulatorHandler` builds on it. Head and
body go out in one write: fewer packets, no Nagle stalls.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import ApiError, ClientGone
from .state import SPRITE_VERSION

if TYPE_CHECKING:
    from .server import EmulatorServer

logger = logging.getLogger("sprites_emulator")

MAX_BODY = 256 * 1024 * 1024  # fs/write uploads can be tarballs


class WireHandler(BaseHTTPRequestHandler):
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
        """Quiet by default. With request logging on, one line per request: method and path only,
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

    # -- request bodies

    def _read_body(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._body = self._read_chunked_body()
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ApiError(400, {"error": "invalid Content-Length"}) from None
        if length > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, {"error": "request body too large"})
        self._body = self.rfile.read(length) if length > 0 else b""

    def _read_chunked_body(self) -> bytes:
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
        return b"".join(chunks)

    def _json_body(self, *, optional: bool = False) -> Any:
        if not self._body.strip():
            if optional:
                return None
            raise ApiError(400, {"error": "request body must be JSON"})
        try:
            return json.loads(self._body)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, {"error": "malformed JSON body"}) from None

    # -- answers

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
