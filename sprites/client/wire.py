"""Reading what Sprites sends back: error bodies and the error each means, Retry-After, exec
frames and NDJSON streams."""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime
from urllib.parse import quote

import requests

from .errors import (
    SpriteNotFound,
    SpritesAuthFailed,
    SpritesBadRequest,
    SpritesCapacityExceeded,
    SpritesConflict,
    SpritesError,
    SpritesRateLimited,
    SpritesUnavailable,
)
from .types import ExecResult, StreamEvent


def seg(value: str) -> str:
    return quote(str(value), safe="")


def error_detail(response: requests.Response) -> tuple[str, str]:
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


def retry_after_seconds(response: requests.Response) -> float | None:
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


def read_exec(response: requests.Response) -> ExecResult:
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


def stream_events(response: requests.Response) -> list[StreamEvent]:
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


def raise_stream_error(events: list[StreamEvent], what: str) -> None:
    for event in events:
        if event.type == "error":
            raise SpritesUnavailable(f"The {what} failed: {event.error or event.data}"[:300], code="stream_error")


def error_for(response: requests.Response, method: str, path: str) -> SpritesError:
    """The SpritesError a non-ok answer means (its code, detail and Retry-After read here)."""
    status = response.status_code
    code, detail = error_detail(response)
    where = f"{method} {path}"
    if status == 429 and code == SpritesCapacityExceeded.CODE:
        retry_after = retry_after_seconds(response)
        numbers = json_numbers(response, "limit", "current_count")
        return SpritesCapacityExceeded(
            f"Every running slot of the Sprites org is taken ({where})"
            + (f"; retry after {retry_after:g}s" if retry_after is not None else ""),
            retry_after=retry_after, status_code=status, code=code, **numbers,
        )
    if status == 429:
        retry_after = retry_after_seconds(response)
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


def json_numbers(response: requests.Response, *keys: str) -> dict[str, int | None]:
    """Whole numbers from a JSON error body (None where absent or not a number)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    found: dict[str, int | None] = {}
    for key in keys:
        value = body.get(key) if isinstance(body, dict) else None
        found[key] = value if isinstance(value, int) and not isinstance(value, bool) else None
    return found
