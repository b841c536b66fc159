"""A sprite's gateway health: what the end-to-end check through its URL last said, and the
known-good checkpoints the heal restores from (issue 14, docs/operations.md "A fleet that heals").

The fields are a mixin of `UserSprite` so they live on its row (the heartbeat writes them in
its batch, with no query per sprite); none of them is a status: status changes stay in
sprite.py.
"""

from datetime import datetime

from django.db import models
from django.db.models import Case, F, Value, When

GATEWAY_ERROR_CHARS = 300


class GatewayHealth(models.Model):
    """Last good, last bad, consecutive failures; and how far the heal has gone."""

    gateway_ok_at = models.DateTimeField("gateway last good", null=True, blank=True)
    gateway_failed_at = models.DateTimeField("gateway last bad", null=True, blank=True)
    gateway_failures = models.PositiveIntegerField("consecutive gateway failures", default=0)
    gateway_error = models.CharField(max_length=GATEWAY_ERROR_CHARS, blank=True)
    # 0 = nothing tried since the last good check; 1 = restarted; 2 = restored; then alerted.
    heal_attempts = models.PositiveSmallIntegerField(default=0)
    heal_alerted_at = models.DateTimeField(null=True, blank=True)
    known_good_at = models.DateTimeField("last known-good checkpoint", null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def gateway_healthy(self) -> bool | None:
        """None until it was checked once."""
        if self.gateway_ok_at is None and self.gateway_failed_at is None:
            return None
        return self.gateway_failures == 0

    @property
    def healing(self) -> str:
        """How far the heal went since the last good check."""
        if self.heal_alerted_at is not None:
            return "needs_staff"
        return {0: "", 1: "restarted"}.get(self.heal_attempts, "restored")

    def gateway_health(self) -> dict:
        """The health history the status API and the console show."""
        return {
            "healthy": self.gateway_healthy,
            "last_good": self.gateway_ok_at.isoformat() if self.gateway_ok_at else None,
            "last_bad": self.gateway_failed_at.isoformat() if self.gateway_failed_at else None,
            "consecutive_failures": self.gateway_failures,
            "error": self.gateway_error,
            "healing": self.healing,
        }


def gateway_check_updates(queryset, checks: dict[int, str], now: datetime) -> int:
    """Write a batch of checks in two UPDATEs: `checks` maps sprite pk to "" (good) or the
    error. A good check clears the failure count and the heal ladder; a bad one adds one."""
    good = [pk for pk, error in checks.items() if not error]
    bad = {pk: error[:GATEWAY_ERROR_CHARS] for pk, error in checks.items() if error}
    updated = 0
    if good:
        updated += queryset.filter(pk__in=good).update(
            gateway_ok_at=now, gateway_failures=0, gateway_error="", heal_attempts=0, heal_alerted_at=None)
    if bad:
        updated += queryset.filter(pk__in=list(bad)).update(
            gateway_failed_at=now, gateway_failures=F("gateway_failures") + 1,
            gateway_error=Case(*[When(pk=pk, then=Value(e)) for pk, e in bad.items()],
                               output_field=models.CharField()),
        )
    return updated


class KnownGoodCheckpoint(models.Model):
    """A checkpoint taken right after a verified heartbeat: what a broken gateway is restored
    to. At most one a day per sprite; the last HEAL_KEEP_CHECKPOINTS are kept."""

    sprite = models.ForeignKey("sprites.UserSprite", on_delete=models.PROTECT, related_name="known_good")
    checkpoint_id = models.CharField(max_length=100)
    created_at = models.DateTimeField(db_index=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "sprite_known_good_checkpoints"
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["sprite", "checkpoint_id"], name="known_good_once")]

    def __str__(self) -> str:
        return f"{self.checkpoint_id} of {self.sprite_id}"
