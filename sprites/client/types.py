"""Sprites API results parsed at the edge into small typed objects that ignore extra fields
and tolerate missing optional ones (shapes: ../shared/sprites-api.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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
    def from_json(cls, data: dict) -> Sprite:
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
class OrgInfo:
    """The `org` block of a list page: the caps and the counts at that moment
    (sprites-api.md, "Running and warm caps"). The Python SDK reads the counts at top level."""

    name: str = ""
    running: int = 0
    warm: int = 0
    cold: int = 0
    running_limit: int | None = None
    warm_limit: int | None = None

    @property
    def free(self) -> int | None:
        """Running slots free now; None when the API did not say its cap."""
        return None if self.running_limit is None else max(self.running_limit - self.running, 0)

    @classmethod
    def from_page(cls, page: dict) -> OrgInfo | None:
        org = page.get("org") if isinstance(page.get("org"), dict) else None
        source = org if org is not None else page
        if org is None and not any(k in page for k in ("running", "running_limit")):
            return None

        def count(key: str) -> int | None:
            value = source.get(key, page.get(key))
            try:
                return None if value is None or isinstance(value, bool) else int(value)
            except (TypeError, ValueError):
                return None

        return cls(name=str((org or {}).get("name") or ""), running=count("running") or 0,
                   warm=count("warm") or 0, cold=count("cold") or 0,
                   running_limit=count("running_limit"), warm_limit=count("warm_limit"))


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
    def from_json(cls, data: dict) -> Service:
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
    def from_json(cls, data: dict) -> Checkpoint:
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
    def from_json(cls, data: dict) -> StreamEvent:
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
