"""Read-only history: the ledger, lifecycle events, heartbeat runs and each sprite's turns.

Linked from a sprite's change page with `?sprite=<id>`; every list filters by sprite and date.
"""

from django.contrib import admin
from django.utils.text import Truncator

from console.admin.base import ReadOnlyAdmin
from console.filters import SpriteFilter
from console.formatting import run_duration
from heartbeat.models import HeartbeatRun, HeartbeatWake
from sprites.models import LifecycleEvent, UsageRecord


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "sprite", "kind", "cause", "seconds", "cost_usd", "ended_at")
    list_filter = (SpriteFilter, "kind", "cause")
    list_select_related = ("sprite",)
    date_hierarchy = "started_at"
    search_fields = ("sprite__sprite_name",)


@admin.register(LifecycleEvent)
class LifecycleEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "sprite", "action", "outcome", "actor_kind", "actor", "duration_ms", "short_detail")
    list_filter = (SpriteFilter, "outcome", "actor_kind", "action")
    list_select_related = ("sprite", "actor")
    date_hierarchy = "created_at"
    search_fields = ("sprite__sprite_name", "action")

    @admin.display(description="Detail")
    def short_detail(self, obj):
        return Truncator(obj.detail).chars(100)


class RunSpriteFilter(SpriteFilter):
    """Runs that woke (or tried to wake) the chosen sprite."""

    field = "wakes__sprite_id"


@admin.register(HeartbeatRun)
class HeartbeatRunAdmin(ReadOnlyAdmin):
    list_display = (
        "started_at",
        "trigger",
        "host",
        "dry_run",
        "duration",
        "due",
        "woke",
        "skipped",
        "failed",
        "billed_usd",
        "llm_usd",
    )
    list_filter = (RunSpriteFilter, "trigger", "dry_run")
    date_hierarchy = "started_at"

    @admin.display(description="Duration")
    def duration(self, obj):
        return run_duration(obj)


@admin.register(HeartbeatWake)
class HeartbeatWakeAdmin(ReadOnlyAdmin):
    list_display = (
        "started_at",
        "sprite",
        "outcome",
        "duration_seconds",
        "exit_code",
        "billed_usd",
        "llm_usd",
        "short_error",
        "run",
    )
    list_filter = (SpriteFilter, "outcome")
    list_select_related = ("sprite", "run")
    date_hierarchy = "started_at"
    search_fields = ("sprite__sprite_name",)

    @admin.display(description="Error")
    def short_error(self, obj):
        # Agent output is untrusted text: the admin escapes it; shorten it for the list.
        return Truncator(obj.error).chars(80)
