"""A user's sprite, or a pool sprite waiting for one: the row, where it may go, and who is due.

Pool sprites live in `user_sprites` too, with no user: a pool sprite costs storage (and its
set-up costs compute) exactly like an assigned one, so the ledger, the cost figures and the
console all treat it as one kind of row; claiming one for a user is a single conditional
UPDATE on one table, with no cross-table move that could half-happen.

The state rules live here and only here: which statuses the heartbeat wakes, who is due and
overdue (`SpriteQuerySet`), and every status change (the `mark_*` methods and the queryset's
conditional UPDATEs). Nothing else assigns `status`.
"""

import time
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

from sprites.fields import EncryptedTextField
from sprites.models.health import GatewayHealth, gateway_check_updates
from sprites.models.heartbeat import ERROR_CHARS, HeartbeatRows
from sprites.models.ledger import ZERO
from sprites.models.schedule import Epoch, heartbeat_interval, slot_epoch


class SpriteQuerySet(HeartbeatRows, models.QuerySet):
    def live(self):
        """Not destroyed: still a sprite at the provider (pool ones included)."""
        return self.exclude(status=UserSprite.Status.DESTROYED)

    def assigned(self):
        """Live sprites that belong to a user."""
        return self.live().filter(user__isnull=False)

    def wakeable(self):
        """What the heartbeat wakes: see `UserSprite.DUE_RULE`."""
        return self.filter(user__isnull=False, status__in=UserSprite.WAKEABLE)

    def due(self, *, now: datetime, force: bool = False, interval: timedelta | None = None, window=None):
        """Wakeable, nobody holds its lease, and no heartbeat since its own slot started
        (`heartbeat_slot`; unless `force`), the most overdue (longest-waiting) first.
        `window` is accepted for old callers and ignored: each sprite has its own."""
        q = Q(heartbeat_lease_until__isnull=True) | Q(heartbeat_lease_until__lt=now)
        rows = self.wakeable()
        if not force:
            interval = interval or heartbeat_interval()
            rows = rows.alias(hb_epoch=Epoch("last_heartbeat"), hb_slot=slot_epoch(now, interval))
            # And never twice within half an interval: a wake that ran late (the cap was full)
            # is not followed by another a minute later when the sprite's next window opens.
            gap = int(now.timestamp()) - int(interval.total_seconds()) // 2
            q &= Q(last_heartbeat__isnull=True) | (Q(hb_epoch__lt=F("hb_slot")) & Q(hb_epoch__lt=gap))
        return rows.filter(q).order_by(F("last_heartbeat").asc(nulls_first=True), "pk")

    def overdue(self, now: datetime | None = None):
        """Wakeable sprites two intervals late (one missed sweep is noise)."""
        cutoff = (now or timezone.now()) - 2 * heartbeat_interval()
        late = Q(last_heartbeat__lt=cutoff) | Q(last_heartbeat__isnull=True, assigned_at__lt=cutoff)
        return self.wakeable().filter(late)

    # --- conditional transitions (each one statement; the caller acts only if it won) ---

    def follow_vm_state(self, names: list[str], vm_state: str, now: datetime) -> int:
        """Store `vm_state` on the live rows named, moving `online`/`sleeping` with it."""
        rows = self.live().filter(sprite_name__in=names)
        updated = rows.update(vm_state=vm_state, vm_state_checked_at=now)
        follows = UserSprite.status_for_vm_state(UserSprite.Status.ONLINE, vm_state) if vm_state else None
        if follows:
            rows.filter(status__in=UserSprite.FOLLOWS_VM).exclude(status=follows).update(
                status=follows, updated_at=now
            )
        return updated

    def claim_ready_for(self, user) -> "UserSprite | None":
        """Assign one ready pool sprite to `user`, atomically, or None if the pool is empty.

        Two users never get the same sprite: the UPDATE is conditional on the row still being
        an unassigned `ready` one (and on PostgreSQL the candidate is picked with SKIP LOCKED,
        so concurrent claims take different rows instead of queueing). One user never gets two:
        the partial unique constraint `one_live_sprite_per_user` makes a second claim fail
        with IntegrityError, which the caller turns into "existing".
        """
        ready = self.filter(user__isnull=True, status=UserSprite.Status.READY).exclude(golden_checkpoint_id="")
        for attempt in range(5):
            with transaction.atomic():
                candidate = (
                    ready.select_for_update(skip_locked=True)
                    .order_by("created_at", "pk").values_list("pk", flat=True).first()
                )
                won = 0
                if candidate is not None:
                    now = timezone.now()
                    won = ready.filter(pk=candidate).update(
                        user=user, status=UserSprite.Status.PROVISIONING, assigned_at=now, updated_at=now
                    )
            if won:
                return self.get(pk=candidate)
            # SKIP LOCKED finds nothing while every ready row is held by a claim that has not
            # committed yet: the pool is empty only when no ready row is left at all.
            if candidate is None and not ready.exists():
                return None
            time.sleep(0.005 * (attempt + 1))
        return None  # lost five races in a row: treat as empty, the caller builds a new sprite

    def suspend_over_budget(self, pk: int) -> bool:
        """A sprite whose budget is spent leaves the heartbeat's statuses; True if won."""
        return bool(self.filter(pk=pk, status__in=UserSprite.SUSPENDABLE).update(
            status=UserSprite.Status.OVER_BUDGET, updated_at=timezone.now()
        ))

    def restore_from_budget(self, pk: int) -> bool:
        """An `over_budget` sprite whose gateway runs again is `online`; True if won."""
        now = timezone.now()
        return bool(self.filter(pk=pk, status=UserSprite.Status.OVER_BUDGET).update(
            status=UserSprite.Status.ONLINE, vm_state=UserSprite.VMState.RUNNING, vm_state_checked_at=now,
            updated_at=now,
        ))

    def retry_failed(self, pk: int) -> bool:
        """An `error` row goes back to `provisioning` (one retry at a time); True if won."""
        return bool(self.filter(pk=pk, status=UserSprite.Status.ERROR).update(
            status=UserSprite.Status.PROVISIONING, updated_at=timezone.now()
        ))

    def touch_stuck(self, pk: int, updated_at: datetime) -> bool:
        """Claim a stuck `provisioning` row for resuming (conditional on it being untouched)."""
        return bool(self.filter(pk=pk, status=UserSprite.Status.PROVISIONING, updated_at=updated_at).update(
            updated_at=timezone.now()
        ))

    def record_gateway_checks(self, checks: dict[int, str], now: datetime) -> int:
        """A batch of end-to-end gateway checks (pk -> "" or the error): see models/health.py."""
        return gateway_check_updates(self, checks, now)

    def adopt_orphan(self, *, name: str, sprite_id: str, url: str, created_at: datetime | None,
                     golden_checkpoint_id: str = "") -> "UserSprite":
        """A row for a sprite found at the provider with none: `ready` in the pool when it
        carries a golden checkpoint (proven ours and set up), else `error` until it is destroyed."""
        status = UserSprite.Status.READY if golden_checkpoint_id else UserSprite.Status.ERROR
        row = self.create(user=None, sprite_name=name, sprite_id=sprite_id, sprite_url=url, status=status,
                          golden_checkpoint_id=golden_checkpoint_id)
        if created_at is not None:  # storage is billed from when it really began
            self.filter(pk=row.pk).update(created_at=created_at)
            row.created_at = created_at
        return row


class UserSprite(GatewayHealth, models.Model):
    class Status(models.TextChoices):
        PROVISIONING = "provisioning", "Provisioning"
        READY = "ready", "Ready (pool)"  # set up, checkpointed, waiting for a user
        ONLINE = "online", "Online"
        SLEEPING = "sleeping", "Sleeping"
        STOPPED = "stopped", "Stopped"  # the user's intent: stays until they start again
        ERROR = "error", "Error"
        # The user's monthly budget (or the fleet's cap) is spent: not woken, gateway stopped,
        # until the month rolls over or staff raise the budget (sprites/services/budgets.py).
        OVER_BUDGET = "over_budget", "Over budget"
        DESTROYED = "destroyed", "Destroyed"

    class VMState(models.TextChoices):
        UNKNOWN = "", "Unknown"
        COLD = "cold", "Cold"
        WARM = "warm", "Warm"
        RUNNING = "running", "Running"

    # Which statuses... (one place for each rule; see the module docstring)
    WAKEABLE = (Status.ONLINE, Status.SLEEPING, Status.ERROR)
    IN_SERVICE = (Status.ONLINE, Status.SLEEPING, Status.STOPPED)  # start/stop/rotate apply
    FOLLOWS_VM = (Status.ONLINE, Status.SLEEPING)  # the only statuses the VM state moves
    SUSPENDABLE = (Status.ONLINE, Status.SLEEPING, Status.ERROR)  # what a spent budget suspends
    DUE_RULE = (
        "A sprite is due when it belongs to a user, its status is online, sleeping or error (an "
        "error sprite is retried: the heartbeat is what notices it came back; stopped is the "
        "user's intent, over_budget waits for the month to roll over or a higher budget, "
        "provisioning is not set up yet, destroyed is gone, pool sprites have no "
        "user), no other sweep holds its lease, and it has had no heartbeat in its own current "
        "window (every HEARTBEAT_INTERVAL_MINUTES, starting at a stable per-sprite offset into "
        "the interval, a hash of its id, so the fleet's wakes are spread over the interval) "
        "nor in the last half interval (a late wake is not followed by another at once)."
    )

    objects = SpriteQuerySet.as_manager()

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

    # The user's monthly budget in USD; NULL = the default, SPRITE_MONTHLY_BUDGET_USD (see
    # sprites/services/budgets.py: monthly_budget_for). Set by staff (admin or API), logged.
    monthly_budget_usd = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)

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
            # The heal's pick, each sweep: the few whose gateway check failed.
            models.Index(fields=["gateway_failed_at"], condition=Q(gateway_failures__gt=0),
                         name="sprite_gateway_failing_idx"),
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

    # --- the state rules ----------------------------------------------------------------------

    @classmethod
    def status_for_vm_state(cls, status: str, vm_state: str) -> str:
        """The status a VM state implies. Only `online`/`sleeping` follow the VM: a user's
        `stopped` stays until they start again, and provisioning/ready/error/destroyed are
        ClawDirector's own states, not the VM's."""
        if status not in cls.FOLLOWS_VM:
            return status
        if vm_state == cls.VMState.RUNNING:
            return cls.Status.ONLINE
        if vm_state in (cls.VMState.WARM, cls.VMState.COLD):
            return cls.Status.SLEEPING
        return status

    def record_error(self, action: str, message: str) -> None:
        """Set last_error as "<action>: <message>" (never a secret: callers pass SpritesError
        messages or cleaned command output). Not saved: the caller saves with its own fields."""
        self.last_error = f"{action}: {message}"[:ERROR_CHARS]
        self.last_error_at = timezone.now()

    def clear_error(self, *actions: str) -> None:
        """Clear `last_error` if one of `actions` wrote it (a later success of the same action)."""
        if any(self.last_error.startswith(f"{action}: ") for action in actions):
            self.last_error, self.last_error_at = "", None
            self._save("last_error", "last_error_at")

    def _save(self, *fields: str) -> None:
        # Never a full save: the ledger totals on the row are kept by the ledger's UPDATEs.
        self.save(update_fields=[*dict.fromkeys(fields), "updated_at"])

    def mark_vm_state(self, vm_state: str, *, now: datetime | None = None) -> None:
        """What the provider says the VM is doing, and the status that follows from it."""
        self.vm_state = vm_state if vm_state in self.VMState.values else self.VMState.UNKNOWN
        self.vm_state_checked_at = now or timezone.now()
        self.status = self.status_for_vm_state(self.status, self.vm_state)
        self._save("vm_state", "vm_state_checked_at", "status")

    def mark_online(self, *, gateway_url: str | None = None, gateway_token: str | None = None) -> None:
        """The gateway runs (a start, or a provisioning that activated it)."""
        now = timezone.now()
        fields = ["status", "vm_state", "vm_state_checked_at"]
        if gateway_token is not None:
            self.gateway_url, self.gateway_token = gateway_url or self.sprite_url, gateway_token
            self.assigned_at = self.assigned_at or now
            fields += ["gateway_url", "gateway_token", "assigned_at"]
        self.status, self.vm_state, self.vm_state_checked_at = self.Status.ONLINE, self.VMState.RUNNING, now
        self._save(*fields)

    def mark_stopped(self) -> None:
        self.status = self.Status.STOPPED
        self._save("status")

    def mark_ready(self) -> None:
        """A pool sprite is set up and checkpointed."""
        self.status = self.Status.READY
        self._save("status")

    def mark_destroyed(self) -> None:
        self.status, self.destroyed_at = self.Status.DESTROYED, timezone.now()
        self.gateway_token, self.vm_state = "", self.VMState.UNKNOWN
        self._save("status", "destroyed_at", "gateway_token", "vm_state")

    def mark_ghost(self, reason: str) -> None:
        """The provider has no sprite behind this row: `error`, with the reason, and nothing
        left that points at the lost sprite, so the next provision request sets up a new one
        (`_retry_failed` -> a full set-up, since there is no golden checkpoint)."""
        self.record_error("reconcile", reason)
        self.status, self.vm_state = self.Status.ERROR, self.VMState.UNKNOWN
        self.sprite_id = self.sprite_url = self.gateway_url = self.golden_checkpoint_id = ""
        self._save("last_error", "last_error_at", "status", "vm_state", "sprite_id", "sprite_url", "gateway_url",
                   "golden_checkpoint_id")

    def mark_failed(self, action: str, message: str, *, to_error: bool = False, **fields) -> None:
        """Store the error on the row (and `fields`); `to_error` moves it to `error`."""
        self.record_error(action, message)
        if to_error:
            fields["status"] = self.Status.ERROR
        for name, value in fields.items():
            setattr(self, name, value)
        self._save("last_error", "last_error_at", *fields)

    def return_to_pool(self, *, broken: bool) -> None:
        """Compensate a failed claim: unassigned again, `ready` (the next claim restores its
        golden checkpoint and overwrites the token anyway) or `error` when it is broken."""
        self.user, self.assigned_at = None, None
        self.status = self.Status.ERROR if broken else self.Status.READY
        self.gateway_token, self.gateway_url = "", ""
        self._save("user", "assigned_at", "status", "gateway_token", "gateway_url", "last_error", "last_error_at")
