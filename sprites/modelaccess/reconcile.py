"""Model spend from the source (issue 15): each LiteLLM key's spend (`/key/info`) reconciled
with the `llm` rows its turns booked (`costUsd`), the difference booked as an adjustment row
(`billing.llm_adjustment`), never by rewriting rows.

Per key and per budget window: LiteLLM resets a key's `spend` every `budget_duration` and says
when next (`budget_reset_at`), so the window starts at max(key created, next reset - duration).
The ledger side is the sprite's `llm` rows from that start (until the key was revoked), plus
this key's adjustments of the window. A difference under a cent is left alone.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from sprites import billing
from sprites.models import ModelCredential, UsageRecord

from .errors import ModelAccessUnavailable

logger = logging.getLogger(__name__)
CENT = Decimal("0.01")
DURATION = re.compile(r"^(\d+)(s|m|h|d|mo)$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "mo": 30 * 86400}


def budget_duration() -> timedelta | None:
    match = DURATION.match(settings.MODEL_BUDGET_DURATION or "")
    return timedelta(seconds=int(match[1]) * UNITS[match[2]]) if match else None


def window_start(row: ModelCredential, info: dict) -> datetime:
    start = row.created_at
    reset = info.get("budget_reset_at")
    duration = budget_duration()
    reset_at = parse_datetime(reset) if isinstance(reset, str) else None
    if reset_at is not None and duration is not None:
        if timezone.is_naive(reset_at):
            reset_at = timezone.make_aware(reset_at, timezone.utc)
        start = max(start, reset_at - duration)
    return start


def ledger_usd(row: ModelCredential, start: datetime) -> Decimal:
    turns = UsageRecord.objects.filter(sprite_id=row.sprite_id, kind=UsageRecord.Kind.LLM, started_at__gte=start)
    turns = turns.exclude(cause=UsageRecord.Cause.MODEL_PROXY)
    if row.revoked_at is not None:
        turns = turns.filter(started_at__lt=row.revoked_at)
    adjusted = UsageRecord.objects.filter(
        sprite_id=row.sprite_id, cause=UsageRecord.Cause.MODEL_PROXY,
        idempotency_key__startswith=f"llm-adjust:{row.pk}:{start.isoformat()}:",
    )
    total = Decimal(0)
    for queryset in (turns, adjusted):
        total += queryset.aggregate(s=Sum("cost_usd"))["s"] or Decimal(0)
    return total


def reconcile_one(row: ModelCredential, client=None, *, now: datetime | None = None) -> billing.Usage | None:
    """Book the difference between the proxy's spend for this key and the ledger, if a cent or more."""
    from . import proxy

    client = client or proxy()
    info = client.info(row.key_id or row.api_key)  # the hashed token: no secret in the URL
    budget = info.get("max_budget")
    if row.revoked_at is None:
        from . import note_budget

        note_budget(row, budget is not None and Decimal(str(info.get("spend") or 0)) >= Decimal(str(budget)))
    spend = Decimal(str(info.get("spend") or 0)).quantize(Decimal("0.00000001"))
    start = window_start(row, info)
    booked = ledger_usd(row, start)
    if abs(spend - booked) < CENT:
        return None
    usage = billing.usage.llm_adjustment(sprite_id=row.sprite_id, credential_id=row.pk, window_start=start,
                                         at=now or timezone.now(), proxy_spend=spend, ledger_usd=booked)
    written = billing.record_usage([usage])
    return written[0] if written else None


def reconcile(*, now: datetime | None = None) -> list[billing.Usage]:
    """Every active LiteLLM key: one `/key/info` each. A proxy that fails for one key is logged
    and the others go on."""
    from . import proxy

    client, booked = proxy(), []
    rows = ModelCredential.objects.filter(backend=ModelCredential.Backend.LITELLM, revoked_at__isnull=True)
    for row in rows.iterator():
        try:
            usage = reconcile_one(row, client, now=now)
        except ModelAccessUnavailable as exc:
            logger.warning("Model spend of credential %s not reconciled: %s", row.pk, exc)
            continue
        if usage is not None:
            booked.append(usage)
    return booked
