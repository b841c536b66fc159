"""Reading what Sprites sends back: error bodies, Retry-After, exec frames and NDJSON streams."""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime
from urllib.parse import quote

import requests

from .errors import SpritesUnavailable
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
