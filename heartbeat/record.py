"""Writing a batch of wakes: ledger rows, the sprites' heartbeat fields, the wake records.

One transaction per batch and a small constant number of queries, whatever its size. The
money is built by `sprites.billing` (through `WakeResult.usages`); the sprite rows are written
by their queryset's transitions; this module only puts them together. The same transaction
adds the batch to the `/metrics` histograms (wake duration, and lateness: how long after its
sprite's own window opened a scheduled wake started), so the figures count each recorded wake exactly once.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from heartbeat.models import HeartbeatRun, HeartbeatWake
from sprites import billing
from sprites.models import Counter, UsageRecord, UserSprite
from sprites.models.counters import Increments, observe
from sprites.services import WakeResult, budgets
from sprites.services.verify import record_checks

# Histogram buckets (seconds). A turn is bounded by HEARTBEAT_TIMEOUT_SECONDS plus the exec's
# margin; a wake is late by at most one interval (15 min) before it belongs to the next.
WAKE_SECONDS_BUCKETS = (1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300)
LATENESS_SECONDS_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900)


@dataclass
class Totals:
    billed: Decimal = Decimal("0")
    llm: Decimal = Decimal("0")


def flush(results: list[WakeResult], *, run: HeartbeatRun, cause: str, interval: timedelta | None) -> Totals:
    """Bill and record a batch of wakes in one transaction. Returns what it billed.

    Each scheduled wake's rows are keyed by its sprite's own window (`WakeResult.slot`), so a
    window bills one wake per sprite however often it is re-run; a forced wake ("run now",
    `interval` None) by its own start instant. A failed sprite keeps its lease until its next
    window opens (slot + `interval`; released at once when forced)."""
    if not results:
        return Totals()
    totals = billing.retry_deadlocks(_flush_once, results, run=run, cause=cause, interval=interval)
    budgets.after_batch(r.sprite_id for r in results)  # who just crossed 80 % or 100 % of their budget
    return totals


def _flush_once(results: list[WakeResult], *, run: HeartbeatRun, cause: str, interval: timedelta | None) -> Totals:
    usages = {r.sprite_id: r.usages(cause=cause, slot=_key_slot(r, interval)) for r in results}
    now = timezone.now()
    retry_after = {r.sprite_id: r.slot + interval for r in results
                   if not r.done and interval is not None and r.slot is not None}
    with transaction.atomic():
        written = {u.key for u in billing.record_usage([u for rows in usages.values() for u in rows])}
        UserSprite.objects.record_heartbeats({r.sprite_id: r.started_at for r in results if r.done}, now)
        UserSprite.objects.record_heartbeat_failures({r.sprite_id: r.error for r in results if not r.done}, now,
                                                     retry_after=retry_after or None)
        record_checks({r.sprite_id: r.gateway_error for r in results if r.gateway_error is not None},
                      {r.sprite_id: (r.known_good_checkpoint, r.started_at) for r in results if r.known_good_checkpoint},
                      now)
        totals, wakes = Totals(), []
        for r in results:
            mine = [u for u in usages[r.sprite_id] if u.key in written]
            billed = sum((u.cost_usd for u in mine if u.kind != UsageRecord.Kind.LLM), Decimal("0"))
            llm = sum((u.cost_usd for u in mine if u.kind == UsageRecord.Kind.LLM), Decimal("0"))
            totals.billed += billed
            totals.llm += llm
            wakes.append(HeartbeatWake(
                run=run, sprite_id=r.sprite_id, started_at=r.started_at,
                duration_seconds=billing.round_seconds(r.wall_seconds), outcome=r.outcome, exit_code=r.exit_code,
                output_tail=r.output_tail, error=r.error, billed_usd=billed, llm_usd=r.llm_usd,
                late_seconds=None if interval is None or r.late_seconds is None
                else billing.round_seconds(r.late_seconds),
            ))
        HeartbeatWake.objects.bulk_create(wakes, batch_size=500)
        Counter.objects.add(_observations(results, scheduled=interval is not None))  # last: hot rows
    return totals


def _key_slot(result: WakeResult, interval: timedelta | None) -> datetime:
    """What keys a wake's ledger rows: its window when scheduled, its own start when forced."""
    if interval is None or result.slot is None:
        return result.started_at
    return result.slot


def _observations(results: list[WakeResult], *, scheduled: bool) -> Increments:
    increments: Increments = {}
    for r in results:
        observe(increments, "heartbeat_wake_duration_seconds", r.wall_seconds, WAKE_SECONDS_BUCKETS,
                outcome=str(r.outcome))
        if scheduled and r.late_seconds is not None:  # a forced wake has no window to be late for
            observe(increments, "heartbeat_wake_lateness_seconds", r.late_seconds, LATENESS_SECONDS_BUCKETS)
    return increments
