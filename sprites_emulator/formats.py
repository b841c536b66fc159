"""Small conversions shared by the resources: timestamps, query values, durations."""

from __future__ import annotations

import re
from datetime import datetime, timezone

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)?")


def rfc3339(wall: float | None, *, seconds: bool = False, nanos: bool = False) -> str | None:
    if wall is None:
        return None
    moment = datetime.fromtimestamp(wall, timezone.utc)
    if seconds:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text + ("000Z" if nanos else "Z")


def ms(wall: float) -> int:
    return int(wall * 1000)


def one(query: dict, key: str) -> str | None:
    """The last value of a query parameter, or None."""
    values = query.get(key)
    return values[-1] if values else None


def duration_seconds(text: str) -> float:
    """Go-style durations ("5s", "500ms", "1m30s") and bare numbers (seconds)."""
    text = str(text).strip()
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, None: 1}
    parts = _DURATION_PART.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {text!r}")
    return sum(float(n) * units[u or None] for n, u in parts)
