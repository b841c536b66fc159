"""The gateway's WebSocket `connect` as ClawDirector probes it after a wake: the user's gateway
token, no device identity, so nothing is paired and no pairing request is left behind.

What the real OpenClaw 2026.9.6 does with it (tests/fixtures/openclaw/2026.9.6/README.md, pinned
by tests/openclaw_contract/test_smoke.py): the server opens with a `connect.challenge` event; a
`connect` request with the right token and no device is answered `hello-ok` (with no scopes:
the probe can do nothing else); a wrong token is `ok: false` with `AUTH_TOKEN_MISMATCH`, then a
1008 close. So a `hello-ok` proves, end to end through the sprite URL, that the gateway runs,
speaks its protocol and accepts the token the user's browser holds.
"""

from __future__ import annotations

import uuid

PROTOCOL = 4
CLIENT = {"id": "cli", "version": "clawdirector-probe", "platform": "linux", "mode": "probe"}


def probe_request(token: str) -> dict:
    """The `connect` request frame (after the server's challenge)."""
    return {"type": "req", "id": str(uuid.uuid4()), "method": "connect", "params": {
        "minProtocol": PROTOCOL, "maxProtocol": PROTOCOL, "client": dict(CLIENT), "role": "operator",
        "scopes": [], "caps": [], "auth": {"token": token}}}


def probe_problem(frames: list[dict]) -> str:
    """"" when the gateway said `hello-ok` to the probe, else why not (never the token)."""
    answer = next((f for f in frames if isinstance(f, dict) and f.get("type") == "res"), None)
    if answer is None:
        first = frames[0].get("event") if frames and isinstance(frames[0], dict) else None
        return "WebSocket connect: no answer" + ("" if first == "connect.challenge" else " (no challenge)")
    payload = answer.get("payload") if isinstance(answer.get("payload"), dict) else {}
    if answer.get("ok") is True and payload.get("type") == "hello-ok":
        return ""
    error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
    details = error.get("details") if isinstance(error.get("details"), dict) else {}
    code = str(details.get("code") or error.get("code") or "refused")[:80]
    return f"WebSocket connect refused: {code}"
