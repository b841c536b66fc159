"""Read-only history of a fleet that heals: reconciliation runs and known-good checkpoints."""

from django.contrib import admin

from console.admin.base import ReadOnlyAdmin
from console.filters import SpriteFilter
from sprites.models import KnownGoodCheckpoint, ReconcileRun


@admin.register(ReconcileRun)
class ReconcileRunAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "trigger", "actor", "applied", "provider_count", "row_count", "summary_display",
                    "saved_usd", "cost_usd")
    list_filter = ("trigger", "applied")
    list_select_related = ("actor",)
    date_hierarchy = "started_at"

    @admin.display(description="Found")
    def summary_display(self, obj):
        return obj.summary()


@admin.register(KnownGoodCheckpoint)
class KnownGoodCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "sprite", "checkpoint_id", "deleted_at")
    list_filter = (SpriteFilter,)
    list_select_related = ("sprite",)
    date_hierarchy = "created_at"
