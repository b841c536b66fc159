"""Lifecycle events: who did what to which sprite, when, and how it went."""

from django.conf import settings
from django.db import models
from django.utils import timezone


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

    sprite = models.ForeignKey("sprites.UserSprite", on_delete=models.PROTECT, related_name="events")
    actor_kind = models.CharField(max_length=10, choices=ActorKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=40)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.OK)
    detail = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # Money an action saves (an orphan destroyed: its storage per month; a pool sprite
    # adopted: the set-up not redone) or cost (an orphan's storage until it was found).
    saved_usd = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        db_table = "sprite_events"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["sprite", "created_at"], name="event_sprite_created_idx")]

    def __str__(self) -> str:
        return f"{self.action} {self.outcome} on {self.sprite_id}"


