"""The data model: one sprite per user, the append-only usage ledger, lifecycle events.

Pool sprites live in `user_sprites` too, with no user: a pool sprite costs storage (and its
set-up costs compute) exactly like an assigned one, so the ledger, the cost figures and the
admin all treat it as one kind of row; claiming one for a user is a single conditional UPDATE
on one table, with no cross-table move that could half-happen.
"""

import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from sprites.fields import EncryptedTextField

ZERO = Decimal("0")
HOURS_PER_MONTH = Decimal("730")  # 365 × 24 ÷ 12: the usual cloud-billing month


class UserSprite(models.Model):
    class Status(models.TextChoices):
        PROVISIONING = "provisioning", "Provisioning"
        READY = "ready", "Ready (pool)"  # set up, checkpointed, waiting for a user
        ONLINE = "online", "Online"
        SLEEPING = "sleeping", "Sleeping"
        STOPPED = "stopped", "Stopped"  # the user's intent: stays until they start again
        ERROR = "error", "Error"
        DESTROYED = "destroyed", "Destroyed"

    class VMState(models.TextChoices):
        UNKNOWN = "", "Unknown"
        COLD = "cold", "Cold"
        WARM = "warm", "Warm"
        RUNNING = "running", "Running"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # A user has at most one live sprite; a destroyed row stays (with its ledger) and does
    # not stop them from getting a new one. NULL = a pool sprite.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sprites",
    )
    sprite_id = models.CharField("Sprites id", max_length=100, blank=True)
    sprite_name = models.CharField(max_length=63, unique=True)
    sprite_url = models.URLField(max_length=300, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PROVISIONING)
    vm_state = models.CharField("VM state", max_length=10, choices=VMState.choices, blank=True)
    vm_state_checked_at = models.DateTimeField(null=True, blank=True)

    gateway_url = models.URLField(max_length=300, blank=True)
    gateway_token = EncryptedTextField(blank=True)
    golden_checkpoint_id = models.CharField(max_length=100, blank=True)

    last_heartbeat = models.DateTimeField(null=True, blank=True)
    # A heartbeat sweep owns the sprite until then (claim by conditional UPDATE).
    heartbeat_lease_until = models.DateTimeField(null=True, blank=True)
    # Storage has been billed for every whole hour before this instant.
    storage_billed_until = models.DateTimeField(null=True, blank=True)

    # Caches of the ledger, updated in the same transaction as the rows they sum.
    total_runtime_seconds = models.DecimalField(max_digits=16, decimal_places=3, default=ZERO)
    total_cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=ZERO)

    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "user_sprites"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(user__isnull=False) & ~Q(status="destroyed"),
                name="one_live_sprite_per_user",
            ),
        ]
        indexes = [
            # The heartbeat's due-selection and the pool claim.
            models.Index(fields=["status", "last_heartbeat"], name="sprite_status_hb_idx"),
            models.Index(fields=["user", "status"], name="sprite_user_status_idx"),
        ]

    def __str__(self) -> str:
        return self.sprite_name

    @property
    def is_pool(self) -> bool:
        return self.user_id is None

    @property
    def is_online(self) -> bool:
        return self.status == self.Status.ONLINE

    @property
    def total_runtime_minutes(self) -> Decimal:
        return (self.total_runtime_seconds / 60).quantize(Decimal("0.01"))

    @property
    def total_runtime_hours(self) -> Decimal:
        return (self.total_runtime_seconds / 3600).quantize(Decimal("0.01"))

    @property
    def age(self) -> timedelta:
        return timezone.now() - (self.assigned_at or self.created_at)

    def projected_monthly_cost(self, *, now=None) -> Decimal:
        """Cost to date scaled to a 730-hour month, from the sprite's assigned lifetime.

        A sprite younger than a day is projected from its first day, to keep one early
        expensive provisioning from projecting a fortune.
        """
        now = now or timezone.now()
        start = self.assigned_at or self.created_at
        hours = max(Decimal((now - start).total_seconds()) / 3600, Decimal(24))
        return (self.total_cost_usd * HOURS_PER_MONTH / hours).quantize(Decimal("0.01"))

    def record_error(self, message: str) -> None:
        """Set last_error (never a secret: callers pass SpritesError messages)."""
        self.last_error = message[:2000]
        self.last_error_at = timezone.now()


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

    sprite = models.ForeignKey(UserSprite, on_delete=models.PROTECT, related_name="usage")
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


class LifecycleEvent(models.Model):
    """Who (user, staff, cron, system) did what to which sprite, when, and the outcome."""

    class ActorKind(models.TextChoices):
        USER = "user", "User"
        STAFF = "staff", "Staff"
        CRON = "cron", "Cron"
        SYSTEM = "system", "System"

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        FAILED = "failed", "Failed"

    sprite = models.ForeignKey(UserSprite, on_delete=models.PROTECT, related_name="events")
    actor_kind = models.CharField(max_length=10, choices=ActorKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=40)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.OK)
    detail = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        db_table = "sprite_events"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["sprite", "created_at"], name="event_sprite_created_idx")]

    def __str__(self) -> str:
        return f"{self.action} {self.outcome} on {self.sprite_id}"


class SpriteDailyCost(models.Model):
    """The ledger rolled up per sprite and UTC day (of each row's `started_at`).

    Written by `metering.record_usage` in the same transaction as the ledger rows it sums, so
    it always equals the ledger; the console reads month and chart figures from here, which
    costs ≤ 31 rows per sprite however many ledger rows a day holds.
    """

    sprite = models.ForeignKey(UserSprite, on_delete=models.PROTECT, related_name="daily_costs")
    day = models.DateField()
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=ZERO)
    active_seconds = models.DecimalField(max_digits=16, decimal_places=3, default=ZERO)

    class Meta:
        db_table = "sprite_daily_cost"
        constraints = [models.UniqueConstraint(fields=["sprite", "day"], name="one_rollup_per_sprite_day")]
        indexes = [models.Index(fields=["day"], name="daily_cost_day_idx")]

    def __str__(self) -> str:
        return f"{self.sprite_id} {self.day} ${self.cost_usd}"
