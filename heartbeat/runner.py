"""The wake loop: claim a little ahead, run turns on worker threads, write results in batches.

Worker threads only run `sprites.services.run_turn` (HTTP); every query runs on the sweep's
own thread. A chunk is claimed only when the queue is about to run dry, so a claimed sprite
starts within about one turn and its lease outlives it. Results are written every
`FLUSH_EVERY` wakes or `FLUSH_SECONDS`, so a killed sweep loses little.

A sweep tries each sprite once. A scheduled sweep leaves a failed sprite leased until the
next window (without that, a sprite that keeps failing would be re-claimed by the same sweep
as soon as its batch is written, for ever); a forced sweep ("run now", given sprite ids,
which ignores this window's heartbeat) claims only the ids it has not tried yet.
"""

import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime

from heartbeat import claims, record
from heartbeat.config import Config
from heartbeat.models import HeartbeatRun
from sprites.models import UsageRecord
from sprites.services import Target, WakeResult, persist_api_calls, run_turn

logger = logging.getLogger(__name__)

FLUSH_EVERY = 100  # wakes per write batch
FLUSH_SECONDS = 5.0  # and at least this often
ERRORS_SHOWN = 50


class Runner:
    def __init__(self, run: HeartbeatRun, *, config: Config, window: datetime, force: bool, ids, say):
        self.run, self.config, self.window, self.force, self.ids, self.say = run, config, window, force, ids, say
        self.cause = UsageRecord.Cause.STAFF if run.trigger == HeartbeatRun.Trigger.STAFF else UsageRecord.Cause.HEARTBEAT
        self.pending: dict[Future, Target] = {}
        self.buffer: list[WakeResult] = []
        self.errors: list[str] = []
        self.exhausted = False
        self.tried: set[int] = set()
        self.last_flush = time.monotonic()

    def run_all(self) -> None:
        pool = ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="heartbeat")
        try:
            while self._top_up(pool) or self.pending:
                done, _ = wait(self.pending, timeout=FLUSH_SECONDS, return_when=FIRST_COMPLETED)
                for future in done:
                    self.pending.pop(future)
                    self._collect(future.result())  # run_turn never raises
                if len(self.buffer) >= FLUSH_EVERY or (self.buffer and time.monotonic() - self.last_flush >= FLUSH_SECONDS):
                    self._write()
            self._write()
        finally:
            self._abort(pool)

    def _top_up(self, pool: ThreadPoolExecutor) -> bool:
        """Keep between one and two turns' worth queued: every worker busy, and no claimed
        sprite waits long enough for its lease to matter. False once nothing is left to claim."""
        if self.exhausted or len(self.pending) > self.config.concurrency:
            return not self.exhausted
        ids = self.ids if self.ids is None else [pk for pk in self.ids if pk not in self.tried]
        targets = claims.claim(limit=2 * self.config.concurrency - len(self.pending), window=self.window,
                               lease=self.config.lease, force=self.force, sprite_ids=ids)
        self.tried.update(target.pk for target in targets)
        self.exhausted = not targets
        self.run.due += len(targets)
        for target in targets:
            future = pool.submit(run_turn, target, command=self.config.command, timeout=self.config.timeout,
                                 exec_timeout=self.config.exec_timeout)
            self.pending[future] = target
        return bool(targets)

    def _collect(self, result: WakeResult) -> None:
        self.buffer.append(result)
        if result.ok:
            self.run.woke += 1
            self.say(f"{result.name}: ok in {result.wall_seconds:.1f}s"
                     + (f", model ${result.llm_usd}" if result.llm_usd else ""))
        else:
            self.run.failed += 1
            self.errors.append(f"{result.name}: {result.outcome}: {result.error}")
            self.say(f"{result.name}: FAILED ({result.outcome}) after {result.wall_seconds:.1f}s: {result.error}")

    def _write(self) -> None:
        """Write the buffer; on failure it stays buffered (every write is idempotent)."""
        next_window = None if self.force else self.window + self.config.interval
        totals = record.flush(self.buffer, run=self.run, slot=None if self.force else self.window, cause=self.cause,
                              retry_after=next_window)
        self.buffer = []
        self.run.billed_usd += totals.billed
        self.run.llm_usd += totals.llm
        self.last_flush = time.monotonic()
        persist_api_calls()  # the worker threads' exec calls, for /metrics

    def _abort(self, pool: ThreadPoolExecutor) -> None:
        """On the way out (normal or not): sprites never started are handed back at once;
        running ones keep their lease until it expires (their turn may still be going)."""
        unstarted = [target.pk for future, target in self.pending.items() if future.cancel()]
        pool.shutdown(wait=not self.pending, cancel_futures=True)
        claims.release(unstarted)
        if self.buffer:
            try:
                self._write()
            except Exception:  # noqa: BLE001 - already failing; the lease brings them back
                logger.exception("Heartbeat could not record %d finished wakes", len(self.buffer))
        lines = self.errors[:ERRORS_SHOWN]
        if len(self.errors) > ERRORS_SHOWN:
            lines.append(f"… and {len(self.errors) - ERRORS_SHOWN} more")
        self.run.error_summary = "\n".join(lines)
