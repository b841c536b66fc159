"""Notifications to staff (and a user about their own budget): one row per event and period.

The row is the dedupe: `key` names the event and its period (`budget-warn:{user}:{month}:{budget}`,
`sprite-error:{sprite}:{day}`, `sweep-failed:{hour}`…) and is unique, so however many sweeps,
workers or probes notice the same thing, it is written, and sent, once. Delivery (email, a
signed webhook) is a durable task that fills in the `*_sent_at` fields (sprites/notify/).
"""

from django.db import models
from django.utils import timezone


class Notification(models.Model):
    class Kind(models.TextChoices):
        BUDGET_WARNING = "budget_warning", "Budget warning"
        BUDGET_OVER = "budget_over", "Budget spent"
        FLEET_WARNING = "fleet_warning", "Fleet cap warning"
        FLEET_OVER = "fleet_over", "Fleet cap spent"
        SPRITE_ERROR = "sprite_error", "Sprite in error"
        SWEEP_FAILED = "sweep_failed", "Heartbeat sweep failed"
        SWEEP_MISSED = "sweep_missed", "Heartbeat sweep missed"
        CAPACITY = "capacity", "Capacity warning"
        HEAL_ALERT = "heal_alert", "Gateway needs a person"

    key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    subject = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    sprite = models.ForeignKey("sprites.UserSprite", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+")
    # Besides staff (ADMINS): the user a budget notice is about, by email.
    user_email = models.EmailField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    email_sent_at = models.DateTimeField(null=True, blank=True)
    webhook_sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        db_table = "sprite_notifications"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}"
