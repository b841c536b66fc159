"""Delivering a notification: a durable task (django-tasks on the database, run by `manage.py
worker`) that sends each channel once and retries what failed with exponential backoff.

Channels: email to ADMINS (`mail_admins`) plus, for a budget notice, the user; the webhook
(`webhook.post`) when NOTIFY_WEBHOOK_URL is set. A channel that succeeded is stamped on the row
(`email_sent_at`, `webhook_sent_at`) and never sent again by a retry.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import mail_admins, send_mail
from django.utils import timezone
from django_tasks import task

from sprites.models import Notification

from .webhook import WebhookError, post

logger = logging.getLogger(__name__)


class DeliveryFailed(Exception):
    """The last attempt failed: the task fails with this message (no secret in it)."""


def payload(note: Notification) -> dict:
    return {
        "id": note.pk, "kind": note.kind, "key": note.key, "subject": note.subject, "text": note.body,
        "data": note.data, "created_at": note.created_at.isoformat(),
    }


def _send_email(note: Notification) -> None:
    if settings.ADMINS:
        mail_admins(note.subject, note.body, fail_silently=False)
    if note.user_email:
        send_mail(f"{settings.EMAIL_SUBJECT_PREFIX}{note.subject}", note.body, settings.DEFAULT_FROM_EMAIL,
                  [note.user_email], fail_silently=False)


def _send(note: Notification) -> list[str]:
    """Each channel not sent yet; returns what failed."""
    errors = []
    if note.email_sent_at is None and (settings.ADMINS or note.user_email):
        try:
            _send_email(note)
            note.email_sent_at = timezone.now()
        except Exception as exc:  # noqa: BLE001 - SMTP errors are many; each one is retried
            errors.append(f"email: {type(exc).__name__}")
    if note.webhook_sent_at is None and settings.NOTIFY_WEBHOOK_URL:
        try:
            post(payload(note), event=note.kind)
            note.webhook_sent_at = timezone.now()
        except WebhookError as exc:
            errors.append(f"webhook: {exc}")
    return errors


@task()
def deliver(notification_pk: int, attempt: int = 1) -> str:
    """Send one notification's channels; on a failure queue the next attempt, up to NOTIFY_ATTEMPTS."""
    note = Notification.objects.get(pk=notification_pk)
    errors = _send(note)
    note.attempts, note.last_error = attempt, "; ".join(errors)
    note.save(update_fields=["email_sent_at", "webhook_sent_at", "attempts", "last_error"])
    if not errors:
        return "sent"
    if attempt < settings.NOTIFY_ATTEMPTS and deliver.get_backend().supports_defer:
        delay = settings.NOTIFY_RETRY_SECONDS * 2 ** (attempt - 1)
        deliver.using(run_after=timezone.now() + timedelta(seconds=delay)).enqueue(
            notification_pk=notification_pk, attempt=attempt + 1)
        logger.warning("Notification %s attempt %s failed (%s); retrying in %g s", note.pk, attempt,
                       note.last_error, delay)
        return f"attempt {attempt} failed ({note.last_error}); retrying in {delay:g} s"
    raise DeliveryFailed(f"notification {note.pk}: {note.last_error} after {attempt} attempt(s)")
