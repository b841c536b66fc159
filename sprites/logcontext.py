"""What every log line says about where it came from: the request id and the sprite it concerns.

Plain `contextvars`, stdlib only, so any room can bind them (the request middleware in `ops`,
the API, the services, the sweep's worker threads) and the log filter in `ops.logs` can read
them without importing anything of ours. A value bound inside a request or a heartbeat turn is
reset when it ends, so a worker thread never carries one sprite's id into the next.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("clawdirector_request_id", default="")
sprite_id: contextvars.ContextVar[str] = contextvars.ContextVar("clawdirector_sprite_id", default="")


def bind_sprite(public_id) -> None:
    """Tag the rest of the current context (a request, a thread's task) with this sprite."""
    sprite_id.set(str(public_id) if public_id else "")


@contextmanager
def sprite_context(public_id) -> Iterator[None]:
    """Tag the log lines inside the block with this sprite, then restore what was there."""
    token = sprite_id.set(str(public_id) if public_id else "")
    try:
        yield
    finally:
        sprite_id.reset(token)


def current() -> dict[str, str]:
    return {"request_id": request_id.get(), "sprite_id": sprite_id.get()}
