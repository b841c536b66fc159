"""The gateway's WebSocket handshake with a stdlib-only RFC 6455 client: DeviceIdentity (an
Ed25519 device as OpenClaw clients make one) and `ws_connect()`, which answers the
`connect.challenge` and returns WsResult."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import struct
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class DeviceIdentity:
    """An Ed25519 device identity as OpenClaw clients make one: id = sha256(raw public key)
    in hex, publicKey = raw key in unpadded base64url, signature over the v3 payload
    `v3|deviceId|clientId|clientMode|role|scopes,csv|signedAtMs|token|nonce|platform|deviceFamily`
    (platform and deviceFamily trimmed and lower-cased)."""

    def __init__(self):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        self._key = Ed25519PrivateKey.generate()
        self.public_raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.device_id = hashlib.sha256(self.public_raw).hexdigest()
        self.public_key = _b64url(self.public_raw)

    def sign(self, payload: str) -> str:
        return _b64url(self._key.sign(payload.encode()))

    def connect_device(self, *, client_id: str, client_mode: str, role: str, scopes: list[str],
                       token: str | None, nonce: str, signed_at: int, platform: str = "",
                       device_family: str = "") -> dict:
        payload = "|".join([
            "v3", self.device_id, client_id, client_mode, role, ",".join(scopes), str(signed_at),
            token or "", nonce, platform.strip().lower(), device_family.strip().lower(),
        ])
        return {"id": self.device_id, "publicKey": self.public_key, "signature": self.sign(payload),
                "signedAt": signed_at, "nonce": nonce}


class WsError(RuntimeError):
    pass


class WebSocket:
    """A minimal RFC 6455 client (text frames, ping/pong, close) over a plain TCP socket."""

    def __init__(self, url: str, headers: dict | None = None, timeout: float = 15):
        parts = urlsplit(url)
        if parts.scheme != "ws":
            raise ValueError("only ws:// is supported")
        host, port = parts.hostname, parts.port or 80
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
                 f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._buf = b""
        head = self._read_until(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.response_headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            self.response_headers[name.strip().lower()] = value.strip()
        self.body = b""
        if self.status != 101:
            length = int(self.response_headers.get("content-length") or 0)
            with contextlib.suppress(OSError):
                while len(self._buf) < length:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        break
                    self._buf += chunk
            self.body, self._buf = self._buf[:length] if length else self._buf, b""
            self.sock.close()
            return
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        if self.response_headers.get("sec-websocket-accept") != accept.decode():
            raise WsError("bad Sec-WebSocket-Accept")
        self.close_code: int | None = None
        self.close_reason = ""

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise WsError(f"connection closed before {marker!r}")
            self._buf += chunk
        head, _, self._buf = self._buf.partition(marker)
        return head

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise WsError("connection closed")
            self._buf += chunk
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def _send_frame(self, opcode: int, payload: bytes):
        mask = os.urandom(4)
        n = len(payload)
        header = bytes([0x80 | opcode])
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send_json(self, obj):
        self._send_frame(0x1, json.dumps(obj).encode())

    def recv(self, timeout: float = 15):
        """The next text message parsed as JSON, or None once the server closed."""
        self.sock.settimeout(timeout)
        message = b""
        while True:
            b1, b2 = self._read_exact(2)
            opcode, n = b1 & 0x0F, b2 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read_exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read_exact(8))[0]
            mask = self._read_exact(4) if b2 & 0x80 else None
            payload = self._read_exact(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.close_reason = payload[2:].decode("utf-8", "replace")
                with contextlib.suppress(OSError):
                    self._send_frame(0x8, payload[:2])
                return None
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            message += payload
            if b1 & 0x80:
                return json.loads(message)

    def close(self, code: int = 1000):
        with contextlib.suppress(OSError):
            self._send_frame(0x8, struct.pack("!H", code))
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class WsResult:
    http_status: int
    http_body: str = ""
    challenge: dict | None = None
    response: dict | None = None  # the `res` frame answering `connect`
    frames: list = field(default_factory=list)  # everything received, in order
    close_code: int | None = None
    close_reason: str = ""
    device_id: str | None = None

    @property
    def hello(self) -> dict | None:
        payload = (self.response or {}).get("payload") if (self.response or {}).get("ok") else None
        return payload if isinstance(payload, dict) and payload.get("type") == "hello-ok" else None

    @property
    def error(self) -> dict | None:
        return None if (self.response or {}).get("ok", True) else self.response.get("error")


def _signature_token(auth: dict) -> str | None:
    """The token the device signature binds: the shared or device token, else the bootstrap
    token (as the gateway client's selectGatewayConnectAuth picks it)."""
    auth = auth or {}
    return auth.get("token") or auth.get("deviceToken") or auth.get("bootstrapToken")


def ws_connect(url: str, token: str | None, *, headers: dict | None = None, device: DeviceIdentity | bool = True,
               client_id: str = "cli", client_mode: str = "cli", role: str = "operator",
               scopes: list[str] | None = None, platform: str = "linux", display_name: str | None = None,
               auth: dict | None = None, timeout: float = 20, keep_open: bool = False):
    """Open the gateway WebSocket, wait for `connect.challenge`, send `connect` (token in
    params.auth.token, a signed device identity unless device=False) and read until the
    answer to it. Returns WsResult (plus the open WebSocket when keep_open)."""
    scopes = ["operator.read", "operator.write"] if scopes is None else scopes
    identity = DeviceIdentity() if device is True else (device or None)
    ws = WebSocket(url, headers=headers, timeout=timeout)
    result = WsResult(http_status=ws.status, device_id=identity.device_id if identity else None)
    if ws.status != 101:
        result.http_body = ws.body.decode("utf-8", "replace")
        return (result, None) if keep_open else result
    deadline = time.monotonic() + timeout
    try:
        while result.challenge is None:
            frame = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            if frame is None:
                break
            result.frames.append(frame)
            if frame.get("type") == "event" and frame.get("event") == "connect.challenge":
                result.challenge = frame
        if result.challenge is not None:
            nonce, ts = result.challenge["payload"]["nonce"], result.challenge["payload"]["ts"]
            request_id = str(uuid.uuid4())
            client = {"id": client_id, "version": "clawdirector-contract", "platform": platform, "mode": client_mode}
            if display_name:
                client["displayName"] = display_name
            params = {
                "minProtocol": 4, "maxProtocol": 4, "client": client, "role": role, "scopes": scopes,
                "caps": [], "auth": auth if auth is not None else ({"token": token} if token else {}),
                "locale": "en-US", "userAgent": "clawdirector-contract/1",
            }
            if identity:
                params["device"] = identity.connect_device(
                    client_id=client_id, client_mode=client_mode, role=role, scopes=scopes,
                    token=_signature_token(params["auth"]), nonce=nonce, signed_at=ts, platform=platform)
            ws.send_json({"type": "req", "id": request_id, "method": "connect", "params": params})
            while result.response is None:
                frame = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
                if frame is None:
                    break
                result.frames.append(frame)
                if frame.get("type") == "res" and frame.get("id") == request_id:
                    result.response = frame
            if result.response is not None and not result.response.get("ok") and not keep_open:
                # The server closes after a refused connect: collect the close code.
                with contextlib.suppress(WsError, OSError, ValueError):
                    while ws.recv(timeout=max(0.1, min(3, deadline - time.monotonic()))) is not None:
                        pass
    except TimeoutError:
        pass
    except (WsError, OSError):
        pass
    result.close_code, result.close_reason = getattr(ws, "close_code", None), getattr(ws, "close_reason", "")
    if keep_open:
        return result, ws
    ws.close()
    return result
