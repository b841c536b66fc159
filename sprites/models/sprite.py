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
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.conf import settings
from django.db import models, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from sprites.fields import EncryptedTextField
from sprites.models.ledger import ZERO

ERROR_CHARS = 2000
# last_error is "<action>: <message>"; the heartbeat clears only what it wrote itself.
HEARTBEAT_ERROR_PREFIX = "heartbeat: "


def window_start(at: datetime, interval: timedelta) -> datetime:
    """Start of the heartbeat slot `at` falls in: the clock (UTC) cut into `interval` slots
    aligned to the epoch. A slot rather than "older than 15 minutes" because a sprite woken
    ten seconds into the 10:00 sweep is only 14:50 old at 10:15 and would skip every other run."""
    step = int(interval.total_seconds())
    return datetime.fromtimestamp(int(at.timestamp()) // step * step, tz=dt_timezone.utc)


def heartbeat_interval() -> timedelta:
    return timedelta(minutes=settings.HEARTBEAT_INTERVAL_MINUTES)


class SpriteQuerySet(models.QuerySet):
    def live(self):
        """Not destroyed: still a sprite at the provider (pool ones included)."""
        return self.exclude(status=UserSprite.Status.DESTROYED)

    def assigned(self):
        """Live sprites that belong to a user."""
        return self.live().filter(user__isnull=False)

    def wakeable(self):
        """What the heartbeat wakes: see `UserSprite.DUE_RULE`."""
        return self.filter(user__isnull=False, status__in=UserSprite.WAKEABLE)

    def due(self, *, window: datetime, now: datetime, force: bool = False):
        """Wakeable, nobody holds its lease, and no heartbeat in `window` (unless `force`),
        the longest-waiting first."""
        q = Q(heartbeat_lease_until__isnull=True) | Q(heartbeat_lease_until__lt=now)
        if not force:
            q &= Q(last_heartbeat__isnull=True) | Q(last_heartbeat__lt=window)
        return self.wakeable().filter(q).order_by(F("last_heartbeat").asc(nulls_first=True), "pk")

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

    def release_leases(self) -> int:
        return self.update(heartbeat_lease_until=None)

    def record_heartbeats(self, started: dict[int, datetime], now: datetime) -> int:
        """Turns that completed: their start is the last heartbeat, the lease is released, and
        an error an earlier heartbeat left ("heartbeat: …") is cleared; others' errors stay."""
        if not started:
            return 0
        stale = Q(last_error__startswith=HEARTBEAT_ERROR_PREFIX)
        return self.filter(pk__in=list(started)).update(
            last_heartbeat=Case(*[When(pk=pk, then=Value(at)) for pk, at in started.items()],
                                output_field=models.DateTimeField()),
            vm_state=UserSprite.VMState.RUNNING,  # it is, for its idle tail
            vm_state_checked_at=now,
            heartbeat_lease_until=None,
            last_error=Case(When(stale, then=Value("")), default=F("last_error"), output_field=models.TextField()),
            last_error_at=Case(When(stale, then=Value(None)), default=F("last_error_at"),
                               output_field=models.DateTimeField()),
            updated_at=now,
        )

    def record_heartbeat_failures(self, errors: dict[int, str], now: datetime, *,
                                  retry_after: datetime | None) -> int:
        """Turns that failed: the error goes on the row and, with no new last_heartbeat, the
        sprite is due again once its lease ends at `retry_after` (the next window, so no sweep
        of this window tries it again; None releases it at once)."""
        if not errors:
            return 0
        return self.filter(pk__in=list(errors)).update(
            heartbeat_lease_until=retry_after,
            last_error=Case(*[When(pk=pk, then=Value(f"{HEARTBEAT_ERROR_PREFIX}{error}"[:ERROR_CHARS]))
                              for pk, error in errors.items()], output_field=models.TextField()),
            last_error_at=now,
            updated_at=now,
        )


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

    # Which statuses... (one place for each rule; see the module docstring)
    WAKEABLE = (Status.ONLINE, Status.SLEEPING, Status.ERROR)
    IN_SERVICE = (Status.ONLINE, Status.SLEEPING, Status.STOPPED)  # start/stop/rotate apply
    FOLLOWS_VM = (Status.ONLINE, Status.SLEEPING)  # the only statuses the VM state moves
    DUE_RULE = (
        "A sprite is due when it belongs to a user, its status is online, sleeping or error (an "
        "error sprite is retried: the heartbeat is what notices it came back; stopped is the "
        "user's intent, provisioning is not set up yet, destroyed is gone, pool sprites have no "
        "user), no other sweep holds its lease, and it has had no heartbeat in the current "
        "HEARTBEAT_INTERVAL_MINUTES slot of the clock (UTC, aligned to the epoch)."
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
