"""What this process has asked of the Sprites API, counted for /metrics (calls and errors by
endpoint and kind). Counted in memory here; sprites.services.metrics writes the counts to the
database, so every worker and host adds up in one place."""

from __future__ import annotations

import contextvars
import threading

from .errors import (
    SpriteNotFound,
    SpritesAuthFailed,
    SpritesBadRequest,
    SpritesConflict,
    SpritesError,
    SpritesRateLimited,
    SpritesUnavailable,
)


def endpoint_of(method: str, path: str) -> str:
    """The call's shape without its names: `POST /sprites/{name}/services/{id}/start`."""
    parts = path.split("?")[0].strip("/").split("/")
    if len(parts) >= 2:
        parts[1] = "{name}"
    if len(parts) >= 4 and parts[2] in ("services", "checkpoints"):
        parts[3] = "{id}"
    return f"{method} /{'/'.join(parts)}"


def error_kind(error: SpritesError) -> str:
    """A small fixed vocabulary (a label value): what went wrong, not the message."""
    if isinstance(error, SpritesRateLimited):
        # The two 429s of the API: the running-sprite cap, and the creation rate.
        return error.code if error.code in ("concurrent_sprite_limit_exceeded", "sprite_creation_rate_limited") \
            else "rate_limited"
    if isinstance(error, SpritesUnavailable):
        if error.code in ("timeout", "connection_error", "bad_json", "exec_stream"):
            return error.code
        return "server_error"
    return {SpritesAuthFailed: "auth_failed", SpriteNotFound: "not_found", SpritesConflict: "conflict",
            SpritesBadRequest: "bad_request"}.get(type(error), "error")


# Calls made in the current context (a web request, a thread's task): the request middleware
# moves the tally into the database only after a request that made some.
calls_in_context: contextvars.ContextVar[int] = contextvars.ContextVar("sprites_calls_in_context", default=0)


class CallTally:
    """Calls to the Sprites API and their errors, counted in this process until
    `sprites.services.metrics` drains them into the database (a counter in memory would be one
    worker's, and gone with the process). Every HTTP attempt is a call, retries included."""

    def __init__(self):
        self._lock = threading.Lock()
        self._calls: dict[str, int] = {}
        self._errors: dict[tuple[str, str], int] = {}

    def call(self, endpoint: str, error: str = "") -> None:
        """One attempt at `endpoint`; `error` is its `error_kind`, empty when it succeeded."""
        calls_in_context.set(calls_in_context.get() + 1)
        with self._lock:
            self._calls[endpoint] = self._calls.get(endpoint, 0) + 1
            if error:
                self._errors[(endpoint, error)] = self._errors.get((endpoint, error), 0) + 1

    def error(self, endpoint: str, error: str) -> None:
        """A call already counted failed later (an exec stream that broke after its 200)."""
        with self._lock:
            self._errors[(endpoint, error)] = self._errors.get((endpoint, error), 0) + 1

    def drain(self) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        """(calls by endpoint, errors by endpoint and kind) since the last drain."""
        with self._lock:
            calls, errors = self._calls, self._errors
            self._calls, self._errors = {}, {}
        return calls, errors

    def __bool__(self) -> bool:
        return bool(self._calls or self._errors)


tally = CallTally()


