"""The end-to-end gateway check: `GET <sprite URL>/startupz`, and a WebSocket exchange on the
sprite URL (`ws_exchange`), as a browser reaches the gateway.

Not the Sprites API: the sprite's public URL (url_auth "public"), answered by the OpenClaw
gateway itself (200 once start-up finished, 503 while starting or when no service listens:
../shared/openclaw.md "Health"). Its own pooled session, WITHOUT the org token: that token
must never reach a sprite. A request to the URL wakes the sprite, so it is only made right
after a wake (the heartbeat's turn, a start, a heal).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import requests
from requests.adapters import HTTPAdapter
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

STARTUPZ = "/startupz"
_session: requests.Session | None = None
_lock = threading.Lock()


def _get_session() -> requests.Session:
    global _session
    with _lock:
        if _session is None:
            _session = requests.Session()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=128, max_retries=0)
            _session.mount("http://", adapter)
            _session.mount("https://", adapter)
            _session.headers["User-Agent"] = "clawdirector/1.0 (gateway check)"
        return _session


def check_gateway(url: str, *, timeout: float = 5.0, wait: float = 0.0, interval: float = 1.0) -> str:
    """"" when the gateway behind `url` answers /startupz with 200, else why not (no URL, no
    body, no secret in it). `wait` > 0 keeps asking until then (a gateway restarting takes
    ~17 s to answer 200)."""
    if not url:
        return "no sprite URL"
    deadline = time.monotonic() + wait
    while True:
        problem = _once(url.rstrip("/") + STARTUPZ, timeout)
        if not problem or time.monotonic() + interval > deadline:
            return problem
        time.sleep(interval)


def _once(target: str, timeout: float) -> str:
    try:
        response = _get_session().get(target, timeout=(timeout, timeout), allow_redirects=False)
    except requests.Timeout:
        return f"/startupz did not answer within {timeout:g}s"
    except requests.RequestException as exc:
        return f"/startupz unreachable ({type(exc).__name__})"
    status = response.status_code
    response.close()
    return "" if status == 200 else f"/startupz answered {status}"


def ws_exchange(url: str, request: Callable[[dict], dict], *, timeout: float = 5.0, max_frames: int = 8) -> list[dict]:
    """Open a WebSocket on the sprite URL (no Origin, no org token), read the server's first
    frame, send `request(first frame)`, and read until an answer (a `res` frame) or the close.
    Returns the JSON frames received. Raises OSError/TimeoutError/websockets' errors on a
    connection that fails; the caller words them."""
    target = "ws" + url.rstrip("/")[4:] + "/" if url.startswith("http") else url
    frames: list[dict] = []
    with connect(target, open_timeout=timeout, close_timeout=1, max_size=2**22,
                 user_agent_header="clawdirector/1.0 (gateway check)") as ws:
        try:
            frames.append(_frame(ws.recv(timeout=timeout)))
            ws.send(json.dumps(request(frames[0])))
            while len(frames) < max_frames:
                frames.append(_frame(ws.recv(timeout=timeout)))
                if frames[-1].get("type") == "res":
                    break
        except ConnectionClosed:
            pass  # a refusal closes with 1008 after its answer
    return frames


def _frame(data) -> dict:
    try:
        value = json.loads(data)
    except (TypeError, ValueError):
        return {"type": "unreadable"}
    return value if isinstance(value, dict) else {"type": "unreadable"}
