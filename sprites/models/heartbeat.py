"""What a heartbeat sweep writes on the sprite rows it woke: its lease, the last heartbeat, the
errors it leaves and clears. Conditional UPDATEs over a batch (a constant number of statements);
no status changes (those are sprite.py's)."""

from datetime import datetime

from django.db import models
from django.db.models import Case, F, Q, Value, When

ERROR_CHARS = 2000
# last_error is "<action>: <message>"; the heartbeat clears only what it wrote itself.
HEARTBEAT_ERROR_PREFIX = "heartbeat: "


class HeartbeatRows:
    """Mixed into SpriteQuerySet."""

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
            vm_state=self.model.VMState.RUNNING,  # it is, for its idle tail
            vm_state_checked_at=now,
            heartbeat_lease_until=None,
            last_error=Case(When(stale, then=Value("")), default=F("last_error"), output_field=models.TextField()),
            last_error_at=Case(When(stale, then=Value(None)), default=F("last_error_at"),
                               output_field=models.DateTimeField()),
            updated_at=now,
        )

    def record_heartbeat_failures(self, errors: dict[int, str], now: datetime, *,
                                  retry_after: "datetime | dict[int, datetime] | None") -> int:
        """Turns that failed: the error goes on the row and, with no new last_heartbeat, the
        sprite is due again once its lease ends at `retry_after` (its next window, so no sweep
        of this window tries it again; one instant, or one per sprite; None releases it at once)."""
        if not errors:
            return 0
        if isinstance(retry_after, dict):
            lease = Case(*[When(pk=pk, then=Value(at)) for pk, at in retry_after.items()],
                         default=Value(None), output_field=models.DateTimeField())
        else:
            lease = retry_after
        return self.filter(pk__in=list(errors)).update(
            heartbeat_lease_until=lease,
            last_error=Case(*[When(pk=pk, then=Value(f"{HEARTBEAT_ERROR_PREFIX}{error}"[:ERROR_CHARS]))
                              for pk, error in errors.items()], output_field=models.TextField()),
            last_error_at=now,
            updated_at=now,
        )
