"""The Sprites REST API client: the only module in ClawDirector that speaks HTTP to Sprites.

Reference: ../shared/sprites-api.md (researched from the official Go/JS/Python SDKs and the
docs at https://docs.sprites.dev/api/). One pooled `requests.Session` per client; every call
has connect and read timeouts; idempotent calls are retried (bounded, exponential backoff,
honouring `Retry-After`) on connection errors, 5xx and 429, never on other 4xx. Results are
parsed at the edge into small typed objects that ignore extra fields and tolerate missing
optional ones. Nothing here logs a header, a body or a token.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Iterator
from urllib.parse import quote

import requests
import urllib3
from django.conf import settings
from requests.adapters import HTTPAdapter

logger = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE", "HEAD"})
# A Retry-After longer than this is not slept through: the error goes up at once with its
# retry_after, so a web request answers 503 + Retry-After instead of holding a worker.
MAX_RETRY_WAIT = 10.0

# --- Exceptions ---------------------------------------------------------------------------


class SpritesError(Exception):
    """Base of every Sprites failure. `str()` is a human message that never holds a secret."""

    status_code: int | None = None
    permanent = True  # retrying the same call will not help

    def __init__(self, message: str, *, status_code: int | None = None, code: str = ""):
        super().__init__(message)
        self.status_code = status_code
        self.code = code


class SpritesAuthFailed(SpritesError):
    """401/403: the API token is missing, wrong or not allowed for this sprite."""


class SpriteNotFound(SpritesError):
    """404: no such sprite, service, checkpoint or file."""


class SpritesConflict(SpritesError):
    """409: the name is taken, the service is not running, another service owns http_port…"""


class SpritesBadRequest(SpritesError):
    """400/422: the request was invalid; fix the input, do not retry."""


class SpritesUnavailable(SpritesError):
    """Connection error, timeout or 5xx: the API is down or overloaded. Worth retrying later."""

    permanent = False


class SpritesRateLimited(SpritesUnavailable):
    """429: slow down; `retry_after` is in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


# --- Typed results ----------------------------------------------------------------------------


def _dt(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class Sprite:
    name: str
    id: str = ""
    status: str = ""  # cold | warm | running (anything else is kept as sent)
    url: str = ""
    organization: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_running_at: datetime | None = None
    last_warming_at: datetime | None = None
    labels: tuple[str, ...] = ()
    url_settings: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict) -> "Sprite":
        return cls(
            name=str(data.get("name") or ""),
            id=str(data.get("id") or ""),
            status=str(data.get("status") or ""),
            url=str(data.get("url") or ""),
            organization=str(data.get("organization") or data.get("org_slug") or ""),
            created_at=_dt(data.get("created_at")),
            updated_at=_dt(data.get("updated_at")),
            last_running_at=_dt(data.get("last_running_at")),
            last_warming_at=_dt(data.get("last_warming_at")),
            labels=tuple(data.get("labels") or ()),
            url_settings=dict(data.get("url_settings") or {}),
        )


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    def tail(self, limit: int = 2000) -> str:
        """The last `limit` characters of stdout+stderr (agent output is untrusted: escape it)."""
        both = (self.stdout + (b"\n" + self.stderr if self.stderr else b"")).decode("utf-8", "replace")
        return both[-limit:]


@dataclass(frozen=True)
class Service:
    name: str
    cmd: str = ""
    args: tuple[str, ...] = ()
    http_port: int | None = None
    status: str = ""  # stopped | starting | running | stopping | failed
    error: str = ""
    pid: int | None = None

    @classmethod
    def from_json(cls, data: dict) -> "Service":
        state = data.get("state") or {}
        return cls(
            name=str(data.get("name") or ""),
            cmd=str(data.get("cmd") or ""),
            args=tuple(data.get("args") or ()),
            http_port=data.get("http_port"),
            status=str(state.get("status") or ""),
            error=str(state.get("error") or ""),
            pid=state.get("pid"),
        )


@dataclass(frozen=True)
class Checkpoint:
    id: str
    create_time: datetime | None = None
    comment: str = ""
    is_auto: bool = False

    @classmethod
    def from_json(cls, data: dict) -> "Checkpoint":
        return cls(
            id=str(data.get("id") or ""),
            create_time=_dt(data.get("create_time")),
            comment=str(data.get("comment") or ""),
            is_auto=bool(data.get("is_auto")),
        )


@dataclass(frozen=True)
class StreamEvent:
    """One NDJSON line of a checkpoint/restore/service stream."""

    type: str
    data: Any = None
    error: str = ""
    exit_code: int | None = None

    @classmethod
    def from_json(cls, data: dict) -> "StreamEvent":
        return cls(
            type=str(data.get("type") or ""),
            data=data.get("data"),
            error=str(data.get("error") or ""),
            exit_code=data.get("exit_code"),
        )


_CHECKPOINT_ID = re.compile(r"(?:Checkpoint\s+(\S+)\s+created|^\s*ID:\s*(\S+))", re.MULTILINE)


def parse_checkpoint_id(events: list[StreamEvent]) -> str | None:
    """The create stream has no structured id, only text ("Checkpoint v3 created
    successfully" or an info line "  ID: v3"): take the last one mentioned."""
    found = None
    for event in events:
        if isinstance(event.data, str):
            for match in _CHECKPOINT_ID.finditer(event.data):
                found = match.group(1) or match.group(2)
    return found


# --- The client --------------------------------------------------------------------------------


class SpritesClient:
    """Thread-safe: share one per process (see `get_client`)."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        pool_size: int = 128,
    ):
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["User-Agent"] = "clawdirector/1.0"

    def __repr__(self) -> str:  # never show the token
        return f"<SpritesClient {self.base_url}>"

    # -- transport

    def _request(
        self,
        method: str,
        path: str,
        *,
        params=None,
        json_body=None,
        data: bytes | None = None,
        ok: tuple[int, ...] = (200,),
        read_timeout: float | None = None,
        retry: bool | None = None,
        stream: bool = False,
        headers: dict | None = None,
    ) -> requests.Response:
        retry = method in IDEMPOTENT_METHODS if retry is None else retry
        url = f"{self.base_url}/v1{path}"
        timeout = (self.connect_timeout, read_timeout or self.read_timeout)
        attempt = 0
        while True:
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    data=data,
                    timeout=timeout,
                    stream=stream,
                    headers=headers,
                )
            except requests.Timeout as exc:
                error: SpritesError = SpritesUnavailable(
                    f"Sprites API timed out on {method} {path}", code="timeout"
                )
                cause: Exception = exc
            except requests.RequestException as exc:
                error = SpritesUnavailable(
                    f"Sprites API unreachable on {method} {path}: {type(exc).__name__}",
                    code="connection_error",
                )
                cause = exc
            else:
                if response.status_code in ok:
                    return response
                error = self._error_for(response, method, path)
                cause = None
                response.close()
            wait = getattr(error, "retry_after", None) or 0
            if not (retry and not error.permanent and attempt < self.max_retries) or wait > MAX_RETRY_WAIT:
                raise error from cause
            attempt += 1
            delay = self._delay(attempt, error)
            logger.warning(
                "Sprites %s %s failed (%s); retry %d/%d in %.2fs",
                method, path, error.code or error.status_code, attempt, self.max_retries, delay,
            )
            time.sleep(delay)

    def _delay(self, attempt: int, error: SpritesError) -> float:
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return max(retry_after, 0.0)
        base = self.backoff * (2 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)  # jitter: overlapping sweeps don't stampede

    @staticmethod
    def _error_for(response: requests.Response, method: str, path: str) -> SpritesError:
        status = response.status_code
        code, detail = _error_detail(response)
        where = f"{method} {path}"
        if status == 429:
            retry_after = _retry_after(response)
            return SpritesRateLimited(
                f"Sprites API rate limit hit on {where}"
                + (f"; retry after {retry_after:g}s" if retry_after is not None else ""),
                retry_after=retry_after,
                status_code=status,
                code=code or "rate_limited",
            )
        if status in (401, 403):
            return SpritesAuthFailed(
                f"Sprites API refused the token ({status}) on {where}: {detail or 'authentication failed'}",
                status_code=status,
                code=code,
            )
        if status == 404:
            return SpriteNotFound(f"Not found: {where}", status_code=status, code=code)
        if status == 409:
            return SpritesConflict(f"Conflict on {where}: {detail}", status_code=status, code=code)
        if status == 410:
            return SpritesConflict(f"Already gone on {where}: {detail}", status_code=status, code=code)
        if 400 <= status < 500:
            return SpritesBadRequest(f"Bad request on {where}: {detail}", status_code=status, code=code)
        return SpritesUnavailable(
            f"Sprites API error {status} on {where}: {detail}", status_code=status, code=code
        )

    def _json(self, response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise SpritesUnavailable("Sprites API answered with invalid JSON", code="bad_json") from exc

    # -- sprites

    def create_sprite(self, name: str, *, labels=(), url_auth: str = "sprite", wait_for_capacity=True) -> Sprite:
        """POST /v1/sprites. Not retried blindly: a retry after a lost answer would 409, so the
        caller (services.py) treats 409 on its own fresh name as "created" and GETs it."""
        body = {"name": name, "url_settings": {"auth": url_auth}, "wait_for_capacity": wait_for_capacity}
        if labels:
            body["labels"] = list(labels)
        return Sprite.from_json(self._json(self._request("POST", "/sprites", json_body=body, ok=(200, 201))))

    def get_sprite(self, name: str) -> Sprite:
        return Sprite.from_json(self._json(self._request("GET", f"/sprites/{_seg(name)}")))

    def list_sprites_page(self, *, prefix: str = "", max_results: int = 50, continuation_token: str = ""):
        params = {"max_results": max_results}
        if prefix:
            params["prefix"] = prefix
        if continuation_token:
            params["continuation_token"] = continuation_token
        data = self._json(self._request("GET", "/sprites", params=params))
        if isinstance(data, list):  # tolerate a bare list
            return [Sprite.from_json(s) for s in data], None
        sprites = [Sprite.from_json(s) for s in data.get("sprites") or []]
        token = data.get("next_continuation_token") if data.get("has_more") else None
        return sprites, token

    def list_sprites(self, *, prefix: str = "", page_size: int = 50) -> Iterator[Sprite]:
        """Every sprite, all pages (stops when `has_more` is false)."""
        token = ""
        while True:
            sprites, token = self.list_sprites_page(prefix=prefix, max_results=page_size, continuation_token=token)
            yield from sprites
            if not token:
                return

    def update_sprite(self, name: str, *, url_settings: dict | None = None, labels=None) -> Sprite:
        body: dict = {}
        if url_settings is not None:
            body["url_settings"] = url_settings
        if labels is not None:
            body["labels"] = list(labels)
        return Sprite.from_json(self._json(self._request("PUT", f"/sprites/{_seg(name)}", json_body=body)))

    def delete_sprite(self, name: str, *, missing_ok: bool = True) -> None:
        """DELETE /v1/sprites/{name}; also deletes all its checkpoints."""
        try:
            self._request("DELETE", f"/sprites/{_seg(name)}", ok=(200, 204))
        except SpriteNotFound:
            if not missing_ok:
                raise

    # -- exec (HTTP POST form: framed bytes, one frame per chunk, exit frame last)

    def exec(self, name: str, argv: list[str], *, timeout: float | None = None, env: dict | None = None,
             dir: str | None = None) -> ExecResult:
        """Run argv in the sprite and wait for it. Never retried: a command may not be idempotent.

        `env`, if given, REPLACES the sprite's environment (pass PATH yourself).
        """
        params: list[tuple[str, str]] = [("cmd", a) for a in argv]
        for key, value in (env or {}).items():
            params.append(("env", f"{key}={value}"))
        if dir:
            params.append(("dir", dir))
        response = self._request(
            "POST", f"/sprites/{_seg(name)}/exec", params=params, ok=(200,), stream=True,
            read_timeout=timeout or self.read_timeout, retry=False,
        )
        try:
            return _read_exec(response)
        except (requests.Timeout, urllib3.exceptions.ReadTimeoutError) as exc:
            # Reading the raw chunks bypasses requests, so urllib3's own errors arrive here too.
            raise SpritesUnavailable(f"Exec on sprite {name} timed out", code="timeout") from exc
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise SpritesUnavailable(f"Exec stream broke on sprite {name}: {type(exc).__name__}",
                                     code="exec_stream") from exc
        finally:
            response.close()

    def exec_script(self, name: str, script: str, *, timeout: float | None = None) -> ExecResult:
        return self.exec(name, ["bash", "-c", script], timeout=timeout)

    # -- services

    def put_service(self, name: str, service: str, *, cmd: str, args=(), http_port: int | None = None,
                    env: dict | None = None, needs=(), dir: str | None = None,
                    duration: str = "1s") -> list[StreamEvent]:
        body: dict = {"cmd": cmd, "args": list(args), "needs": list(needs)}
        if http_port is not None:
            body["http_port"] = http_port
        if env:
            body["env"] = env
        if dir:
            body["dir"] = dir
        response = self._request("PUT", f"/sprites/{_seg(name)}/services/{_seg(service)}",
                                 params={"duration": duration}, json_body=body, stream=True)
        return _stream_events(response)

    def get_service(self, name: str, service: str) -> Service:
        return Service.from_json(self._json(self._request("GET", f"/sprites/{_seg(name)}/services/{_seg(service)}")))

    def list_services(self, name: str) -> list[Service]:
        data = self._json(self._request("GET", f"/sprites/{_seg(name)}/services"))
        if isinstance(data, dict):
            data = data.get("services") or []
        return [Service.from_json(s) for s in data]

    def start_service(self, name: str, service: str, *, duration: str = "1s") -> list[StreamEvent]:
        response = self._request("POST", f"/sprites/{_seg(name)}/services/{_seg(service)}/start",
                                 params={"duration": duration}, stream=True, retry=True)
        return _stream_events(response)

    def stop_service(self, name: str, service: str, *, timeout: str = "10s") -> list[StreamEvent]:
        """Stop a service; a service that is not running (409) is already where we want it."""
        try:
            response = self._request("POST", f"/sprites/{_seg(name)}/services/{_seg(service)}/stop",
                                     params={"timeout": timeout}, stream=True, retry=True)
        except SpritesConflict:
            return []
        return _stream_events(response)

    def delete_service(self, name: str, service: str) -> None:
        try:
            self._request("DELETE", f"/sprites/{_seg(name)}/services/{_seg(service)}", ok=(200, 204))
        except SpriteNotFound:
            pass

    # -- checkpoints

    def create_checkpoint(self, name: str, *, comment: str = "") -> str:
        """Create a checkpoint and return its id, parsed from the stream's text."""
        body = {"comment": comment} if comment else {}
        response = self._request("POST", f"/sprites/{_seg(name)}/checkpoint", json_body=body,
                                 stream=True, read_timeout=max(self.read_timeout, 300))
        events = _stream_events(response)
        _raise_stream_error(events, f"checkpoint of sprite {name}")
        checkpoint_id = parse_checkpoint_id(events)
        if not checkpoint_id:
            raise SpritesUnavailable(f"Checkpoint of sprite {name} gave no id", code="no_checkpoint_id")
        return checkpoint_id

    def list_checkpoints(self, name: str) -> list[Checkpoint]:
        data = self._json(self._request("GET", f"/sprites/{_seg(name)}/checkpoints"))
        if isinstance(data, dict):
            data = data.get("checkpoints") or []
        # "Current" is a pseudo-entry for the live filesystem, not a checkpoint.
        return [Checkpoint.from_json(c) for c in data if isinstance(c, dict) and c.get("id") != "Current"]

    def get_checkpoint(self, name: str, checkpoint_id: str) -> Checkpoint:
        return Checkpoint.from_json(
            self._json(self._request("GET", f"/sprites/{_seg(name)}/checkpoints/{_seg(checkpoint_id)}"))
        )

    def restore_checkpoint(self, name: str, checkpoint_id: str) -> list[StreamEvent]:
        """Restore is idempotent (the same overlay again), so it is retried."""
        response = self._request("POST", f"/sprites/{_seg(name)}/checkpoints/{_seg(checkpoint_id)}/restore",
                                 stream=True, retry=True, read_timeout=max(self.read_timeout, 300))
        events = _stream_events(response)
        _raise_stream_error(events, f"restore of sprite {name}")
        return events

    # -- filesystem

    def write_file(self, name: str, path: str, content: bytes | str, *, mode: str = "0644",
                   working_dir: str = "/") -> None:
        if isinstance(content, str):
            content = content.encode()
        self._request("PUT", f"/sprites/{_seg(name)}/fs/write",
                      params={"path": path, "workingDir": working_dir, "mode": mode, "mkdirParents": "true"},
                      data=content, ok=(200, 201, 204), headers={"Content-Type": "application/octet-stream"})

    def read_file(self, name: str, path: str, *, working_dir: str = "/") -> bytes:
        return self._request("GET", f"/sprites/{_seg(name)}/fs/read",
                             params={"path": path, "workingDir": working_dir}).content

    # -- network policy

    def get_network_policy(self, name: str) -> list[dict]:
        data = self._json(self._request("GET", f"/sprites/{_seg(name)}/policy/network"))
        return list((data or {}).get("rules") or [])

    def set_network_policy(self, name: str, rules: list[dict]) -> None:
        # Setting the same rules twice is the same state: safe to retry.
        self._request("POST", f"/sprites/{_seg(name)}/policy/network", json_body={"rules": rules},
                      ok=(200, 204), retry=True)


# --- helpers ---------------------------------------------------------------------------------


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def _error_detail(response: requests.Response) -> tuple[str, str]:
    """(code, message) from any of the API's error shapes: {"error","message"}, {"errors":[…]},
    or plain text. Bodies are cut short: they end up in last_error and the admin."""
    text = response.text[:500] if response.content else ""
    try:
        data = json.loads(text) if text else None
    except ValueError:
        return "", text.strip()[:300]
    if isinstance(data, dict):
        if data.get("errors"):
            return "validation", "; ".join(str(e) for e in data["errors"])[:300]
        code = str(data.get("error") or "")
        message = str(data.get("message") or code)
        return (code if " " not in code else ""), message[:300]
    return "", text.strip()[:300]


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value:
        try:
            return float(value)
        except ValueError:
            try:
                return max((parsedate_to_datetime(value).timestamp() - time.time()), 0.0)
            except (TypeError, ValueError):
                pass
    try:
        body = response.json()
        if isinstance(body, dict) and body.get("retry_after_seconds") is not None:
            return float(body["retry_after_seconds"])
    except ValueError:
        pass
    return None


def _read_exec(response: requests.Response) -> ExecResult:
    """The server sends one frame per HTTP chunk (stream byte + payload; `0x03 code` last).
    When the body is not chunked (a proxy buffered it, or a test), frames carry no length, so
    only the trailing exit frame can be split off reliably: the rest is one frame."""
    raw = response.raw
    if raw is not None and getattr(raw, "chunked", False) and hasattr(raw, "read_chunked"):
        return parse_exec_frames(chunk for chunk in raw.read_chunked(decode_content=True) if chunk)
    return parse_exec_body(response.content)


def parse_exec_frames(frames) -> ExecResult:
    """Parse frames that arrived one per chunk."""
    stdout, stderr = bytearray(), bytearray()
    exit_code = None
    for frame in frames:
        stream, payload = frame[0], frame[1:]
        if stream == 3:
            exit_code = payload[0] if payload else 0
        elif stream == 2:
            stderr += payload
        elif stream == 1:
            stdout += payload
        else:  # unknown stream id: keep the bytes rather than lose output
            stdout += frame
    if exit_code is None:
        raise SpritesUnavailable("Exec stream ended without an exit code", code="exec_no_exit")
    return ExecResult(exit_code=exit_code, stdout=bytes(stdout), stderr=bytes(stderr))


def parse_exec_body(body: bytes) -> ExecResult:
    """Parse an unchunked body: output frame(s), then the exit frame as the last two bytes."""
    if len(body) < 2 or body[-2] != 3:
        raise SpritesUnavailable("Exec stream ended without an exit code", code="exec_no_exit")
    exit_code, output = body[-1], body[:-2]
    if output[:1] == b"\x02":
        return ExecResult(exit_code=exit_code, stderr=output[1:])
    return ExecResult(exit_code=exit_code, stdout=output[1:] if output[:1] == b"\x01" else output)


def _stream_events(response: requests.Response) -> list[StreamEvent]:
    events = []
    try:
        for line in response.iter_lines():
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError:
                events.append(StreamEvent(type="text", data=line.decode("utf-8", "replace")))
                continue
            if isinstance(data, dict):
                events.append(StreamEvent.from_json(data))
    except requests.RequestException as exc:
        raise SpritesUnavailable(f"Event stream broke: {type(exc).__name__}", code="stream") from exc
    finally:
        response.close()
    return events


def _raise_stream_error(events: list[StreamEvent], what: str) -> None:
    for event in events:
        if event.type == "error":
            raise SpritesUnavailable(f"The {what} failed: {event.error or event.data}"[:300], code="stream_error")


_client: SpritesClient | None = None
_client_key: tuple | None = None
_client_lock = threading.Lock()


def get_client() -> SpritesClient:
    """The process-wide client, rebuilt when the settings change (tests override them)."""
    global _client, _client_key
    key = (
        settings.SPRITES_API_URL, settings.SPRITES_API_TOKEN, settings.SPRITES_CONNECT_TIMEOUT,
        settings.SPRITES_READ_TIMEOUT, settings.SPRITES_MAX_RETRIES, settings.SPRITES_BACKOFF_SECONDS,
        settings.SPRITES_POOL_CONNECTIONS,
    )
    with _client_lock:
        if _client is None or _client_key != key:
            _client = SpritesClient(
                base_url=settings.SPRITES_API_URL,
                token=settings.SPRITES_API_TOKEN,
                connect_timeout=settings.SPRITES_CONNECT_TIMEOUT,
                read_timeout=settings.SPRITES_READ_TIMEOUT,
                max_retries=settings.SPRITES_MAX_RETRIES,
                backoff=settings.SPRITES_BACKOFF_SECONDS,
                pool_size=settings.SPRITES_POOL_CONNECTIONS,
            )
            _client_key = key
        return _client
