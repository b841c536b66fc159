"""Loopback, the one address of the contract suite: a free port on 127.0.0.1 and
`http_get(port, path)` -> (status, parsed JSON or text), None when nothing answers."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def http_get(port: int, path: str, *, headers: dict | None = None, timeout: float = 5):
    """(status, body) from http://127.0.0.1:<port><path>; body parsed as JSON when it is.
    Status is None when nothing answers (connection refused/reset/timeout)."""
    request = urllib.request.Request(f"http://{LOOPBACK}:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (OSError, urllib.error.URLError):
        return None, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")
