"""The Sprites REST API client: the only code in ClawDirector that speaks HTTP to Sprites.

Reference: ../shared/sprites-api.md (researched from the official Go/JS/Python SDKs and the
docs at https://docs.sprites.dev/api/). One pooled `requests.Session` per client; every call
has connect and read timeouts; idempotent calls are retried (bounded, exponential backoff,
honouring `Retry-After`) on connection errors, 5xx and 429, never on other 4xx. Results are
parsed at the edge into small typed objects that ignore extra fields and tolerate missing
optional ones. Nothing here logs a header, a body or a token.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests
import urllib3
from django.conf import settings
from requests.adapters import HTTPAdapter

from .checkpoints import CheckpointsMixin
from .errors import (
    SpriteNotFound,
    SpritesConflict,
    SpritesError,
    SpritesUnavailable,
)
from .tally import endpoint_of, error_kind, tally
from .types import ExecResult, OrgInfo, Service, Sprite, StreamEvent
from .wire import error_for, read_exec, seg, stream_events

logger = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE", "HEAD"})
# A Retry-After longer than this is not slept through: the error goes up at once with its
# retry_after, so a web request answers 503 + Retry-After instead of holding a worker.
MAX_RETRY_WAIT = 10.0


# --- The client --------------------------------------------------------------------------------


class SpritesClient(CheckpointsMixin):
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
        self.last_org: OrgInfo | None = None  # the org block of the latest list page read

    def __repr__(self) -> str:  # never show the token
        return f"<SpritesClient {self.base_url}>"

    # -- transport

    def _request(
        self,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...] = (200,),
        read_timeout: float | None = None,
        retry: bool | None = None,
        **send,
    ) -> requests.Response:
        """Send until an answer in `ok`; retry (idempotent calls only, unless `retry` says)
        connection errors, 5xx and 429 with backoff that honours Retry-After. `send` is
        params, json_body, data, stream, headers."""
        retry = method in IDEMPOTENT_METHODS if retry is None else retry
        attempt = 0
        while True:
            response, error, cause = self._attempt(method, path, ok=ok, read_timeout=read_timeout, **send)
            if response is not None:
                return response
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

    def _attempt(self, method: str, path: str, *, ok, read_timeout, **send):
        """One try: (the response, None, None) if it is in `ok`, else (None, the error, its cause)."""
        response, error, cause = self._send(method, path, ok=ok, read_timeout=read_timeout, **send)
        tally.call(endpoint_of(method, path), error_kind(error) if error is not None else "")
        return response, error, cause

    def _send(self, method: str, path: str, *, ok, read_timeout, params=None, json_body=None,
              data: bytes | None = None, stream: bool = False, headers: dict | None = None):
        try:
            response = self.session.request(
                method, f"{self.base_url}/v1{path}", params=params, json=json_body, data=data,
                timeout=(self.connect_timeout, read_timeout or self.read_timeout), stream=stream, headers=headers,
            )
        except requests.Timeout as exc:
            return None, SpritesUnavailable(f"Sprites API timed out on {method} {path}", code="timeout"), exc
        except requests.RequestException as exc:
            message = f"Sprites API unreachable on {method} {path}: {type(exc).__name__}"
            return None, SpritesUnavailable(message, code="connection_error"), exc
        if response.status_code in ok:
            return response, None, None
        error = error_for(response, method, path)
        response.close()
        return None, error, None

    def _delay(self, attempt: int, error: SpritesError) -> float:
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return max(retry_after, 0.0)
        base = self.backoff * (2 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)  # jitter: overlapping sweeps don't stampede

    def _json(self, response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise SpritesUnavailable("Sprites API answered with invalid JSON", code="bad_json") from exc

    def ping(self, *, timeout: float = 3.0) -> None:
        """One cheap authenticated call, no retry, short timeouts: raises the SpritesError that
        says why the API cannot be used (`/readyz`)."""
        self._request("GET", "/sprites", params={"max_results": 1}, retry=False,
                      read_timeout=min(timeout, self.read_timeout))

    # -- sprites

    def create_sprite(self, name: str, *, labels=(), url_auth: str = "sprite", wait_for_capacity=True) -> Sprite:
        """POST /v1/sprites. Not retried blindly: a retry after a lost answer would 409, so the
        caller (services.py) treats 409 on its own fresh name as "created" and GETs it."""
        body = {"name": name, "url_settings": {"auth": url_auth}, "wait_for_capacity": wait_for_capacity}
        if labels:
            body["labels"] = list(labels)
        return Sprite.from_json(self._json(self._request("POST", "/sprites", json_body=body, ok=(200, 201))))

    def get_sprite(self, name: str) -> Sprite:
        return Sprite.from_json(self._json(self._request("GET", f"/sprites/{seg(name)}")))

    def list_sprites_page(self, *, prefix: str = "", max_results: int = 50, continuation_token: str = ""):
        params = {"max_results": max_results}
        if prefix:
            params["prefix"] = prefix
        if continuation_token:
            params["continuation_token"] = continuation_token
        data = self._json(self._request("GET", "/sprites", params=params))
        if isinstance(data, list):  # tolerate a bare list
            return [Sprite.from_json(s) for s in data], None
        org = OrgInfo.from_page(data)
        if org is not None:
            self.last_org = org
        sprites = [Sprite.from_json(s) for s in data.get("sprites") or []]
        token = data.get("next_continuation_token") if data.get("has_more") else None
        return sprites, token

    def org(self) -> OrgInfo | None:
        """The org's caps and live counts, from the smallest list page; None if it says nothing."""
        data = self._json(self._request("GET", "/sprites", params={"max_results": 1}))
        org = OrgInfo.from_page(data) if isinstance(data, dict) else None
        if org is not None:
            self.last_org = org
        return org

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
        return Sprite.from_json(self._json(self._request("PUT", f"/sprites/{seg(name)}", json_body=body)))

    def delete_sprite(self, name: str, *, missing_ok: bool = True) -> None:
        """DELETE /v1/sprites/{name}; also deletes all its checkpoints."""
        try:
            self._request("DELETE", f"/sprites/{seg(name)}", ok=(200, 204))
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
            "POST", f"/sprites/{seg(name)}/exec", params=params, ok=(200,), stream=True,
            read_timeout=timeout or self.read_timeout, retry=False,
        )
        try:
            return read_exec(response)
        except (requests.Timeout, urllib3.exceptions.ReadTimeoutError) as exc:
            # Reading the raw chunks bypasses requests, so urllib3's own errors arrive here too.
            tally.error(endpoint_of("POST", f"/sprites/{name}/exec"), "timeout")
            raise SpritesUnavailable(f"Exec on sprite {name} timed out", code="timeout") from exc
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            tally.error(endpoint_of("POST", f"/sprites/{name}/exec"), "exec_stream")
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
        response = self._request("PUT", f"/sprites/{seg(name)}/services/{seg(service)}",
                                 params={"duration": duration}, json_body=body, stream=True)
        return stream_events(response)

    def get_service(self, name: str, service: str) -> Service:
        return Service.from_json(self._json(self._request("GET", f"/sprites/{seg(name)}/services/{seg(service)}")))

    def list_services(self, name: str) -> list[Service]:
        data = self._json(self._request("GET", f"/sprites/{seg(name)}/services"))
        if isinstance(data, dict):
            data = data.get("services") or []
        return [Service.from_json(s) for s in data]

    def start_service(self, name: str, service: str, *, duration: str = "1s") -> list[StreamEvent]:
        response = self._request("POST", f"/sprites/{seg(name)}/services/{seg(service)}/start",
                                 params={"duration": duration}, stream=True, retry=True)
        return stream_events(response)

    def stop_service(self, name: str, service: str, *, timeout: str = "10s") -> list[StreamEvent]:
        """Stop a service; a service that is not running (409) is already where we want it."""
        try:
            response = self._request("POST", f"/sprites/{seg(name)}/services/{seg(service)}/stop",
                                     params={"timeout": timeout}, stream=True, retry=True)
        except SpritesConflict:
            return []
        return stream_events(response)

    def delete_service(self, name: str, service: str) -> None:
        try:
            self._request("DELETE", f"/sprites/{seg(name)}/services/{seg(service)}", ok=(200, 204))
        except SpriteNotFound:
            pass

    # -- filesystem

    def write_file(self, name: str, path: str, content: bytes | str, *, mode: str = "0644",
                   working_dir: str = "/") -> None:
        if isinstance(content, str):
            content = content.encode()
        self._request("PUT", f"/sprites/{seg(name)}/fs/write",
                      params={"path": path, "workingDir": working_dir, "mode": mode, "mkdirParents": "true"},
                      data=content, ok=(200, 201, 204), headers={"Content-Type": "application/octet-stream"})

    def read_file(self, name: str, path: str, *, working_dir: str = "/") -> bytes:
        return self._request("GET", f"/sprites/{seg(name)}/fs/read",
                             params={"path": path, "workingDir": working_dir}).content

    # -- network policy

    def get_network_policy(self, name: str) -> list[dict]:
        data = self._json(self._request("GET", f"/sprites/{seg(name)}/policy/network"))
        return list((data or {}).get("rules") or [])

    def set_network_policy(self, name: str, rules: list[dict]) -> None:
        # Setting the same rules twice is the same state: safe to retry.
        self._request("POST", f"/sprites/{seg(name)}/policy/network", json_body={"rules": rules},
                      ok=(200, 204), retry=True)



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
