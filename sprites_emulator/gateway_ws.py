"""The gateway's WebSocket on a sprite URL, as far as the emulator speaks it: RFC 6455 frames
(stdlib), and OpenClaw 2026.9.6's opening (tests/fixtures/openclaw/2026.9.6/README.md): the
server's `connect.challenge` event, then a `connect` request answered `hello-ok` when its
`auth.token` is the gateway's token and `AUTH_TOKEN_MISMATCH` (then a 1008 close) when not.
After the hello the connection is only held open: it is the user's session (sessions.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
import uuid

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


def accept_key(client_key: str) -> str:
    return base64.b64encode(hashlib.sha1((client_key + GUID).encode()).digest()).decode()


def send_frame(wfile, opcode: int, payload: bytes) -> None:
    header = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        header += bytes([n])
    elif n < 1 << 16:
        header += bytes([126]) + struct.pack(">H", n)
    else:
        header += bytes([127]) + struct.pack(">Q", n)
    wfile.write(header + payload)
    wfile.flush()


def send_json(wfile, value: dict) -> None:
    send_frame(wfile, TEXT, json.dumps(value).encode())


def read_frame(rfile) -> tuple[int, bytes] | None:
    """(opcode, payload) of the next frame from a client (masked); None when it hung up."""
    head = rfile.read(2)
    if len(head) < 2:
        return None
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    if length == 126:
        length = struct.unpack(">H", rfile.read(2))[0]
    elif length == 127:
        length = struct.unpack(">Q", rfile.read(8))[0]
    mask = rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
    data = rfile.read(length)
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def challenge() -> dict:
    return {"type": "event", "event": "connect.challenge",
            "payload": {"nonce": str(uuid.uuid4()), "ts": int(time.time() * 1000), "capabilities": []}}


def answer_connect(request: dict, token: str) -> tuple[dict, bool]:
    """The answer to a `connect` request and whether the connection stays open."""
    params = request.get("params") if isinstance(request.get("params"), dict) else {}
    auth = params.get("auth") if isinstance(params.get("auth"), dict) else {}
    if token and auth.get("token") == token:
        return {"type": "res", "id": request.get("id"), "ok": True, "payload": {
            "type": "hello-ok", "protocol": 4, "server": {"version": "2026.9.6-emulated"},
            "auth": {"method": "token", "role": params.get("role", "operator"), "scopes": []}}}, True
    message = "unauthorized: gateway token mismatch"
    return {"type": "res", "id": request.get("id"), "ok": False, "error": {
        "code": "INVALID_REQUEST", "message": message,
        "details": {"code": "AUTH_TOKEN_MISMATCH", "retryable": False}}}, False


def serve(rfile, wfile, token: str) -> None:
    """Speak the gateway's side until the client hangs up: the challenge, the answer to its
    `connect`, pongs to pings; a refused connect is closed with 1008, as the real one does."""
    send_json(wfile, challenge())
    while True:
        frame = read_frame(rfile)
        if frame is None:
            return
        opcode, payload = frame
        if opcode == CLOSE:
            send_frame(wfile, CLOSE, payload[:2])
            return
        if opcode == PING:
            send_frame(wfile, PONG, payload)
            continue
        if opcode != TEXT:
            continue
        try:
            request = json.loads(payload)
        except ValueError:
            continue
        if isinstance(request, dict) and request.get("method") == "connect":
            answer, stays = answer_connect(request, token)
            send_json(wfile, answer)
            if not stays:
                reason = answer["error"]["message"].encode()[:120]
                send_frame(wfile, CLOSE, struct.pack(">H", 1008) + reason)
                return
