"""Reconciliation: the provider's inventory diffed against `user_sprites`, and a rule for
each difference (issue 14; docs/operations.md "A fleet that heals").

The provider is listed in full (every page, only names with SPRITE_NAME_PREFIX: the names
`new_sprite_name` makes), then:

- **orphan** (a sprite with no row at all): *adopted* into the pool as `ready` when it is
  provably a finished pool sprite of ours (the prefix, our `clawdirector` label, and the
  golden checkpoint the set-up leaves last, with its comment); else *destroyed* once older
  than RECONCILE_ORPHAN_GRACE_SECONDS, its storage until then billed to a row made for it;
- **zombie** (a sprite whose row is `destroyed`): destroyed, its storage since billed;
- **ghost** (a live row whose sprite the provider no longer has, confirmed by a GET):
  `error` with the reason (`mark_ghost`); the user's next provision request sets up anew;
- **stuck** (a set-up with no progress past SPRITE_PROVISION_STUCK_SECONDS): resumed, or
  failed after RECONCILE_MAX_RESUMES (`provisioning.resume_stuck`).

Each action is a lifecycle event with the money it saves or cost; each run is a
`ReconcileRun` with its differences (the console shows the last). A dry run lists only.
"""

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Avg
from django.utils import timezone

from sprites import billing
from sprites.client import Sprite, SpriteNotFound, SpritesError, get_client
from sprites.models import HOURS_PER_MONTH, LifecycleEvent, ReconcileRun, UsageRecord, UserSprite

from .events import log_event
from .provisioning import GOLDEN_COMMENT, resume_stuck, stuck_provisioning
from .storage import hour_start

logger = logging.getLogger(__name__)

OUR_LABEL = "clawdirector"  # what `_create` labels every sprite with
DIFFERENCES_KEPT = 500  # on the run record; the events keep every action
ZERO = Decimal("0")


@dataclass
class Difference:
    kind: str  # orphan | zombie | ghost | stuck
    sprite: str
    action: str  # what was (or, in a dry run, would be) done
    detail: str = ""
    saved_usd: str = "0"
    cost_usd: str = "0"


@dataclass
class Plan:
    """One reconciliation's inputs and what it found."""

    apply: bool
    destroy: bool
    now: datetime
    differences: list


def reconcile(*, apply: bool = False, trigger: str = ReconcileRun.Trigger.COMMAND, actor=None,
              destroy_orphans: bool = True) -> ReconcileRun:
    """Diff the provider against the database and, with `apply`, act on each difference
    (`destroy_orphans` False leaves orphans and zombies listed but alive: the scheduled run's
    safe mode unless RECONCILE_DESTROY_ON_SCHEDULE). Never raises for a Sprites failure: the
    run records it. Returns the finished run."""
    run = ReconcileRun.objects.create(trigger=trigger, actor=actor, applied=apply)
    plan = Plan(apply=apply, destroy=destroy_orphans, now=run.started_at, differences=[])
    try:
        listed = {s.name: s for s in get_client().list_sprites(prefix=settings.SPRITE_NAME_PREFIX)}
        run.provider_count = len(listed)
        rows = _rows_for(listed)
        run.row_count = sum(1 for r in rows.values() if r.status != UserSprite.Status.DESTROYED and r.sprite_id)
        _provider_side(plan, listed, rows)
        _database_side(plan, listed)
        _stuck(plan)
    except SpritesError as exc:
        run.error = f"Sprites API: {exc}"[:2000]
        logger.warning("Reconciliation %s stopped: %s", run.pk, exc)
    _finish(run, plan)
    return run


def _finish(run: ReconcileRun, plan: Plan) -> None:
    run.differences = [asdict(d) for d in plan.differences[:DIFFERENCES_KEPT]]
    run.saved_usd = sum((Decimal(d.saved_usd) for d in plan.differences), ZERO)
    run.cost_usd = sum((Decimal(d.cost_usd) for d in plan.differences), ZERO)
    run.finished_at = timezone.now()
    run.save()
    logger.info("Reconciliation %s (%s): %s", run.pk, run.trigger, run.summary())


def _rows_for(listed: dict[str, Sprite]) -> dict[str, UserSprite]:
    """Every row (destroyed ones too) named like a listed sprite, in chunks."""
    names, rows = list(listed), {}
    for i in range(0, len(names), 1000):
        for row in UserSprite.objects.filter(sprite_name__in=names[i:i + 1000]).only(
                "pk", "sprite_name", "status", "sprite_id", "destroyed_at", "user_id"):
            rows[row.sprite_name] = row
    return rows


# --- the provider has it ---------------------------------------------------------------------


def _provider_side(plan: Plan, listed: dict[str, Sprite], rows: dict[str, UserSprite]) -> None:
    for name, info in sorted(listed.items()):
        row = rows.get(name)
        if row is None:
            _orphan(plan, info)
        elif row.status == UserSprite.Status.DESTROYED:
            _zombie(plan, info, row)


def _orphan(plan: Plan, info: Sprite) -> None:
    golden = _golden_checkpoint(info)
    if golden:
        saved = _setup_cost()
        diff = Difference("orphan", info.name, "adopt", f"a finished pool sprite of ours (golden checkpoint "
                          f"{golden}): adopted into the warm pool", saved_usd=str(saved))
        plan.differences.append(diff)
        if plan.apply:
            _adopt(info, golden, diff)
        return
    age = plan.now - info.created_at if info.created_at else None
    if age is not None and age < timedelta(seconds=settings.RECONCILE_ORPHAN_GRACE_SECONDS):
        plan.differences.append(Difference("orphan", info.name, "wait", f"not ours provably; {_age(age)} old, "
                                           f"destroyed after {_age(_grace())}"))
        return
    hours = _storage_hours(info.created_at, plan.now)
    diff = Difference("orphan", info.name, "destroy" if plan.destroy else "report",
                      f"not provably ours, {_age(age) if age else 'age unknown'} old; stored {len(hours)} h",
                      saved_usd=str(_monthly_storage()), cost_usd=str(billing.storage_cost(len(hours))))
    plan.differences.append(diff)
    if plan.apply and plan.destroy:
        _destroy_orphan(info, hours, diff)


def _golden_checkpoint(info: Sprite) -> str:
    """The id of the golden checkpoint the set-up takes last, if this sprite carries our label
    and one: the proof a sprite with no row is a finished pool sprite of ours."""
    if OUR_LABEL not in info.labels:
        return ""
    for checkpoint in get_client().list_checkpoints(info.name):
        if checkpoint.comment == GOLDEN_COMMENT:
            return checkpoint.id
    return ""


def _adopt(info: Sprite, golden: str, diff: Difference) -> None:
    row = UserSprite.objects.adopt_orphan(name=info.name, sprite_id=info.id, url=info.url,
                                          created_at=info.created_at, golden_checkpoint_id=golden)
    log_event(sprite=row, action="reconcile_adopt", detail=diff.detail, saved_usd=Decimal(diff.saved_usd))


def _destroy_orphan(info: Sprite, hours: list[datetime], diff: Difference) -> None:
    """Delete it first (on a failure nothing is recorded and the next run finds it again),
    then a row to carry its ledger rows and its event."""
    try:
        get_client().delete_sprite(info.name)
    except SpritesError as exc:
        diff.action, diff.detail = "destroy failed", f"{diff.detail}; {exc}"
        return
    with transaction.atomic():
        row = UserSprite.objects.adopt_orphan(name=info.name, sprite_id=info.id, url=info.url,
                                              created_at=info.created_at)
        cost = _bill_storage(row, hours)
        row.mark_failed("reconcile", "orphan: a sprite at the provider with no row; destroyed")
        row.mark_destroyed()
        log_event(sprite=row, action="reconcile_destroy", detail=diff.detail, saved_usd=Decimal(diff.saved_usd),
                  cost_usd=cost)


def _zombie(plan: Plan, info: Sprite, row: UserSprite) -> None:
    hours = _storage_hours(row.destroyed_at, plan.now)
    when = f" {row.destroyed_at:%Y-%m-%d %H:%M}" if row.destroyed_at else ""
    diff = Difference("zombie", info.name, "destroy" if plan.destroy else "report",
                      f"its row was destroyed{when} but the provider still has it",
                      saved_usd=str(_monthly_storage()), cost_usd=str(billing.storage_cost(len(hours))))
    plan.differences.append(diff)
    if not (plan.apply and plan.destroy):
        return
    try:
        get_client().delete_sprite(info.name)
    except SpritesError as exc:
        diff.action, diff.detail = "destroy failed", f"{diff.detail}; {exc}"
        return
    cost = _bill_storage(row, hours)
    log_event(sprite=row, action="reconcile_destroy", detail=diff.detail, saved_usd=Decimal(diff.saved_usd),
              cost_usd=cost)


# --- the database has it ---------------------------------------------------------------------


def _database_side(plan: Plan, listed: dict[str, Sprite]) -> None:
    """Live rows with a sprite the listing lacks, each confirmed by a GET (a sprite made while
    the listing ran, or a listing cut short, is never taken for a ghost)."""
    rows = (UserSprite.objects.live().exclude(sprite_id="").filter(sprite_name__startswith=settings.SPRITE_NAME_PREFIX)
            .exclude(status=UserSprite.Status.PROVISIONING).only("pk", "sprite_name", "status", "user_id"))
    client = get_client()
    for row in rows.iterator(chunk_size=2000):
        if row.sprite_name in listed:
            continue
        try:
            client.get_sprite(row.sprite_name)
            continue
        except SpriteNotFound:
            pass
        owner = "a user's sprite" if row.user_id else "a pool sprite"
        reason = (f"ghost: {owner} that was {row.status} but the provider has no sprite {row.sprite_name} "
                  "any more; provision again to get a new one")
        plan.differences.append(Difference("ghost", row.sprite_name, "flag error" if plan.apply else "report", reason))
        if plan.apply:
            row = UserSprite.objects.get(pk=row.pk)
            row.mark_ghost(reason)
            log_event(sprite=row, action="reconcile_ghost", outcome=LifecycleEvent.Outcome.FAILED, detail=reason)


def _stuck(plan: Plan) -> None:
    if not plan.apply:
        for row in stuck_provisioning().only("sprite_name", "updated_at"):
            plan.differences.append(Difference("stuck", row.sprite_name, "report",
                                               f"provisioning, no progress since {row.updated_at:%H:%M:%S}"))
        return
    for row, outcome in resume_stuck():
        plan.differences.append(Difference("stuck", row.sprite_name, "resume" if outcome == "resumed" else "fail",
                                           "set-up resumed" if outcome == "resumed" else "set-up failed for good"))


# --- money ------------------------------------------------------------------------------------


def _storage_hours(since: datetime | None, now: datetime) -> list[datetime]:
    """The hours it was stored: from the hour it began to the current one, both whole."""
    hour = hour_start(since or now)
    hours = []
    while hour <= now:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours


def _bill_storage(row: UserSprite, hours: list[datetime]) -> Decimal:
    written = billing.record_usage([billing.storage_hour(sprite_id=row.pk, hour=h) for h in hours])
    if hours:
        UserSprite.objects.filter(pk=row.pk).update(storage_billed_until=hours[-1] + timedelta(hours=1))
    return sum((u.cost_usd for u in written), ZERO)


def _monthly_storage() -> Decimal:
    return billing.round_cost(billing.storage_cost_per_hour() * HOURS_PER_MONTH)


def _setup_cost() -> Decimal:
    """What a pool set-up has cost on average (the ledger's `pool_setup` rows): an adopted
    pool sprite is one set-up not redone."""
    found = UsageRecord.objects.filter(cause=UsageRecord.Cause.POOL_SETUP).aggregate(avg=Avg("cost_usd"))["avg"]
    return billing.round_cost(found or ZERO)


def _grace() -> timedelta:
    return timedelta(seconds=settings.RECONCILE_ORPHAN_GRACE_SECONDS)


def _age(age: timedelta) -> str:
    minutes = int(age.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def reconcile_if_due(*, now: datetime | None = None) -> ReconcileRun | None:
    """The sweep's scheduled run: at most every RECONCILE_EVERY_MINUTES (0 = never), the safe
    rules applied, orphans destroyed only with RECONCILE_DESTROY_ON_SCHEDULE."""
    every = settings.RECONCILE_EVERY_MINUTES
    if every <= 0:
        return None
    since = (now or timezone.now()) - timedelta(minutes=every)
    if ReconcileRun.objects.filter(applied=True, started_at__gt=since).exists():
        return None
    return reconcile(apply=True, trigger=ReconcileRun.Trigger.SCHEDULE,
                     destroy_orphans=settings.RECONCILE_DESTROY_ON_SCHEDULE)
