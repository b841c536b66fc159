"""The exceptions the emulator's layers hand to one another."""

from __future__ import annotations


class ApiError(Exception):
    """An HTTP error answer: the server turns it into `status` with `body` as JSON."""

    def __init__(self, status: int, body: dict, headers: dict | None = None):
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


class ClientGone(Exception):
    """The HTTP client went away mid-stream; stop working for it."""


class CommandExit(Exception):
    """Ends a simulated command early with an exit code (124 timeout, 137 killed...)."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def not_found(what: str = "sprite") -> ApiError:
    return ApiError(404, {"error": f"{what} not found"})
