"""The per-sprite test knobs of the control endpoints: behaviour overrides and simulated
pairing requests (POST /_emulator/sprites/{name}/behavior and .../pairing-request).

A mixin of `EmulatorState` (state.py).
"""

from __future__ import annotations

import base64
import secrets
import uuid
from typing import Any

from .errors import ApiError

# Per-sprite test overrides accepted by POST /_emulator/sprites/{name}/behavior.
BEHAVIOR_FIELDS: dict[str, type] = {
    "heartbeat_exit_code": int,
    "heartbeat_seconds": float,
    "heartbeat_cost_usd": float,
    "heartbeat_error": str,  # the failed turn's message (with heartbeat_exit_code)
    "hang": bool,
    "gateway_fails": bool,
    # drift.py: one-shot, spent on the sprite's next wake; and a restore that fails.
    "gateway_crash_on_wake": bool,
    "gateway_corrupt_on_wake": bool,
    "restore_fails": bool,
}


class ControlMixin:
    def set_behavior(self, name: str, changes: Any) -> dict:
        """Per-sprite overrides for tests; `*` sets the default for every sprite. The sprite
        need not exist yet (tests often know the name before ClawDirector creates it)."""
        clean = _clean_behavior(changes)
        with self.lock:
            current = self.behaviors.setdefault(name, {})
            for key, value in clean.items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = value
            return dict(current)

    def get_behavior(self, name: str) -> dict:
        with self.lock:
            return self._behavior(name)

    def _behavior(self, name: str) -> dict:
        return {**self.behaviors.get("*", {}), **self.behaviors.get(name, {})}

    def add_pairing_request(self, name: str, body: Any = None) -> dict:
        """Simulate a browser asking the sprite's gateway to pair (it then waits for approval).
        Shape: OpenClaw's DevicePairingPendingRequest (src/infra/device-pairing.ts)."""
        body = body if isinstance(body, dict) else {}
        with self.lock:
            sprite = self._get(name)
            request = {
                "requestId": str(body.get("requestId") or uuid.uuid4()),
                "deviceId": str(body.get("deviceId") or secrets.token_hex(32)),
                "publicKey": str(body.get("publicKey") or base64.b64encode(secrets.token_bytes(32)).decode()),
                "displayName": str(body.get("displayName") or "Chrome on macOS"),
                "platform": str(body.get("platform") or "web"),
                "clientId": "openclaw-control-ui",
                "clientMode": "webchat",
                "role": str(body.get("role") or "operator"),
                "roles": [str(body.get("role") or "operator")],
                "scopes": ["operator.read", "operator.write"],
                "remoteIp": str(body.get("remoteIp") or "203.0.113.7"),
                "silent": False,
                "isRepair": False,
                "ts": int(self.wall(self.now()) * 1000),
            }
            sprite.pending[request["requestId"]] = request
            return dict(request)


def _clean_behavior(changes: Any) -> dict:
    """The overrides, type-checked; ApiError(400) on an unknown key or a wrong type."""
    if not isinstance(changes, dict):
        raise ApiError(400, {"error": "behavior must be a JSON object"})
    clean = {}
    for key, value in changes.items():
        kind = BEHAVIOR_FIELDS.get(key)
        if kind is None:
            raise ApiError(400, {"error": f"unknown behavior {key!r}; known: "
                                          + ", ".join(BEHAVIOR_FIELDS)})
        if value is None:
            clean[key] = None
            continue
        if kind is bool and not isinstance(value, bool):
            raise ApiError(400, {"error": f"{key} must be true or false"})
        if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ApiError(400, {"error": f"{key} must be a number"})
        if kind is str and not isinstance(value, str):
            raise ApiError(400, {"error": f"{key} must be a string"})
        clean[key] = kind(value)
    return clean
