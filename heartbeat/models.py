"""Heartbeat history: one `HeartbeatRun` per sweep, one `HeartbeatWake` per sprite it woke.

Both are records for staff to read (the admin shows them read-only); the money itself lives
in the usage ledger (`sprites.UsageRecord`), never here.
"""

from decimal import Decimal

from django.db import models
from django.utils import timezone

from sprites.services.heartbeat import Outcome

ZERO = Decimal("0")


class HeartbeatRun(models.Model):
    class Trigger(models.TextChoices):
        COMMAND = "command", "Command"
        ENDPOINT = "endpoint", "Cron endpoint"
        CRON = "cron", "django-crontab"
        STAFF = "staff", "Staff action"

    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.COMMAND)
    host = models.CharField(max_length=255, blank=True)
    dry_run = models.BooleanField(default=False)

    due = models.PositiveIntegerField(default=0, help_text="Sprites this sweep claimed (or, dry, would).")
    woke = models.PositiveIntegerField(default=0, help_text="Heartbeat turns that completed (exit 0).")
    skipped = models.PositiveIntegerField(
        default=0, help_text="Assigned live sprites not woken: not due, stopped, provisioning, or claimed elsewhere."
    )
    failed = models.PositiveIntegerField(default=0)
    deferred = models.PositiveIntegerField(
        default=0, help_text="Wakes the provider refused because every running slot was taken "
                             "(429 concurrent_sprite_limit_exceeded): not billed, retried in the window.",
    )
    over_budget = models.PositiveIntegerField(
        default=0, help_text="Wakes whose turn the model proxy refused for the user's model budget: "
                             "not failures, and not retried this window.",
    )
    running_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="The provider's running cap as this run read it (empty: not reported).",
    )
    housekeeping = models.BooleanField(
        default=False, help_text="This run did the once-per-window jobs (VM-state sync, storage, pool).",
    )

    # Ledger rows this sweep wrote: Sprites cost (compute + storage) and, apart, model spend.
    billed_usd = models.DecimalField(max_digits=14, decimal_places=8, default=ZERO)
    llm_usd = models.DecimalField(max_digits=14, decimal_places=8, default=ZERO)

    # One line per failed sprite (name: reason), capped; the wakes hold the full detail.
    error_summary = models.TextField(blank=True)
    # Side jobs that never fail the sweep (pool top-up, stuck provisioning, storage).
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"heartbeat {self.started_at:%Y-%m-%d %H:%M:%S} ({self.trigger})"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def is_finished(self) -> bool:
        return self.finished_at is not None

    def summary(self) -> str:
        """The one line every entry point prints: "woke N, skipped M, failed K, billed $X in Ys"."""
        seconds = self.duration_seconds or 0.0
        line = (
            f"woke {self.woke}, skipped {self.skipped}, failed {self.failed}, "
            f"billed ${self.billed_usd:.4f} in {seconds:.1f}s"
        )
        if self.llm_usd:
            line += f" (model spend ${self.llm_usd:.4f})"
        if self.over_budget:
            line += f"; {self.over_budget} over their model budget"
        if self.deferred:
            line += f"; {self.deferred} wake(s) waited for a running slot"
        if self.dry_run:
            line = f"dry run, nothing woken or billed: would wake {self.due}; " + line
        return line

    def as_dict(self) -> dict:
        return {
            "run": self.pk,
            "trigger": self.trigger,
            "dry_run": self.dry_run,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_seconds": round(self.duration_seconds or 0.0, 3),
            "due": self.due,
            "woke": self.woke,
            "skipped": self.skipped,
            "failed": self.failed,
            "deferred": self.deferred,
            "over_budget": self.over_budget,
            "billed_usd": str(self.billed_usd),
            "llm_usd": str(self.llm_usd),
            "ok": self.failed == 0,
            "summary": self.summary(),
        }


class HeartbeatWake(models.Model):
    """One sprite's heartbeat turn in one run.

    `output_tail` and `error` may quote what the agent printed: untrusted text. Escape it
    wherever it is shown (the admin's `format_html`/auto-escaping does).
    """

    Outcome = Outcome  # one list of outcomes, shared with sprites.services.run_turn

    run = models.ForeignKey(HeartbeatRun, on_delete=models.CASCADE, related_name="wakes")
    sprite = models.ForeignKey("sprites.UserSprite", on_delete=models.CASCADE, related_name="heartbeat_wakes")
    started_at = models.DateTimeField()
    duration_seconds = models.DecimalField(max_digits=10, decimal_places=3, default=ZERO)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    exit_code = models.IntegerField(null=True, blank=True)
    output_tail = models.TextField(blank=True)
    error = models.TextField(blank=True)
    billed_usd = models.DecimalField(max_digits=14, decimal_places=8, default=ZERO)
    llm_usd = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    late_seconds = models.DecimalField(
        max_digits=10, decimal_places=3, null=True, blank=True,
        help_text="How long after its sprite's own window opened the wake started (empty when forced).",
    )

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["sprite", "started_at"], name="hbwake_sprite_started_idx"),
            models.Index(fields=["started_at"], name="hbwake_started_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.outcome} {self.sprite_id} {self.started_at:%Y-%m-%d %H:%M}"
