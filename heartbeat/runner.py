"""The wake loop: admit wakes while a running slot is free, run turns on worker threads,
write results in batches.

Worker threads only run `sprites.services.run_turn` (HTTP); every query runs on the sweep's
own thread. A wake starts only when the provider's running cap has a free slot
(`capacity.Gate`: min(running_limit - running, concurrency - in flight)); sprites are claimed
in small chunks just ahead of the slots, so a claimed sprite starts within moments and its
lease outlives it. Results are written every `FLUSH_EVERY` wakes or `FLUSH_SECONDS`, so a
killed sweep loses little. A tick may have a deadline: past it nothing new is claimed or
started (claimed sprites not started are handed back), and the wakes in flight finish.

A 429 `concurrent_sprite_limit_exceeded` is backpressure, never a failure: nothing ran and
nothing is billed or recorded; the gate stops admitting until a slot frees, and the sprite is
handed back with a short lease (a backoff, doubling on each refusal) so this sweep or another
retries it within its window without spinning.

A sweep tries each sprite once. A scheduled sweep leaves a failed sprite leased until the
next window (without that, a sprite that keeps failing would be re-claimed by the same sweep
as soon as its batch is written, for ever); a forced sweep ("run now", given sprite ids,
which ignores this window's heartbeat) claims only the ids it has not tried yet.
"""

import logging
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from heartbeat import claims, record
from heartbeat.capacity import Gate, backoff_seconds
from heartbeat.config import Config
from heartbeat.models import HeartbeatRun
from sprites.models import UsageRecord
from sprites.services import Target, WakeResult, persist_api_calls, read_org, run_turn, settle_budget

logger = logging.getLogger(__name__)

FLUSH_EVERY = 100  # wakes per write batch
FLUSH_SECONDS = 5.0  # and at least this often
ERRORS_SHOWN = 50
CLAIM_AHEAD = 32  # claim at least this many (bounded by the concurrency) when the queue is empty
MIN_NAP = 0.005


class Runner:
    def __init__(self, run: HeartbeatRun, *, config: Config, window: datetime, force: bool, ids, say,
                 deadline: float | None = None, gate: Gate | None = None):
        self.run, self.config, self.window, self.force, self.ids, self.say = run, config, window, force, ids, say
        self.cause = UsageRecord.Cause.STAFF if run.trigger == HeartbeatRun.Trigger.STAFF else UsageRecord.Cause.HEARTBEAT
        self.deadline = deadline  # time.monotonic() after which nothing new starts
        self.gate = gate or Gate(concurrency=config.concurrency, idle_seconds=settings.SPRITE_IDLE_SECONDS,
                                 read_org=read_org)
        self.pending: dict[Future, Target] = {}
        self.queue: deque[Target] = deque()  # claimed, waiting for a running slot
        self.claimed_at: dict[int, float] = {}
        self.buffer: list[WakeResult] = []
        self.errors: list[str] = []
        self.more = True  # there may be due sprites left to claim
        self.retry_at: float | None = None  # when sprites refused for capacity are due again
        self.deferrals: dict[int, datetime] = {}  # handed back with a backoff, not yet written
        self.refusals: dict[int, int] = {}  # capacity refusals per sprite, for the backoff
        self.tried: set[int] = set()
        self.last_flush = time.monotonic()

    def run_all(self) -> None:
        pool = ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="heartbeat")
        try:
            while True:
                self._top_up(pool)
                if not self.pending and self._finished():
                    break
                nap = self._nap()
                if self.pending:
                    done, _ = wait(self.pending, timeout=nap, return_when=FIRST_COMPLETED)
                else:
                    time.sleep(nap)
                    done = set()
                for future in done:
                    self.pending.pop(future)
                    self._collect(future.result())  # run_turn never raises
                self._hand_back()
                if len(self.buffer) >= FLUSH_EVERY or (self.buffer and time.monotonic() - self.last_flush >= FLUSH_SECONDS):
                    self._write()
            self._write()
        finally:
            self._abort(pool)

    def _past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _finished(self) -> bool:
        """Nothing in flight (the caller checks): done when the deadline passed, or when nothing
        is left to claim and no refused sprite is waiting out its backoff."""
        if self._past_deadline():
            return True
        return not self.queue and not self.more and self.retry_at is None

    def _nap(self) -> float:
        """How long to wait for a turn to finish before looking again: until the gate may
        admit someone, a backoff ends or the deadline, at most FLUSH_SECONDS."""
        now = time.monotonic()
        moments = [FLUSH_SECONDS]
        change = self.gate.next_change()
        if change is not None:
            moments.append(change)
        elif (self.queue or self.more) and not self.pending:
            moments.append(1.0)  # the cap is full with others' sprites: look again soon
        if self.retry_at is not None:
            moments.append(self.retry_at - now)
        if self.deadline is not None:
            moments.append(self.deadline - now)
        return max(min(moments), MIN_NAP)

    def _top_up(self, pool: ThreadPoolExecutor) -> None:
        """Start as many queued sprites as the gate admits, claiming a small chunk when the
        queue runs dry; past the deadline, hand queued sprites back instead."""
        if self._past_deadline():
            if self.queue:
                claims.release([target.pk for target in self.queue])
                self.run.due -= len(self.queue)
                self.queue.clear()
            return
        if self.retry_at is not None and time.monotonic() >= self.retry_at:
            self.more, self.retry_at = True, None  # refused sprites are claimable again
        stale = time.monotonic() - self.config.lease.total_seconds() / 3
        while self.queue and self.claimed_at.get(self.queue[0].pk, 0.0) < stale:
            # Waited a third of its lease for a slot: hand it back before the lease could run out.
            claims.release([self.queue.popleft().pk])
            self.run.due -= 1
        admit = self.gate.admissible(len(self.pending))
        if admit <= 0:
            return
        if len(self.queue) < admit and self.more:
            self._claim(max(admit - len(self.queue), min(CLAIM_AHEAD, self.config.concurrency)))
        started = 0
        while self.queue and started < admit:
            target = self.queue.popleft()
            future = pool.submit(run_turn, target, command=self.config.command, timeout=self.config.timeout,
                                 exec_timeout=self.config.exec_timeout)
            self.pending[future] = target
            started += 1
        self.gate.started(started)

    def _claim(self, limit: int) -> None:
        self._hand_back()  # a refused sprite's backoff is written before anyone claims again
        ids = self.ids if self.ids is None else [pk for pk in self.ids if pk not in self.tried]
        targets = claims.claim(limit=limit, interval=self.config.interval, lease=self.config.lease,
                               force=self.force, sprite_ids=ids)
        self.tried.update(target.pk for target in targets)
        self.more = len(targets) >= limit
        self.run.due += len(targets)
        now = time.monotonic()
        for target in targets:
            self.claimed_at[target.pk] = now
        self.queue.extend(targets)

    def _collect(self, result: WakeResult) -> None:
        self.gate.finished(reached=result.reached, deferred=result.deferred, retry_after=result.retry_after)
        if result.deferred:
            self._defer(result)
            return
        settle_budget(result)
        self.buffer.append(result)
        if result.ok:
            self.run.woke += 1
            self.say(f"{result.name}: ok in {result.wall_seconds:.1f}s"
                     + (f", model ${result.llm_usd}" if result.llm_usd else ""))
        elif result.done:  # over its model budget: woken, could not think; not a failure
            self.run.over_budget += 1
            self.say(f"{result.name}: over its model budget after {result.wall_seconds:.1f}s")
        else:
            self.run.failed += 1
            self.errors.append(f"{result.name}: {result.outcome}: {result.error}")
            self.say(f"{result.name}: FAILED ({result.outcome}) after {result.wall_seconds:.1f}s: {result.error}")

    def _defer(self, result: WakeResult) -> None:
        """Refused for capacity: hand it back with a backoff; it stays due in its window."""
        attempt = self.refusals.get(result.sprite_id, 0)
        self.refusals[result.sprite_id] = attempt + 1
        wait_seconds = backoff_seconds(result.retry_after, attempt)
        self.deferrals[result.sprite_id] = timezone.now() + timedelta(seconds=wait_seconds)
        # Claimable again once the latest backoff ends (`_hand_back` leases them all until then).
        retry_at = time.monotonic() + wait_seconds
        self.retry_at = retry_at if self.retry_at is None else max(self.retry_at, retry_at)
        self.tried.discard(result.sprite_id)  # a forced run tries it again too
        self.run.due -= 1
        self.run.deferred += 1
        self.say(f"{result.name}: no running slot free, retry in {wait_seconds:.2f}s")

    def _hand_back(self) -> None:
        """Write the pending deferrals: one statement, each sprite leased to its latest backoff."""
        if self.deferrals:
            until = max(self.deferrals.values())
            claims.defer(list(self.deferrals), until)
            self.deferrals = {}

    def _write(self) -> None:
        """Write the buffer; on failure it stays buffered (every write is idempotent)."""
        totals = record.flush(self.buffer, run=self.run, cause=self.cause,
                              interval=None if self.force else self.config.interval)
        self.buffer = []
        self.run.billed_usd += totals.billed
        self.run.llm_usd += totals.llm
        self.last_flush = time.monotonic()
        persist_api_calls()  # the worker threads' exec calls, for /metrics

    def _abort(self, pool: ThreadPoolExecutor) -> None:
        """On the way out (normal or not): sprites never started are handed back at once;
        running ones keep their lease until it expires (their turn may still be going)."""
        unstarted = [target.pk for future, target in self.pending.items() if future.cancel()]
        unstarted += [target.pk for target in self.queue]
        self.queue.clear()
        pool.shutdown(wait=not self.pending, cancel_futures=True)
        claims.release(unstarted)
        try:
            self._hand_back()
        except Exception:  # noqa: BLE001 - their short lease runs out on its own
            logger.exception("Heartbeat could not hand back %d sprites refused for capacity", len(self.deferrals))
        if self.buffer:
            try:
                self._write()
            except Exception:  # noqa: BLE001 - already failing; the lease brings them back
                logger.exception("Heartbeat could not record %d finished wakes", len(self.buffer))
        self.run.running_limit = self.gate.limit
        lines = self.errors[:ERRORS_SHOWN]
        if len(self.errors) > ERRORS_SHOWN:
            lines.append(f"… and {len(self.errors) - ERRORS_SHOWN} more")
        self.run.error_summary = "\n".join(lines)
