"""The heartbeat sweep: orchestration only. Every entry point (the `heartbeat` command,
django-crontab, `GET /api/cron/heartbeat`, the console's "run now") calls `run_sweep`.

Who is due is the model's rule (`UserSprite.DUE_RULE`, `UserSprite.objects.due`); claiming
is `claims`; the wake loop is `runner`; a turn in one sprite is `sprites.services.run_turn`;
writing results is `record`; the money is `sprites.billing` (see docs/cost-model.md).
A sweep (a "tick": they run every minute or so, see docs/operations.md) wakes the sprites whose
own window has opened, as the provider's running cap admits them, within its time budget. The
first tick of each interval window also syncs every sprite's VM state first and runs the side
jobs after (storage accrual, budgets, pruning old wake records, reconciling with the provider,
the warm pool top-up); every whole tick heals broken gateways. No side job fails it.
"""

import logging
import socket
import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from heartbeat import claims
from heartbeat.config import load_config
from heartbeat.models import HeartbeatRun, HeartbeatWake
from heartbeat.plan import capacity_plan
from heartbeat.runner import Runner
from sprites import notify, services, worker
from sprites.models import UserSprite
from sprites.models.schedule import window_start
from sprites.services import budgets
from sprites.services.heartbeat import ERROR_CHARS, clean_text
from sprites.services.tasks import reconcile_model_spend

logger = logging.getLogger(__name__)

TRIGGERS = {choice.value for choice in HeartbeatRun.Trigger}


def run_sweep(
    *,
    trigger: str = "command",
    dry_run: bool = False,
    sprite_ids: list[int] | None = None,
    force: bool = False,
    concurrency: int | None = None,
    budget: float | None = None,
    stdout=None,
    verbosity: int = 1,
) -> HeartbeatRun:
    """One heartbeat sweep; returns its finished `HeartbeatRun`.

    `sprite_ids` limits the sweep to those sprites (and skips the VM-state sync and the side
    jobs); `force` wakes them even if they had a heartbeat this window (status and lease rules
    still apply). `budget` (seconds) is the tick's time budget: past it nothing new starts and
    the sweep returns once the wakes in flight finish; None waits until nothing is due.
    `stdout` gets one line per sprite at verbosity ≥ 2. Raises ImproperlyConfigured for bad
    settings, before touching anything.
    """
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}")
    config = load_config(concurrency=concurrency)
    ids = None if sprite_ids is None else sorted({int(pk) for pk in sprite_ids})

    def say(message: str) -> None:
        if stdout is not None and verbosity >= 2:
            stdout.write(message + "\n")

    deadline = None if budget is None else time.monotonic() + budget
    run = HeartbeatRun.objects.create(trigger=trigger, host=socket.gethostname()[:255], dry_run=dry_run)
    window = window_start(run.started_at, config.interval)
    candidates = UserSprite.objects.assigned().count() if ids is None else len(ids)
    try:
        if dry_run:
            run.due = _would_wake(config, force=force, ids=ids, say=say)
        else:
            _tick(run, Runner(run, config=config, window=window, force=force, ids=ids, say=say, deadline=deadline),
                  whole=ids is None)
        run.skipped = max(candidates - run.due, 0)
    except BaseException as exc:
        run.error_summary = (f"sweep aborted: {type(exc).__name__}\n" + run.error_summary)[:10000]
        _finish(run)
        raise
    _finish(run)
    logger.info("Heartbeat run %s (%s): %s", run.pk, trigger, run.summary())
    return run


def _tick(run: HeartbeatRun, runner: Runner, *, whole: bool) -> None:
    """The wakes, with what a whole tick (not one limited to given sprites) does around them:
    the first of each interval window syncs VM states before and runs the side jobs after;
    every one heals broken gateways (within a minute: restart, restore, alert, one rung each)."""
    housekeeping = whole and _first_in_window(run, runner.window)
    if housekeeping:
        _note(run, "vm states", lambda: f"{services.sync_vm_states()} synced")
    runner.run_all()
    if whole:
        _note(run, "heal", services.heal_fleet)
    if housekeeping:
        hour = window_start(run.started_at, timedelta(hours=1))
        _side_jobs(run, hourly=run.started_at - hour < runner.config.interval)


def _would_wake(config, *, force: bool, ids: list[int] | None, say) -> int:
    """A dry run: the sprites due now, each named; nothing is claimed or woken."""
    due = list(claims.due(now=timezone.now(), interval=config.interval, force=force, sprite_ids=ids)
               .values_list("sprite_name", flat=True))
    for name in due:
        say(f"{name}: would wake")
    return len(due)


def _first_in_window(run: HeartbeatRun, window) -> bool:
    """Whether this tick does the once-per-window jobs: none has in this window yet. Two ticks
    starting together may both do them; each job is idempotent, so that costs time, not money."""
    if HeartbeatRun.objects.filter(started_at__gte=window, housekeeping=True).exclude(pk=run.pk).exists():
        return False
    run.housekeeping = True
    run.save(update_fields=["housekeeping"])
    return True


def _finish(run: HeartbeatRun) -> None:
    run.finished_at = timezone.now()
    try:
        run.save()
        if run.error_summary.startswith("sweep aborted") or (run.failed and not run.woke):
            notify.sweep_failed(run_id=run.pk, summary=run.error_summary, started_at=run.started_at)
    except Exception:  # noqa: BLE001 - do not hide the original error behind this one
        logger.exception("Could not save heartbeat run %s", run.pk)
    services.persist_api_calls()  # what the VM-state sync and the side jobs asked, for /metrics


def _capacity_warning(run: HeartbeatRun) -> str:
    """Past 90 % of the fleet the running cap carries (heartbeat.plan): the operator is told
    (notifier, once an hour) as well as the console and `heartbeat --plan`."""
    plan = capacity_plan(cap=run.running_limit)
    if not plan.warning:
        return ""
    notify.capacity_warning(name="heartbeat running cap", detail=plan.warning)
    return plan.warning


def _queue_model_spend() -> str:
    reconcile_model_spend.enqueue()
    return "reconciliation queued"


def _note(run: HeartbeatRun, job: str, fn) -> None:
    """Run a side job that must never fail the sweep; its outcome goes into the run's notes."""
    try:
        result = fn()
        line = f"{job}: {result}" if result else ""
    except Exception as exc:  # noqa: BLE001
        logger.exception("Heartbeat side job failed: %s", job)
        line = f"{job} failed: {clean_text(str(exc) or type(exc).__name__, ERROR_CHARS)}"
    if line:
        run.notes = "\n".join(filter(None, [run.notes, line]))


def _side_jobs(run: HeartbeatRun, *, hourly: bool) -> None:
    def storage():
        billed = services.accrue_storage()
        run.billed_usd += billed
        return f"billed ${billed}" if billed else ""

    def prune():
        # Wake records are for debugging recent runs; the ledger keeps the money for good.
        cutoff = timezone.now() - timedelta(days=settings.HEARTBEAT_WAKE_RETENTION_DAYS)
        HeartbeatWake.objects.filter(started_at__lt=cutoff).delete()
        return ""

    _note(run, "storage", storage)
    _note(run, "budgets", lambda: str(budgets.enforce()))  # caps, the month's roll-over, storage's share
    _note(run, "pruning wake records", prune)
    # At most every RECONCILE_EVERY_MINUTES, the safe rules (docs/operations.md); before the
    # pool top-up, so an adopted orphan counts towards the pool.
    _note(run, "reconcile", lambda: getattr(services.reconcile_if_due(), "summary", lambda: "")())
    # Resumes stuck set-ups first, then tops the warm pool up to SPRITE_POOL_SIZE.
    # Queues set-up tasks and returns: the worker runs them (never this request or command).
    _note(run, "fill_pool", lambda: f"{services.fill_pool()} set-up(s) queued")
    _note(run, "capacity", lambda: _capacity_warning(run))
    if hourly:  # the admin's Task results list keeps what is recent (docs/operations.md)
        _note(run, "pruning task results", lambda: f"{n} deleted" if (n := worker.prune_finished()) else "")
    if hourly and settings.MODEL_ACCESS == "litellm":
        # The first window of each hour: the model proxy's spend per key, on a worker.
        _note(run, "model spend", _queue_model_spend)
