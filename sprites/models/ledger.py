"""The money: the append-only usage ledger and its per-day rollup.

Rows are written only by `sprites.billing` (one builder per kind, one ledger writer), which
keeps the rollup and the totals cached on `UserSprite` equal to the ledger's sums.
"""

from decimal import Decimal

from django.db import models

ZERO = Decimal("0")
HOURS_PER_MONTH = Decimal("730")  # 365 × 24 ÷ 12: the usual cloud-billing month


class UsageRecord(models.Model):
    """One metered interval, append-only. Totals on UserSprite are sums of these rows."""

    class Kind(models.TextChoices):
        ACTIVE = "active", "Active compute"
        STORAGE = "storage", "Storage"
        LLM = "llm", "Model spend"

    class Cause(models.TextChoices):
        HEARTBEAT = "heartbeat", "Heartbeat"
        USER_START = "user_start", "User start"
        STAFF = "staff", "Staff action"
        PROVISIONING = "provisioning", "Provisioning"
        POOL_SETUP = "pool_setup", "Pool set-up"
        STORAGE = "storage", "Storage accrual"
        MODEL_PROXY = "model_proxy", "Model proxy reconciliation"
        USER = "user", "User session"

    sprite = models.ForeignKey("sprites.UserSprite", on_delete=models.PROTECT, related_name="usage")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    cause = models.CharField(max_length=20, choices=Cause.choices)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    seconds = models.DecimalField(max_digits=12, decimal_places=3, default=ZERO)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8)
    # Built from what the row measures (sprite, kind, window): a retried or re-run write
    # of the same interval collides here and can never bill twice.
    idempotency_key = models.CharField(max_length=200, unique=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "sprite_usage"
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["sprite", "started_at"], name="usage_sprite_started_idx"),
            models.Index(fields=["started_at"], name="usage_started_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.sprite_id} {self.started_at:%Y-%m-%d %H:%M} ${self.cost_usd}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise TypeError("UsageRecord is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("UsageRecord is append-only")



class SpriteDailyCost(models.Model):
    """The ledger rolled up per sprite and UTC day (of each row's `started_at`).

    Written by `sprites.billing.record_usage` in the same transaction as the ledger rows it sums, so
    it always equals the ledger; the console reads month and chart figures from here, which
    costs ≤ 31 rows per sprite however many ledger rows a day holds.
    """

    sprite = models.ForeignKey("sprites.UserSprite", on_delete=models.PROTECT, related_name="daily_costs")
    day = models.DateField()
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=ZERO)
    active_seconds = models.DecimalField(max_digits=16, decimal_places=3, default=ZERO)
    # What the projection reads (sprites.selectors): heartbeat wakes and their billed seconds,
    # and the users' own session seconds, so it never scans a week of ledger rows.
    heartbeat_wakes = models.PositiveIntegerField(default=0)
    heartbeat_seconds = models.DecimalField(max_digits=16, decimal_places=3, default=ZERO)
    user_seconds = models.DecimalField(max_digits=16, decimal_places=3, default=ZERO)

    class Meta:
        db_table = "sprite_daily_cost"
        constraints = [models.UniqueConstraint(fields=["sprite", "day"], name="one_rollup_per_sprite_day")]
        indexes = [models.Index(fields=["day"], name="daily_cost_day_idx")]

    def __str__(self) -> str:
        return f"{self.sprite_id} {self.day} ${self.cost_usd}"
