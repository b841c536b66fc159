"""The Sprites client's exception family: human messages, and which errors are permanent."""

from __future__ import annotations


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


class CheckpointDeleteUnsupported(SpritesBadRequest):
    """The API kept a checkpoint it was asked to delete: its delete route is unconfirmed
    (sprites-api.md section 4), so this is how its absence shows."""


class SpritesUnavailable(SpritesError):
    """Connection error, timeout or 5xx: the API is down or overloaded. Worth retrying later."""

    permanent = False


class SpritesRateLimited(SpritesUnavailable):
    """429: slow down; `retry_after` is in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class SpritesCapacityExceeded(SpritesRateLimited):
    """429 `concurrent_sprite_limit_exceeded`: every running slot of the org is taken, so the
    wake (exec, service start, URL request) did not happen. Not a failure of the sprite:
    waiting frees a slot. `limit` and `current_count` are the API's, when it sent them."""

    CODE = "concurrent_sprite_limit_exceeded"

    def __init__(self, message: str, *, limit: int | None = None, current_count: int | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.limit = limit
        self.current_count = current_count
