"""The record of one reconciliation: what the provider and the database disagreed about, and
what was done (sprites/services/reconcile.py). The console shows the last one."""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone


class ReconcileRun(models.Model):
    class Trigger(models.TextChoices):
        COMMAND = "command", "Command"
        SCHEDULE = "schedule", "Schedule (sweep)"
        STAFF = "staff", "Staff (console)"

    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    applied = models.BooleanField(default=False)  # False = a dry run: differences only
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    provider_count = models.PositiveIntegerField(default=0)  # sprites listed with our prefix
    row_count = models.PositiveIntegerField(default=0)  # live rows with a sprite
    # [{"kind": "orphan|ghost|stuck|zombie", "sprite": name, "action": "...", "detail": "...",
    #   "saved_usd": "...", "cost_usd": "..."}]
    differences = models.JSONField(default=list, blank=True)
    saved_usd = models.DecimalField(max_digits=12, decimal_places=8, default=Decimal("0"))
    cost_usd = models.DecimalField(max_digits=12, decimal_places=8, default=Decimal("0"))
    error = models.TextField(blank=True)

    class Meta:
        db_table = "reconcile_runs"
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"reconcile {self.started_at:%Y-%m-%d %H:%M} ({self.summary()})"

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for diff in self.differences:
            counts[diff.get("kind", "?")] = counts.get(diff.get("kind", "?"), 0) + 1
        found = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no differences"
        mode = "applied" if self.applied else "dry run"
        return f"{found}; {mode}" + (f"; error: {self.error[:80]}" if self.error else "")
