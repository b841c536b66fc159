"""One heartbeat turn in one sprite: run the agent's turn and say what happened. Never raises.

The sweep (heartbeat/) decides who and when; this is the only place it reaches the Sprites API
for a wake. The exec wakes the sprite (from cold or warm) and blocks until the agent's turn is
done, bounded by the command's own `timeout` and, a little later, the HTTP read.
"""

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from sprites import billing, modelaccess, openclaw
from sprites.client import OrgInfo, SpritesCapacityExceeded, SpritesError, get_client
from sprites.logcontext import sprite_context

from .verify import verify_after_turn

logger = logging.getLogger(__name__)

OUTPUT_TAIL_CHARS = 1000
ERROR_CHARS = 300
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class Outcome(models.TextChoices):
    OK = "ok", "Completed"
    FAILED = "failed", "Failed"
    TIMEOUT = "timeout", "Timed out"
    # The model proxy refused the turn for money: the wake happened, the agent could not think.
    # Not an error of the sprite's; its window is done (retrying cannot help until the budget
    # resets or is raised) and the status API says so (`modelaccess.status_of`).
    OVER_BUDGET = "over_budget", "Over its model budget"


def clean_text(text: str, limit: int) -> str:
    """Untrusted output made safe to store and print: no NULs (PostgreSQL refuses them), no
    terminal escapes; the last `limit` characters."""
    return _CONTROL.sub("", text)[-limit:]


@dataclass(frozen=True)
class Target:
    pk: int
    name: str
    public_id: str = ""  # for the log lines of its turn
    slot: datetime | None = None  # start of the sprite's own window this wake is for (None: forced)
    url: str = ""  # the sprite URL: the gateway is verified through it after the turn
    checkpoint_due: bool = False  # a verified turn leaves a known-good checkpoint
    token: str = field(default="", repr=False)  # the gateway token, for the connect check; never shown


@dataclass
class WakeResult:
    sprite_id: int
    name: str
    started_at: datetime
    wall_seconds: float
    outcome: str  # Outcome
    exit_code: int | None = None
    output_tail: str = ""
    error: str = ""
    llm_usd: Decimal | None = None
    # Did the command run in the sprite? Only then was it awake and is there compute to bill.
    reached: bool = False
    slot: datetime | None = None  # the Target's slot: the billing key's window, lateness
    # 429 concurrent_sprite_limit_exceeded: every running slot of the org was taken, nothing
    # ran. Backpressure, not a failure: not billed, not recorded, retried within its window.
    deferred: bool = False
    retry_after: float | None = None
    # Failed the way a LiteLLM budget refusal reads in OpenClaw: `settle_budget` asks the proxy.
    budget_suspect: bool = False
    # The end-to-end check through the sprite URL after the turn: None = not checked, "" = good.
    gateway_error: str | None = None
    known_good_checkpoint: str = ""  # taken after a verified turn (services/heal.py)

    @property
    def late_seconds(self) -> float | None:
        """How long after its slot opened the wake started (None for a forced wake)."""
        return None if self.slot is None else max((self.started_at - self.slot).total_seconds(), 0.0)

    @property
    def ok(self) -> bool:
        return self.outcome == Outcome.OK

    @property
    def done(self) -> bool:
        """This window's heartbeat happened (completed, or refused for the model budget)."""
        return self.outcome in (Outcome.OK, Outcome.OVER_BUDGET)

    def usages(self, *, cause: str, slot: datetime) -> list[billing.Usage]:
        """What this wake bills (see `billing.wake`), keyed by `slot`."""
        detail = {"outcome": self.outcome, "exit_code": self.exit_code,
                  "wall_seconds": str(billing.round_seconds(self.wall_seconds)), "idle_seconds": settings.SPRITE_IDLE_SECONDS}
        return billing.wake(
            sprite_id=self.sprite_id, cause=cause, tag=cause, started_at=self.started_at, slot=slot,
            wall_seconds=self.wall_seconds, reached=self.reached, llm_usd=self.llm_usd, detail=detail,
        )


def read_org() -> OrgInfo | None:
    """The org's running cap and live counts (the `org` block of a list page); None when the
    API does not say or cannot be reached now (the caller then keeps its own estimate)."""
    try:
        return get_client().org()
    except SpritesError as exc:
        logger.warning("Could not read the Sprites org's caps: %s", exc)
        return None


def run_turn(target: Target, *, command: str, timeout: int, exec_timeout: float) -> WakeResult:
    """Run the heartbeat command in one sprite. Never raises: every failure is a result."""
    with sprite_context(target.public_id):
        result = _run_turn(target, command=command, timeout=timeout, exec_timeout=exec_timeout)
        if result.reached:
            # The check (and a known-good checkpoint) keeps the sprite awake too: the idle tail
            # starts after it, so the wake's billed wall time runs to its end.
            t0 = time.monotonic() - result.wall_seconds
            verify_after_turn(target, result)
            result.wall_seconds = time.monotonic() - t0
        return result


def _run_turn(target: Target, *, command: str, timeout: int, exec_timeout: float) -> WakeResult:
    started_at, t0 = timezone.now(), time.monotonic()
    result = WakeResult(sprite_id=target.pk, name=target.name, started_at=started_at, wall_seconds=0.0,
                        outcome=Outcome.FAILED, slot=target.slot)
    try:
        ran = get_client().exec(target.name, ["bash", "-c", command], timeout=exec_timeout)
    except SpritesCapacityExceeded as exc:
        result.wall_seconds = time.monotonic() - t0
        result.deferred, result.retry_after = True, exc.retry_after
        result.error = clean_text(str(exc), ERROR_CHARS)
        return result
    except SpritesError as exc:
        result.wall_seconds = time.monotonic() - t0
        # A read timeout or a broken stream happened while the command ran: it was awake.
        result.reached = exc.code in ("timeout", "exec_stream")
        if exc.code == "timeout":
            result.outcome = Outcome.TIMEOUT
            result.error = f"no answer within {exec_timeout:g}s"
        else:
            result.error = clean_text(str(exc), ERROR_CHARS)
        return result
    except Exception as exc:  # noqa: BLE001 - one sprite must never stop the sweep
        result.wall_seconds = time.monotonic() - t0
        timed_out = "timeout" in type(exc).__name__.lower()
        result.reached = timed_out  # e.g. urllib3's ReadTimeoutError while streaming
        result.outcome = Outcome.TIMEOUT if timed_out else Outcome.FAILED
        result.error = f"{type(exc).__name__} during exec" + (f" (after {result.wall_seconds:.0f}s)" if timed_out else "")
        logger.warning("Heartbeat of %s raised %s", target.name, type(exc).__name__, exc_info=not timed_out)
        return result
    result.wall_seconds = time.monotonic() - t0
    result.reached = True
    result.exit_code = ran.exit_code
    result.output_tail = clean_text(ran.tail(OUTPUT_TAIL_CHARS * 2), OUTPUT_TAIL_CHARS)
    turn = openclaw.parse_turn(ran.exit_code, ran.text, ran.stderr.decode("utf-8", "replace"))
    result.llm_usd = turn.cost_usd  # a failed turn may still have spent tokens: keep it
    if turn.ok:
        result.outcome = Outcome.OK
        return result
    result.outcome = Outcome.TIMEOUT if turn.timed_out else Outcome.FAILED
    if turn.over_budget:
        result.outcome = Outcome.OVER_BUDGET
    result.budget_suspect = turn.maybe_over_budget and modelaccess.configured()
    reason = f"timed out after {timeout}s" if turn.timed_out else "failed"
    result.error = clean_text(f"exit {ran.exit_code} ({reason}): {turn.error}".rstrip(": "), ERROR_CHARS)
    return result


def settle_budget(result: WakeResult) -> None:
    """A failed turn that may be the model proxy refusing for budget: ask the proxy (on the
    sweep's thread: it reads and writes the credential row) and, if so, record the wake as
    `over_budget`. A proxy that cannot answer leaves it a failure, as OpenClaw reported it."""
    if not result.budget_suspect or result.outcome != Outcome.FAILED:
        return
    try:
        over = modelaccess.over_budget(result.sprite_id)
    except modelaccess.ModelAccessUnavailable as exc:
        logger.warning("Could not ask the model proxy about sprite %s's budget: %s", result.sprite_id, exc)
        return
    if over:
        result.outcome = Outcome.OVER_BUDGET
