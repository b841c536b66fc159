"""Budgets that act: a monthly budget per user, a monthly cap for the fleet.

The figures are `sprites.billing.budget` (spent this month = the user's ledger rows this
calendar month, UTC). This module decides and acts, at three moments: after each batch the
heartbeat records (`after_batch`: the sprites just billed), once per sweep (`enforce`: every
budgeted sprite, the fleet cap, and the month's roll-over), and when staff change a budget
(`set_budget`). For each user:

- at BUDGET_WARN_PERCENT (80 %) of the budget: the user and staff are warned, once per month
  and budget (a `budget_warning` event and a notification);
- at 100 % (or the fleet cap spent): the sprite goes `over_budget` (the heartbeat no longer
  wakes it: `UserSprite.DUE_RULE`), its gateway is stopped by a task
  (`lifecycle.suspend_for_budget`), a start is refused (`over_budget`), and user and staff are
  told once;
- when the budget has room again (a new month, a higher budget, a higher cap): a task starts
  the gateway again and the sprite is `online` (`lifecycle.restore_after_budget`).
"""

import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db.models import Q

from sprites import modelaccess, notify
from sprites.billing.budget import (
    Budget,
    State,
    budget_of,
    fleet_budget,
    month_label,
    monthly_budget_for,
    spent_by_user,
)
from sprites.models import ZERO, LifecycleEvent, Notification, UserSprite

from .errors import SpriteActionError
from .events import log_event
from .tasks import run_sprite_action

__all__ = ["after_batch", "budget_of", "enforce", "monthly_budget_for", "set_budget", "status_of"]

logger = logging.getLogger(__name__)
CHUNK = 1000
MAX_BUDGET = Decimal("1000000")
Status = UserSprite.Status


@dataclass
class Acted:
    suspended: int = 0
    restored: int = 0
    warned: int = 0

    def __str__(self) -> str:
        parts = [f"{n} {what}" for what, n in vars(self).items() if n]
        return ", ".join(parts)


def status_of(sprite: UserSprite) -> dict:
    """The budget part of the API's status answer: budget, spent this month, percent, state."""
    return budget_of(sprite).as_dict()


def set_budget(*, sprite: UserSprite, amount, actor) -> Budget:
    """Staff set a user's monthly budget (None: back to SPRITE_MONTHLY_BUDGET_USD); logged, then
    acted on at once (a raise restores a suspended sprite, a cut may suspend it)."""
    if actor is None or not actor.is_staff:
        raise SpriteActionError("Only staff can set a budget.", code="permission_denied")
    if sprite.user_id is None or sprite.status == Status.DESTROYED:
        raise SpriteActionError("Only a user's live sprite has a budget.")
    amount = _amount(amount)
    before = sprite.monthly_budget_usd
    sprite.monthly_budget_usd = amount
    sprite.save(update_fields=["monthly_budget_usd", "updated_at"])
    log_event(sprite=sprite, action="set_budget", actor=actor, actor_kind=LifecycleEvent.ActorKind.STAFF,
              detail=f"monthly budget {_usd(before)} -> {_usd(amount)}")
    _act(UserSprite.objects.filter(pk=sprite.pk), actor=actor)
    _follow_model_key(sprite)
    sprite.refresh_from_db(fields=["status"])
    return budget_of(sprite)


def _follow_model_key(sprite: UserSprite) -> None:
    """One budget: the user's LiteLLM key gets the new amount too (`/key/update`). A proxy that
    cannot answer now leaves the old key budget, said in a warning and an event; the budget
    itself is set and enforced here either way."""
    try:
        modelaccess.update_budget(sprite)
    except modelaccess.ModelAccessUnavailable as exc:
        logger.warning("Model key budget of sprite %s not updated: %s", sprite.pk, exc)
        log_event(sprite=sprite, action="set_budget", outcome=LifecycleEvent.Outcome.FAILED,
                  detail=f"the model proxy's key keeps its old budget: {exc}")


def _amount(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0 or amount > MAX_BUDGET or amount != amount.quantize(Decimal("0.01")):
        raise SpriteActionError(f"A budget is an amount in USD from 0 to {MAX_BUDGET:,} with at most 2 decimals.",
                                code="invalid_budget")
    return amount


def after_batch(sprite_ids) -> Acted:
    """The heartbeat's hook after it wrote a batch: check the users it just billed. Never fails
    the sweep (the sweep's `enforce` looks again)."""
    try:
        return _act(UserSprite.objects.filter(pk__in=list(sprite_ids)))
    except Exception:  # noqa: BLE001
        logger.exception("The budget check after a heartbeat batch failed")
        return Acted()


def enforce() -> Acted:
    """The sweep's budget job: the fleet cap, every budgeted sprite, and the over_budget ones
    (so a new month or a raised cap restores them even when nothing else is due)."""
    fleet = fleet_budget()
    _fleet_notices(fleet)
    rows = UserSprite.objects.all()
    if fleet.budget_usd is None and settings.SPRITE_MONTHLY_BUDGET_USD is None:
        rows = rows.filter(Q(monthly_budget_usd__isnull=False) | Q(status=Status.OVER_BUDGET))
    return _act(rows, fleet=fleet)


def _act(rows, *, fleet: Budget | None = None, actor=None) -> Acted:
    fleet = fleet or fleet_budget()
    acted = Acted()
    ids = list(rows.filter(user__isnull=False).exclude(status=Status.DESTROYED).order_by("pk")
               .values_list("pk", flat=True))
    for i in range(0, len(ids), CHUNK):
        chunk = list(UserSprite.objects.filter(pk__in=ids[i:i + CHUNK]).select_related("user").defer("gateway_token"))
        spent = spent_by_user({s.user_id for s in chunk})
        states = {s.pk: Budget(monthly_budget_for(s), spent.get(s.user_id, ZERO)) for s in chunk}
        # The notices already sent, in one query: a user over budget for weeks costs no failed INSERT per sweep.
        keys = [_notice_key(s, states[s.pk]) for s in chunk if states[s.pk].state != State.OK]
        sent = set(Notification.objects.filter(key__in=keys).values_list("key", flat=True))
        for sprite in chunk:
            _act_on(sprite, states[sprite.pk], fleet, actor, acted, sent=sent)
    return acted


def _notice_key(sprite: UserSprite, mine: Budget) -> str:
    kind = "warn" if mine.state == State.WARNED else "over"
    return f"budget-{kind}:{sprite.user_id}:{month_label()}:{mine.budget_usd}"


def _act_on(sprite: UserSprite, mine: Budget, fleet: Budget, actor, acted: Acted, *, sent: set[str]) -> None:
    spent = mine.state == State.OVER or fleet.state == State.OVER
    if mine.state != State.OK and _notice_key(sprite, mine) not in sent and _notice(sprite, mine):
        acted.warned += mine.state == State.WARNED
    if spent and sprite.status in UserSprite.SUSPENDABLE and UserSprite.objects.suspend_over_budget(sprite.pk):
        figures = mine if mine.state == State.OVER else fleet
        why = "the user's monthly budget" if mine.state == State.OVER else "the fleet's monthly cap"
        log_event(sprite=sprite, action="over_budget", actor_kind=LifecycleEvent.ActorKind.SYSTEM,
                  detail=f"{why} is spent ({_usd(figures.spent_usd)} of {_usd(figures.budget_usd)} this month)")
        run_sprite_action.enqueue(action="budget_stop", sprite_pk=sprite.pk)
        acted.suspended += 1
    elif spent and sprite.status == Status.OVER_BUDGET and sprite.last_error.startswith("budget_stop: "):
        run_sprite_action.enqueue(action="budget_stop", sprite_pk=sprite.pk)  # its stop failed: again
    elif not spent and sprite.status == Status.OVER_BUDGET:
        run_sprite_action.enqueue(action="budget_restore", sprite_pk=sprite.pk,
                                  actor_pk=actor.pk if actor is not None else None)
        acted.restored += 1


def _notice(sprite: UserSprite, mine: Budget) -> bool:
    """Tell the user and staff, once per user, month and budget; True if this was the first time."""
    month, user, warning = month_label(), sprite.user, mine.state == State.WARNED
    kind = notify.Kind.BUDGET_WARNING if warning else notify.Kind.BUDGET_OVER
    what = f"{mine.percent}% of the monthly budget" if warning else "the monthly budget is spent"
    body = (f"{user.get_username()}: {_usd(mine.spent_usd)} of {_usd(mine.budget_usd)} spent in {month} "
            f"({mine.percent}%).\n" + ("" if warning else
                                       "The sprite is paused until next month or until staff raise the budget."))
    note = notify.notify(
        kind=kind, key=_notice_key(sprite, mine),
        subject=f"{user.get_username()}: {what}", body=body, sprite=sprite, user_email=user.email,
        data={"user": user.get_username(), "sprite": sprite.sprite_name, "month": month, **mine.as_dict()},
    )
    if note is None:
        return False
    log_event(sprite=sprite, action=kind, actor_kind=LifecycleEvent.ActorKind.SYSTEM, detail=body.splitlines()[0])
    return True


def _fleet_notices(fleet: Budget) -> None:
    if fleet.state == State.OK:
        return
    month, warning = month_label(), fleet.state == State.WARNED
    notify.notify(
        kind=notify.Kind.FLEET_WARNING if warning else notify.Kind.FLEET_OVER,
        key=f"fleet-{'warn' if warning else 'over'}:{month}:{fleet.budget_usd}",
        subject=f"Fleet: {fleet.percent}% of the monthly cap" if warning else "Fleet: the monthly cap is spent",
        body=f"The fleet spent {_usd(fleet.spent_usd)} of its {_usd(fleet.budget_usd)} cap in {month}."
             + ("" if warning else " Every user's sprite is paused until next month or a higher FLEET_MONTHLY_CAP_USD."),
        data={"month": month, **fleet.as_dict()},
    )


def _usd(value) -> str:
    return "default" if value is None else f"${Decimal(value):,.2f}"
