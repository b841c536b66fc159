"""The heartbeat sweep: claim the sprites that are due, wake each one to run its agents'
heartbeat turn, bill what ran, let it sleep. Every entry point (the `heartbeat` command,
django-crontab, `GET /api/cron/heartbeat`, the admin's "run now") calls `run_sweep`.

Which sprites, and when. A sprite is *due* when it belongs to a user, its status is
online, sleeping or error (an `error` sprite is retried: the heartbeat is the only thing that
notices it came back; stopped = the user's intent, provisioning = not set up yet, destroyed =
gone, and pool sprites have no user), nobody holds its lease, and it has had no heartbeat in
the current *window*: the `HEARTBEAT_INTERVAL_MINUTES` slot of the clock (UTC, aligned to the
epoch) the sweep started in. A slot rather than "older than 15 minutes" because a sprite woken
ten seconds into the 10:00 sweep is only 14:50 old at 10:15 and would skip every other run.

Claiming. Sprites are claimed in chunks with one statement each: an UPDATE of
`heartbeat_lease_until` over a sub-select of due rows (`FOR UPDATE SKIP LOCKED` on
PostgreSQL; SQLite serializes writers), RETURNING the rows won. A sweep acts only on rows it
won, so sweeps overlapping on one host or many never wake a sprite twice. A chunk is claimed
only when the pool is about to run dry, so a claimed sprite starts within about one turn and
the lease (3 × the exec timeout + a minute) outlives its turn and the write that records it;
a sweep killed outright leaves leases that expire well inside the next window.

Billing (see docs/cost-model.md). Each wake that reached the sprite is one `active` row:
measured wall time of the exec + `SPRITE_IDLE_SECONDS`, cause `heartbeat`, key
`active:{pk}:heartbeat:{window}`; the agent's reported `meta.agentMeta.costUsd` is an `llm`
row keyed the same way. Storage is one row per sprite per whole hour, key
`storage:{pk}:{hour}`, for every live sprite (pool ones too). Keys make every write
idempotent: a re-run or a retried write never bills twice.

Writes are batched: results are written every `FLUSH_EVERY` wakes or `FLUSH_SECONDS`, ledger
rows (via `record_usage`), last_heartbeat, lease release and wake records in one transaction:
a small constant number of queries per batch, whatever the fleet size. Worker threads only
speak HTTP; every query runs on the sweep's own thread.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import socket
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError, connection, transaction
from django.db.models import Case, DateTimeField, F, Q, TextField, Value, When
from django.utils import timezone

from heartbeat.models import HeartbeatRun, HeartbeatWake
from sprites import services
from sprites.client import SpritesError, get_client
from sprites.metering import (
    Usage,
    active_usage,
    record_usage,
    round_cost,
    round_seconds,
    storage_cost,
)
from sprites.models import UsageRecord, UserSprite

logger = logging.getLogger(__name__)

Status = UserSprite.Status
WAKEABLE = (Status.ONLINE, Status.SLEEPING, Status.ERROR)
TRIGGERS = {choice.value for choice in HeartbeatRun.Trigger}

FLUSH_EVERY = 100  # wakes per write batch
FLUSH_SECONDS = 5.0  # and at least this often, so a killed sweep loses little
OUTPUT_TAIL_CHARS = 1000
ERROR_CHARS = 300
ERROR_PREFIX = "Heartbeat: "  # marks last_error lines the heartbeat may clear again
STORAGE_BACKFILL_HOURS = 48  # per sprite per sweep; a long outage catches up over a few sweeps
STORAGE_CHUNK = 500  # sprites per storage transaction
MAX_LLM_USD = Decimal("100000")  # a turn reporting more than this is not believed
TIMEOUT_EXIT_CODES = (124, 137)  # timeout(1): 124 on TERM, 137 after -k KILL


# --- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    command: str
    timeout: int
    exec_timeout: float
    concurrency: int
    interval: timedelta
    idle_seconds: int
    lease: timedelta


def load_config(*, concurrency: int | None = None) -> Config:
    """The heartbeat settings, checked. Raises ImproperlyConfigured with a plain message."""
    timeout = settings.HEARTBEAT_TIMEOUT_SECONDS
    interval = settings.HEARTBEAT_INTERVAL_MINUTES
    concurrency = settings.HEARTBEAT_CONCURRENCY if concurrency is None else concurrency
    if not isinstance(timeout, int) or timeout < 1:
        raise ImproperlyConfigured("HEARTBEAT_TIMEOUT_SECONDS must be a whole number of seconds ≥ 1.")
    if not isinstance(interval, int) or interval < 1:
        raise ImproperlyConfigured("HEARTBEAT_INTERVAL_MINUTES must be a whole number of minutes ≥ 1.")
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ImproperlyConfigured("The heartbeat concurrency must be a whole number ≥ 1.")
    try:
        command = settings.HEARTBEAT_COMMAND.format(
            timeout=timeout, agent=shlex.quote(settings.OPENCLAW_AGENT_ID)
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise ImproperlyConfigured(
            f"HEARTBEAT_COMMAND is not a valid template ({exc!r}); the only placeholders are "
            "{timeout} and {agent} (double other braces)."
        ) from exc
    if not command.strip():
        raise ImproperlyConfigured("HEARTBEAT_COMMAND is empty.")
    # The command bounds itself (`timeout {timeout}`); the HTTP read waits a little longer so
    # the command's own exit code, not our socket, reports a timeout when it can.
    exec_timeout = timeout + min(30, max(1, timeout // 5))
    return Config(
        command=command,
        timeout=timeout,
        exec_timeout=exec_timeout,
        concurrency=concurrency,
        interval=timedelta(minutes=interval),
        idle_seconds=int(settings.SPRITE_IDLE_SECONDS),
        lease=timedelta(seconds=3 * exec_timeout + 60),
    )


def window_start(at: datetime, interval: timedelta) -> datetime:
    """Start of the interval slot `at` falls in (UTC, aligned to the epoch)."""
    step = int(interval.total_seconds())
    return datetime.fromtimestamp(int(at.timestamp()) // step * step, tz=dt_timezone.utc)


def hour_start(at: datetime) -> datetime:
    return at.astimezone(dt_timezone.utc).replace(minute=0, second=0, microsecond=0)


# --- selection and claiming ----------------------------------------------------------------------


def due_filter(*, window: datetime, now: datetime, force: bool = False, sprite_ids=None) -> Q:
    """Sprites a sweep in `window` may wake at `now` (see the module docstring)."""
    q = Q(user__isnull=False, status__in=WAKEABLE) & (
        Q(heartbeat_lease_until__isnull=True) | Q(heartbeat_lease_until__lt=now)
    )
    if not force:
        q &= Q(last_heartbeat__isnull=True) | Q(last_heartbeat__lt=window)
    if sprite_ids is not None:
        q &= Q(pk__in=list(sprite_ids))
    return q


def due_queryset(*, window: datetime, now: datetime, force: bool = False, sprite_ids=None):
    return UserSprite.objects.filter(
        due_filter(window=window, now=now, force=force, sprite_ids=sprite_ids)
    ).order_by(F("last_heartbeat").asc(nulls_first=True), "pk")


@dataclass(frozen=True)
class Target:
    pk: int
    name: str


def claim(*, limit: int, window: datetime, lease: timedelta, force: bool = False, sprite_ids=None) -> list[Target]:
    """Lease up to `limit` due sprites in one statement and return exactly the ones won."""
    if limit < 1 or (sprite_ids is not None and not sprite_ids):
        return []
    now = timezone.now()
    inner_sql, inner_params = (
        due_queryset(window=window, now=now, force=force, sprite_ids=sprite_ids)
        .values("pk")[:limit]
        .query.sql_with_params()
    )
    if connection.features.has_select_for_update_skip_locked:
        inner_sql += " FOR UPDATE SKIP LOCKED"
    meta = UserSprite._meta
    qn = connection.ops.quote_name
    table, pk = qn(meta.db_table), qn(meta.pk.column)
    lease_col = qn(meta.get_field("heartbeat_lease_until").column)
    name_col = qn(meta.get_field("sprite_name").column)
    adapt = connection.ops.adapt_datetimefield_value
    # The lease test is repeated outside: PostgreSQL re-checks it on the row's latest version.
    sql = (
        f"UPDATE {table} SET {lease_col} = %s WHERE {pk} IN ({inner_sql}) "
        f"AND ({lease_col} IS NULL OR {lease_col} < %s) RETURNING {pk}, {name_col}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [adapt(now + lease), *inner_params, adapt(now)])
        rows = cursor.fetchall()
    return sorted((Target(pk=row[0], name=row[1]) for row in rows), key=lambda t: t.pk)


# --- one sprite ----------------------------------------------------------------------------------


@dataclass
class WakeResult:
    sprite_id: int
    name: str
    started_at: datetime
    wall_seconds: float
    outcome: str  # HeartbeatWake.Outcome
    exit_code: int | None = None
    output_tail: str = ""
    error: str = ""
    llm_usd: Decimal | None = None
    # Did the command run in the sprite? Only then was it awake and is there compute to bill.
    reached: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome == HeartbeatWake.Outcome.OK


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_text(text: str, limit: int) -> str:
    """Untrusted output made safe to store and print: no NULs (PostgreSQL refuses them), no
    terminal escapes; the last `limit` characters."""
    return _CONTROL.sub("", text)[-limit:]


def parse_llm_cost(stdout: str) -> Decimal | None:
    """`meta.agentMeta.costUsd` from `openclaw agent --json` output, or None.

    Tolerant: the JSON may be preceded by log lines; anything missing, malformed, negative,
    non-finite or absurd is no cost rather than an error (the turn itself still counts).
    """
    data = None
    text = stdout.strip()
    for candidate in (text, text[text.find("{"): text.rfind("}") + 1] if "{" in text else ""):
        if not candidate:
            continue
        try:
            data = json.loads(candidate)
            break
        except ValueError:
            continue
    if data is None:  # last resort: the last line that is a JSON object
        for line in reversed(text.splitlines()):
            try:
                data = json.loads(line)
                break
            except ValueError:
                continue
    cost = None
    for path in (("meta",), ("result", "meta")):  # top level, or nested when run via the gateway
        node = data
        for key in (*path, "agentMeta", "costUsd"):
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            cost = node
            break
    if isinstance(cost, bool) or not isinstance(cost, (int, float, str)):
        return None
    try:
        value = Decimal(str(cost))
    except InvalidOperation:
        return None
    if not value.is_finite() or value < 0 or value > MAX_LLM_USD:
        return None
    return round_cost(value)


def wake_one(target: Target, *, config: Config, client=None) -> WakeResult:
    """Run the heartbeat command in one sprite. Never raises: every failure is a result.

    The exec wakes the sprite (from cold or warm) and blocks until the agent's turn is done,
    bounded by `config.exec_timeout`.
    """
    client = client or get_client()
    started_at = timezone.now()
    t0 = time.monotonic()
    result = WakeResult(sprite_id=target.pk, name=target.name, started_at=started_at, wall_seconds=0.0,
                        outcome=HeartbeatWake.Outcome.FAILED)
    try:
        ran = client.exec(target.name, ["bash", "-c", config.command], timeout=config.exec_timeout)
    except SpritesError as exc:
        result.wall_seconds = time.monotonic() - t0
        # A read timeout or a broken stream happened while the command ran: it was awake.
        result.reached = exc.code in ("timeout", "exec_stream")
        if exc.code == "timeout":
            result.outcome = HeartbeatWake.Outcome.TIMEOUT
            result.error = f"no answer within {config.exec_timeout:g}s"
        else:
            result.error = clean_text(str(exc), ERROR_CHARS)
        return result
    except Exception as exc:  # noqa: BLE001 - one sprite must never stop the sweep
        result.wall_seconds = time.monotonic() - t0
        timed_out = "timeout" in type(exc).__name__.lower()
        result.reached = timed_out  # e.g. urllib3's ReadTimeoutError while streaming
        result.outcome = HeartbeatWake.Outcome.TIMEOUT if timed_out else HeartbeatWake.Outcome.FAILED
        result.error = f"{type(exc).__name__} during exec" + (f" (after {result.wall_seconds:.0f}s)" if timed_out else "")
        logger.warning("Heartbeat of %s raised %s", target.name, type(exc).__name__, exc_info=not timed_out)
        return result
    result.wall_seconds = time.monotonic() - t0
    result.reached = True
    result.exit_code = ran.exit_code
    result.output_tail = clean_text(ran.tail(OUTPUT_TAIL_CHARS * 2), OUTPUT_TAIL_CHARS)
    if ran.exit_code == 0:
        result.outcome = HeartbeatWake.Outcome.OK
        result.llm_usd = parse_llm_cost(ran.text)
    else:
        # A turn that failed may still have spent tokens: keep what it reports.
        result.llm_usd = parse_llm_cost(ran.text)
        timed_out = ran.exit_code in TIMEOUT_EXIT_CODES
        result.outcome = HeartbeatWake.Outcome.TIMEOUT if timed_out else HeartbeatWake.Outcome.FAILED
        last_line = next((line for line in reversed(result.output_tail.splitlines()) if line.strip()), "")
        reason = f"timed out after {config.timeout}s" if timed_out else "failed"
        result.error = clean_text(f"exit {ran.exit_code} ({reason}): {last_line}".rstrip(": "), ERROR_CHARS)
    return result


def usages_for_wake(result: WakeResult, *, window: datetime, idle_seconds: int, cause: str,
                    forced: bool = False) -> list[Usage]:
    """The ledger rows one wake bills: compute (wall time + idle tail) and model spend.

    A scheduled wake is keyed by its window, so a window bills one wake per sprite however
    often it is re-run; a forced wake ("run now") is keyed by its own start instant.
    """
    rows: list[Usage] = []
    slot = (result.started_at if forced else window).isoformat()
    detail = {"outcome": result.outcome, "exit_code": result.exit_code,
              "wall_seconds": str(round_seconds(result.wall_seconds)), "idle_seconds": idle_seconds}
    if result.reached:
        ended_at = result.started_at + timedelta(seconds=result.wall_seconds + idle_seconds)
        rows.append(active_usage(
            sprite_id=result.sprite_id, cause=cause, started_at=result.started_at, ended_at=ended_at,
            key=f"active:{result.sprite_id}:{cause}:{slot}", detail=detail,
        ))
    if result.llm_usd:
        end = result.started_at + timedelta(seconds=result.wall_seconds)
        rows.append(Usage(
            sprite_id=result.sprite_id, kind=UsageRecord.Kind.LLM, cause=cause, started_at=result.started_at,
            ended_at=end, cost_usd=result.llm_usd, key=f"llm:{result.sprite_id}:{cause}:{slot}",
            detail={"costUsd": str(result.llm_usd)},
        ))
    return rows


# --- writing results -------------------------------------------------------------------------------


@dataclass
class Totals:
    billed: Decimal = Decimal("0")
    llm: Decimal = Decimal("0")


def _retry_deadlocks(fn, *args, **kwargs):
    """Overlapping sweeps update the same sprite rows; PostgreSQL may pick one as a deadlock
    victim. Every write here is idempotent (ledger keys, plain assignments): run it again."""
    for attempt in range(3):
        try:
            return fn(*args, **kwargs)
        except OperationalError as exc:
            sqlstate = getattr(exc.__cause__, "sqlstate", None)
            if attempt == 2 or sqlstate not in ("40P01", "40001"):
                raise
            logger.warning("Heartbeat write hit %s; retrying", sqlstate)
            time.sleep(0.05 * (attempt + 1))


def flush(results: list[WakeResult], *, run: HeartbeatRun, window: datetime, config: Config,
          cause: str, forced: bool) -> Totals:
    """Bill and record a batch of wakes in one transaction. Returns what it billed."""
    if not results:
        return Totals()
    return _retry_deadlocks(_flush_once, results, run=run, window=window, config=config, cause=cause, forced=forced)


def _flush_once(results, *, run, window, config, cause, forced) -> Totals:
    usages = {r.sprite_id: usages_for_wake(r, window=window, idle_seconds=config.idle_seconds,
                                            cause=cause, forced=forced) for r in results}
    now = timezone.now()
    with transaction.atomic():
        written = {u.key for u in record_usage([u for rows in usages.values() for u in rows])}
        ok = [r for r in results if r.ok]
        failed = [r for r in results if not r.ok]
        if ok:
            stale_error = Q(last_error__startswith=ERROR_PREFIX)
            UserSprite.objects.filter(pk__in=[r.sprite_id for r in ok]).update(
                last_heartbeat=Case(*[When(pk=r.sprite_id, then=Value(r.started_at)) for r in ok],
                                    output_field=DateTimeField()),
                vm_state=UserSprite.VMState.RUNNING,  # it is, for its idle tail
                vm_state_checked_at=now,
                heartbeat_lease_until=None,
                last_error=Case(When(stale_error, then=Value("")), default=F("last_error"), output_field=TextField()),
                last_error_at=Case(When(stale_error, then=Value(None)), default=F("last_error_at"),
                                   output_field=DateTimeField()),
                updated_at=now,
            )
        if failed:
            # No last_heartbeat: a failed sprite is due again in the next window.
            UserSprite.objects.filter(pk__in=[r.sprite_id for r in failed]).update(
                heartbeat_lease_until=None,
                last_error=Case(*[When(pk=r.sprite_id, then=Value(f"{ERROR_PREFIX}{r.error}"[:2000]))
                                  for r in failed], output_field=TextField()),
                last_error_at=now,
                updated_at=now,
            )
        totals = Totals()
        wakes = []
        for r in results:
            billed = sum((u.cost_usd for u in usages[r.sprite_id]
                          if u.key in written and u.kind != UsageRecord.Kind.LLM), Decimal("0"))
            llm = sum((u.cost_usd for u in usages[r.sprite_id]
                       if u.key in written and u.kind == UsageRecord.Kind.LLM), Decimal("0"))
            totals.billed += billed
            totals.llm += llm
            wakes.append(HeartbeatWake(
                run=run, sprite_id=r.sprite_id, started_at=r.started_at,
                duration_seconds=round_seconds(r.wall_seconds), outcome=r.outcome, exit_code=r.exit_code,
                output_tail=r.output_tail, error=r.error, billed_usd=billed, llm_usd=r.llm_usd,
            ))
        HeartbeatWake.objects.bulk_create(wakes, batch_size=500)
    return totals


def accrue_storage(*, now: datetime | None = None) -> Decimal:
    """Bill every whole hour of storage not yet billed, for every live sprite (pool included).

    An hour [H, H+1h) is billed once it has ended, one row per sprite and hour keyed
    `storage:{pk}:{H}`, and `storage_billed_until` advances in the same transaction, so any
    number of sweeps in an hour bill it once. A sprite is billed from the hour it was created
    in (that hour counts whole); at most STORAGE_BACKFILL_HOURS per sprite per call.
    Returns the cost written.
    """
    until = hour_start(now or timezone.now())
    rows = list(
        UserSprite.objects.exclude(status=Status.DESTROYED)
        .filter(Q(storage_billed_until__isnull=True) | Q(storage_billed_until__lt=until))
        .order_by("pk")
        .values_list("pk", "created_at", "storage_billed_until")
    )
    billed = Decimal("0")
    one_hour = timedelta(hours=1)
    for i in range(0, len(rows), STORAGE_CHUNK):
        usages: list[Usage] = []
        ends: dict[datetime, list[int]] = {}
        for pk, created_at, billed_until in rows[i:i + STORAGE_CHUNK]:
            start = billed_until or hour_start(created_at)
            end = min(until, start + STORAGE_BACKFILL_HOURS * one_hour)
            hour = start
            while hour < end:
                usages.append(Usage(
                    sprite_id=pk, kind=UsageRecord.Kind.STORAGE, cause=UsageRecord.Cause.STORAGE,
                    started_at=hour, ended_at=hour + one_hour, cost_usd=storage_cost(1),
                    key=f"storage:{pk}:{hour.isoformat()}",
                    detail={"gb": str(settings.SPRITE_STORAGE_GB)},
                ))
                hour += one_hour
            if end > start:
                ends.setdefault(end, []).append(pk)
        if usages:
            billed += _retry_deadlocks(_write_storage, usages, ends)
    return billed


def _write_storage(usages: list[Usage], ends: dict[datetime, list[int]]) -> Decimal:
    with transaction.atomic():
        written = record_usage(usages)
        for end, pks in ends.items():
            # Never backwards: a concurrent sweep may already have gone further.
            UserSprite.objects.filter(pk__in=pks).filter(
                Q(storage_billed_until__isnull=True) | Q(storage_billed_until__lt=end)
            ).update(storage_billed_until=end)
    return sum((u.cost_usd for u in written), Decimal("0"))


# --- the sweep -------------------------------------------------------------------------------------


def run_sweep(
    *,
    trigger: str = "command",
    dry_run: bool = False,
    sprite_ids: list[int] | None = None,
    force: bool = False,
    concurrency: int | None = None,
    stdout=None,
    verbosity: int = 1,
) -> HeartbeatRun:
    """One heartbeat sweep; returns its finished `HeartbeatRun`.

    `sprite_ids` limits the sweep to those sprites (and skips storage and pool top-up);
    `force` wakes them even if they had a heartbeat this window (status and lease rules still
    apply). `stdout` gets one line per sprite at verbosity ≥ 2. Raises ImproperlyConfigured
    for bad settings, before touching anything.
    """
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}")
    config = load_config(concurrency=concurrency)
    ids = None if sprite_ids is None else sorted({int(pk) for pk in sprite_ids})

    def say(message: str) -> None:
        if stdout is not None and verbosity >= 2:
            stdout.write(message + "\n")

    run = HeartbeatRun.objects.create(trigger=trigger, host=socket.gethostname()[:255], dry_run=dry_run)
    window = window_start(run.started_at, config.interval)
    assigned = UserSprite.objects.filter(user__isnull=False).exclude(status=Status.DESTROYED)
    candidates = assigned.count() if ids is None else len(ids)
    try:
        if dry_run:
            due = list(due_queryset(window=window, now=timezone.now(), force=force, sprite_ids=ids)
                       .values_list("sprite_name", flat=True))
            for name in due:
                say(f"{name}: would wake")
            run.due = len(due)
        else:
            if ids is None:
                _sync_vm_states(run)
            _wake_all(run, config=config, window=window, force=force, ids=ids, trigger=trigger, say=say)
            if ids is None:
                _side_jobs(run)
        run.skipped = max(candidates - run.due, 0)
    except BaseException as exc:
        run.error_summary = (f"sweep aborted: {type(exc).__name__}\n" + run.error_summary)[:10000]
        _finish(run)
        raise
    _finish(run)
    logger.info("Heartbeat run %s (%s): %s", run.pk, trigger, run.summary())
    return run


def _finish(run: HeartbeatRun) -> None:
    run.finished_at = timezone.now()
    try:
        run.save()
    except Exception:  # noqa: BLE001 - do not hide the original error behind this one
        logger.exception("Could not save heartbeat run %s", run.pk)


def _wake_all(run: HeartbeatRun, *, config: Config, window: datetime, force: bool, ids, trigger: str, say) -> None:
    cause = UsageRecord.Cause.STAFF if trigger == HeartbeatRun.Trigger.STAFF else UsageRecord.Cause.HEARTBEAT
    client = get_client()
    pending: dict[Future, Target] = {}
    buffer: list[WakeResult] = []
    errors: list[str] = []
    exhausted = False
    last_flush = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="heartbeat")

    def write(batch):
        totals = flush(batch, run=run, window=window, config=config, cause=cause, forced=force)
        run.billed_usd += totals.billed
        run.llm_usd += totals.llm

    try:
        while True:
            # Keep between one and two turns' worth queued: every worker busy, and no
            # claimed sprite waits long enough for its lease to matter.
            if not exhausted and len(pending) <= config.concurrency:
                targets = claim(limit=2 * config.concurrency - len(pending), window=window,
                                lease=config.lease, force=force, sprite_ids=ids)
                exhausted = not targets
                run.due += len(targets)
                for target in targets:
                    pending[pool.submit(wake_one, target, config=config, client=client)] = target
            if not pending:
                break
            done, _ = wait(pending, timeout=FLUSH_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                pending.pop(future)
                result = future.result()  # wake_one never raises
                buffer.append(result)
                if result.ok:
                    run.woke += 1
                    say(f"{result.name}: ok in {result.wall_seconds:.1f}s"
                        + (f", model ${result.llm_usd}" if result.llm_usd else ""))
                else:
                    run.failed += 1
                    errors.append(f"{result.name}: {result.outcome}: {result.error}")
                    say(f"{result.name}: FAILED ({result.outcome}) after {result.wall_seconds:.1f}s: {result.error}")
            if len(buffer) >= FLUSH_EVERY or (buffer and time.monotonic() - last_flush >= FLUSH_SECONDS):
                batch, buffer = buffer, []
                write(batch)
                last_flush = time.monotonic()
        write(buffer)
        buffer = []
    finally:
        # On an abort: sprites never started are handed back at once; running ones keep their
        # lease until it expires (their turn may still be going).
        unstarted = [target.pk for future, target in pending.items() if future.cancel()]
        pool.shutdown(wait=not pending, cancel_futures=True)
        if unstarted:
            UserSprite.objects.filter(pk__in=unstarted).update(heartbeat_lease_until=None)
        if buffer:
            try:
                write(buffer)
            except Exception:  # noqa: BLE001 - already failing; the lease brings them back
                logger.exception("Heartbeat could not record %d finished wakes", len(buffer))
        run.error_summary = _summarize(errors)


def _summarize(errors: list[str], limit: int = 50) -> str:
    lines = errors[:limit]
    if len(errors) > limit:
        lines.append(f"… and {len(errors) - limit} more")
    return "\n".join(lines)


def _sync_vm_states(run: HeartbeatRun) -> None:
    """Before waking anyone: every sprite's VM state from the list API, so the console shows
    what the users' own activity keeps awake. Never fails the sweep."""
    try:
        run.notes = f"vm states: {services.sync_vm_states()} synced"
    except Exception as exc:  # noqa: BLE001
        logger.exception("Heartbeat could not sync VM states")
        run.notes = f"vm state sync failed: {clean_text(str(exc) or type(exc).__name__, ERROR_CHARS)}"


def _side_jobs(run: HeartbeatRun) -> None:
    """Storage accrual, pruning old wake records, then the warm pool top-up (which resumes
    stuck set-ups first). None of them fails the sweep."""
    notes = []
    try:
        storage = accrue_storage()
        run.billed_usd += storage
        if storage:
            notes.append(f"storage: billed ${storage}")
    except Exception as exc:  # noqa: BLE001
        logger.exception("Heartbeat storage accrual failed")
        notes.append(f"storage accrual failed: {type(exc).__name__} (retried next sweep)")
    try:
        # Wake records are for debugging recent runs; the ledger keeps the money for good.
        days = settings.HEARTBEAT_WAKE_RETENTION_DAYS
        HeartbeatWake.objects.filter(started_at__lt=timezone.now() - timedelta(days=days)).delete()
    except Exception as exc:  # noqa: BLE001
        logger.exception("Heartbeat could not prune old wake records")
        notes.append(f"pruning wake records failed: {type(exc).__name__}")
    try:
        # Resumes stuck set-ups first, then tops the warm pool up to SPRITE_POOL_SIZE.
        notes.append(f"fill_pool: {services.fill_pool()} sprite(s) set up")
    except Exception as exc:  # noqa: BLE001 - a pool failure must never fail the heartbeat
        logger.exception("Heartbeat could not top the warm pool up")
        notes.append(f"fill_pool failed: {clean_text(str(exc) or type(exc).__name__, ERROR_CHARS)}")
    run.notes = "\n".join(filter(None, [run.notes, *notes]))
