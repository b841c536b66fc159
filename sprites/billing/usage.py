"""Ledger rows before they are written: one builder and one idempotency key per kind.

A key is built from what the row measures (sprite, kind, what caused it, its window), so a
retried or re-run write of the same interval collides on the ledger's unique key and can
never bill twice. The key formats are stored in the ledger: never change them.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings

from sprites.billing.pricing import active_cost, round_seconds, storage_cost
from sprites.models import UsageRecord

Kind = UsageRecord.Kind


@dataclass(frozen=True)
class Usage:
    """One interval to bill."""

    sprite_id: int
    kind: str
    cause: str
    started_at: datetime
    ended_at: datetime
    cost_usd: Decimal
    key: str
    seconds: Decimal = Decimal("0")
    detail: dict = field(default_factory=dict)


def active(*, sprite_id: int, cause: str, tag: str, started_at: datetime, ended_at: datetime,
           slot: datetime | None = None, detail: dict | None = None) -> Usage:
    """An `active` row for a measured wall-clock interval (the caller adds the idle tail).
    Key `active:{sprite}:{tag}:{slot}`; `tag` names what woke it (an action or a cause) and
    `slot` defaults to the start."""
    seconds = round_seconds(max((ended_at - started_at).total_seconds(), 0))
    return Usage(
        sprite_id=sprite_id, kind=Kind.ACTIVE, cause=cause, started_at=started_at, ended_at=ended_at,
        seconds=seconds, cost_usd=active_cost(seconds),
        key=f"active:{sprite_id}:{tag}:{(slot or started_at).isoformat()}", detail=detail or {},
    )


def user_session(*, sprite_id: int, window_start: datetime, started_at: datetime, ended_at: datetime,
                 seconds: float, detail: dict | None = None) -> Usage:
    """Running time nothing ClawDirector caused (the user's own session) between two samples
    of the VM (sprites.billing.sessions). Key `active:{sprite}:user:{window start}`, the window
    starting at the previous observation: a re-read of the same window bills nothing."""
    seconds = round_seconds(max(seconds, 0))
    return Usage(
        sprite_id=sprite_id, kind=Kind.ACTIVE, cause=UsageRecord.Cause.USER, started_at=started_at,
        ended_at=ended_at, seconds=seconds, cost_usd=active_cost(seconds),
        key=f"active:{sprite_id}:user:{window_start.isoformat()}", detail=detail or {},
    )


def llm(*, sprite_id: int, cause: str, tag: str, started_at: datetime, ended_at: datetime, cost_usd: Decimal,
        slot: datetime | None = None) -> Usage:
    """Model spend a turn reported (`costUsd`). Key `llm:{sprite}:{tag}:{slot}`."""
    return Usage(
        sprite_id=sprite_id, kind=Kind.LLM, cause=cause, started_at=started_at, ended_at=ended_at,
        cost_usd=cost_usd, key=f"llm:{sprite_id}:{tag}:{(slot or started_at).isoformat()}",
        detail={"costUsd": str(cost_usd)},
    )


def llm_adjustment(*, sprite_id: int, credential_id: int, window_start: datetime, at: datetime,
                   proxy_spend: Decimal, ledger_usd: Decimal) -> Usage:
    """Model spend the proxy counted for one key in one budget window (`/key/info`) beyond what
    the turns reported (`costUsd`): the difference, booked as its own row (negative when the
    turns reported more), never by rewriting rows. Key `llm-adjust:{credential}:{window}:{spend}`:
    the same observation books once; a new spend books only the new difference."""
    return Usage(
        sprite_id=sprite_id, kind=Kind.LLM, cause=UsageRecord.Cause.MODEL_PROXY, started_at=at, ended_at=at,
        cost_usd=proxy_spend - ledger_usd,
        key=f"llm-adjust:{credential_id}:{window_start.isoformat()}:{proxy_spend}",
        detail={"proxy_spend": str(proxy_spend), "ledger_usd": str(ledger_usd), "credential": credential_id},
    )


def storage_hour(*, sprite_id: int, hour: datetime) -> Usage:
    """One sprite's storage for the hour starting at `hour`. Key `storage:{sprite}:{hour}`."""
    return Usage(
        sprite_id=sprite_id, kind=Kind.STORAGE, cause=UsageRecord.Cause.STORAGE, started_at=hour,
        ended_at=hour + timedelta(hours=1), cost_usd=storage_cost(1), key=f"storage:{sprite_id}:{hour.isoformat()}",
        detail={"gb": str(settings.SPRITE_STORAGE_GB)},
    )


def wake(*, sprite_id: int, cause: str, tag: str, started_at: datetime, wall_seconds: float,
         reached: bool = True, idle_tail: bool = True, llm_usd: Decimal | None = None,
         slot: datetime | None = None, detail: dict | None = None) -> list[Usage]:
    """What one wake ClawDirector caused bills, whoever caused it (a heartbeat turn, a start,
    a set-up, a CLI command): its wall time plus the `SPRITE_IDLE_SECONDS` the sprite then
    stays awake (`idle_tail`), if it reached the sprite, and the model spend it reported."""
    rows = []
    if reached:
        idle = settings.SPRITE_IDLE_SECONDS if idle_tail else 0
        rows.append(active(
            sprite_id=sprite_id, cause=cause, tag=tag, started_at=started_at, slot=slot,
            ended_at=started_at + timedelta(seconds=wall_seconds + idle), detail=detail,
        ))
    if llm_usd:
        rows.append(llm(
            sprite_id=sprite_id, cause=cause, tag=tag, started_at=started_at, slot=slot, cost_usd=llm_usd,
            ended_at=started_at + timedelta(seconds=wall_seconds),
        ))
    return rows
