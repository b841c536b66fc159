"""Read-only history of the notifications sent (sprites/notify/): what, when, by which channel,
and the last delivery error."""

from django.contrib import admin

from console.admin.base import ReadOnlyAdmin
from console.filters import SpriteFilter
from sprites.models import Notification


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "kind", "subject", "sprite", "email_sent_at", "webhook_sent_at", "attempts",
                    "last_error")
    list_filter = (SpriteFilter, "kind")
    list_select_related = ("sprite",)
    date_hierarchy = "created_at"
    search_fields = ("subject", "key")
