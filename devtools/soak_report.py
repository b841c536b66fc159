"""What the soak (bench_soak) measured: per window and at the end, each figure beside its target."""

from collections import Counter
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Sum

from heartbeat.models import HeartbeatWake
from sprites.models import LifecycleEvent, UsageRecord, UserSprite
from sprites.models.schedule import heartbeat_slot

WAKE_FAULTS = ("gateway_crash_on_wake", "gateway_corrupt_on_wake")


def reason(error: str) -> str:
    """A failed wake's error, as a short category."""
    text = error.lower()
    for needle, label in (("429", "429 rate limited"), ("rate", "429 rate limited"), ("unreachable", "dropped"),
                          ("connection", "dropped"), ("50", "5xx"), ("unavailable", "5xx"), ("timed out", "timeout")):
        if needle in text:
            return label
    return error[:60] or "failed"


class Report:
    def __init__(self, *, prefix: str, say, emulator):
        self.prefix, self.say, self.emulator = prefix, say, emulator
        self.armed: set[str] = set()  # crash faults armed, not yet fired (no wake yet)
        self.broken: set[str] = set()  # fired: a wake crashed the gateway
        self.unexplained = self.twice = self.late = self.incidents = self.disarmed = 0
        self.failed_before: set[int] = set()  # failed in the previous window

    def window(self, w: int, run, *, armed: set, dead: set, faulty: bool, ids: dict) -> None:
        wakes = list(HeartbeatWake.objects.filter(run=run).values_list("sprite_id", "outcome", "error"))
        ok = Counter(pk for pk, outcome, _ in wakes if outcome == "ok")
        failed = {pk: error for pk, outcome, error in wakes if outcome != "ok"}
        late = set(ids) - set(ok)
        # A wake that failed is retried when the sprite's own next window opens (slot + interval).
        # The soak runs one tick per window, at its start; a sprite whose own window opened during
        # the last tick's few seconds is retried seconds after this tick starts: in production
        # by the next minute's tick, here by the next window's.
        not_open = self._window_not_open(late - set(failed), run)
        reasons = Counter("leased by the killed sweeper" if pk in dead and pk not in failed
                          else reason(failed[pk]) if pk in failed
                          else "failed last window, retried in its own next window" if pk in self.failed_before
                          else "its own window opened during or after this tick" if pk in not_open
                          else "no reason" for pk in late)
        self.failed_before = set(failed)
        unexplained = reasons.pop("no reason", 0)
        self.unexplained += unexplained
        if unexplained:  # say who, so it can be looked at
            known = set(failed) | self.failed_before | not_open | (dead - set(failed))
            for row in UserSprite.objects.filter(pk__in=list(late - known)[:3]).values(
                    "sprite_name", "status", "last_heartbeat", "heartbeat_lease_until", "last_error"):
                self.say(f"  late with no reason: {row}")
        self.twice += sum(1 for n in ok.values() if n > 1)
        self.late += len(late)
        self.armed |= armed
        fired = {name for name in self.armed if not set(WAKE_FAULTS) & set(self.emulator.get_behavior(name))}
        self.armed -= fired
        self.broken |= fired
        self.incidents += len(fired)
        why = ", ".join(f"{n} {r}" for r, n in reasons.most_common()) or "none"
        notes = "; ".join(line for line in run.notes.splitlines() if line.startswith(("heal", "reconcile")))
        self.say(f"window {w + 1}{'' if faulty else ' (faults off)'}: woke {len(ok)}/{len(ids)} in {run.duration_seconds or 0:.1f} s;"
                 f" late {len(late)} ({why}); gateways broken by wakes {len(fired)}"
                 + (f"; {notes}" if notes else ""))

    @staticmethod
    def _window_not_open(pks: set[int], run) -> set[int]:
        """Of these, the sprites whose last heartbeat was still inside their own window when the
        tick started: woken in the last seconds of the previous tick, their next window opened
        during this one after its claims had passed them, or after it (production's minute
        ticks wake them then)."""
        interval = timedelta(minutes=settings.HEARTBEAT_INTERVAL_MINUTES)
        at = run.started_at
        rows = UserSprite.objects.filter(pk__in=pks, last_heartbeat__isnull=False).values_list("pk", "last_heartbeat")
        return {pk for pk, last in rows if last >= heartbeat_slot(pk, at, interval)}

    def disarm(self) -> None:
        """Wake faults armed but never fired (no wake since) are taken back."""
        for name in self.armed:
            self.emulator.set_behavior(name, **{key: None for key in WAKE_FAULTS})
        self.disarmed = len(self.armed)
        self.armed = set()

    def finish(self, *, names: list[str], orphans: int, wall: float) -> None:
        sprites = UserSprite.objects.filter(sprite_name__in=names)
        self._ledger(sprites, names)
        self._broken(sprites)
        left = sum(self.emulator.exists(f"{self.prefix}orphan-{i:03d}") for i in range(orphans))
        self._line("orphans left", f"{left} of {orphans}", "0", left == 0)
        self._line("late with no reason", str(self.unexplained), "0", self.unexplained == 0)
        self._line("woken twice in a window", str(self.twice), "0", self.twice == 0)
        self.say(f"late with a reason (retried next window): {self.late}; wall time {wall:.1f} s")

    def _ledger(self, sprites, names: list[str]) -> None:
        rows = UsageRecord.objects.filter(sprite__in=sprites)
        active = rows.filter(kind="active").aggregate(s=Sum("seconds"))["s"] or Decimal("0")
        meter = self.emulator.meter()["sprites"]
        truth = Decimal(str(sum(meter.get(n, {}).get("running_seconds_final", 0) for n in names)))
        diff = (active - truth) / truth * 100 if truth else Decimal("0")
        duplicated = rows.values("idempotency_key").annotate(n=Count("pk")).filter(n__gt=1).count()
        # Each recorded wake has its heartbeat row (keyed by the sprite's own window; the row
        # carries the wake's start).
        billed = set(rows.filter(kind="active", cause="heartbeat").values_list("sprite_id", "started_at"))
        wakes = HeartbeatWake.objects.filter(sprite__in=sprites, outcome="ok").values_list("sprite_id", "started_at")
        lost = sum((pk, at) not in billed for pk, at in wakes)
        self.say(f"ledger active {active:.1f} s, emulator meter {truth:.1f} s")
        self._line("ledger vs meter", f"{diff:+.2f} %", "within 1 %", abs(diff) <= 1)
        self._line("ledger rows duplicated", str(duplicated), "0", duplicated == 0)
        self._line("recorded wakes with no ledger row", str(lost), "0", lost == 0)

    def _broken(self, sprites) -> None:
        rows = {r.sprite_name: r for r in sprites.filter(sprite_name__in=self.broken)}
        healed = [n for n, r in rows.items() if r.gateway_failures == 0 and r.gateway_ok_at is not None]
        alerted = [n for n, r in rows.items() if r.heal_alerted_at is not None]
        pending = len(rows) - len(healed) - len(alerted)
        events = Counter(LifecycleEvent.objects.filter(sprite__in=sprites, action__startswith="heal_")
                         .values_list("action", "outcome"))
        self.say("heal events: " + ", ".join(f"{a} {o} {n}" for (a, o), n in sorted(events.items())))
        self.say(f"broken gateways: {self.incidents} wakes broke one, on {len(rows)} sprites "
                 f"({self.disarmed} armed faults never fired: no wake before the faults went off)")
        self._line("broken gateways healed or alerted", f"{len(healed)} healed + {len(alerted)} alerted of {len(rows)}",
                   "all", pending == 0)

    def _line(self, label: str, figure: str, target: str, ok: bool) -> None:
        self.say(f"{label:38} {figure:34} target {target:12} {'ok' if ok else 'MISSED'}")
