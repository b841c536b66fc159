"""Read-only heartbeat history: the sweeps and each sprite's turn in them.

Linked from a sprite's change page with `?sprite=<id>`; both lists filter by sprite and date.
"""

from django.contrib import admin
from django.utils.text import Truncator

from heartbeat.models import HeartbeatRun, HeartbeatWake
from sprites.admin import ReadOnlyAdmin, SpriteFilter


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
        seconds = obj.duration_seconds
        return "running" if seconds is None else f"{seconds:.1f} s"


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
