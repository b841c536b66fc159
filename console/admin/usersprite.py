"""The operator console: every sprite's status and cost at a glance, fleet totals, actions.

Scale: the changelist and its summary band run a fixed number of queries whatever the page or
fleet size; figures are annotations (sprites.selectors) and aggregates, never a query per row.
Live refresh: live.js polls `live/` (console/views.py) and swaps the cells marked with
`data-live-id`/`data-live-field`, rendered by the same methods as the page itself.
"""

from django.contrib import admin
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone

from console import healing, views
from console.admin.actions import SpriteActions
from console.admin.base import NoEditing
from console.admin.columns import SpriteColumns
from console.admin.money import MoneyColumns
from console.chart import cost_chart
from console.filters import HasErrorFilter, HeartbeatOverdueFilter, OverBudgetFilter, StatusFilter, VMStateFilter
from console.fleet import fleet_figures
from console.tasks import task_batch
from console.whatif import what_if
from sprites import selectors
from sprites.models import UserSprite

CHART_DAYS = 30
LIVE_INTERVAL_MS = 5000


@admin.register(UserSprite)
class UserSpriteAdmin(SpriteColumns, MoneyColumns, SpriteActions, NoEditing):
    """Sprites are created and changed only through the services (provision, actions)."""

    list_display = (
        "user_display",
        "sprite_name",
        "status_badge",
        "heartbeat_display",
        "runtime_display",
        "cost_total_display",
        "cost_month_display",
        "projected_display",
        "error_display",
        "vm_model_month_display",
        "gateway_health_display",
    )
    list_display_links = ("sprite_name",)
    list_filter = (
        StatusFilter,
        VMStateFilter,
        HasErrorFilter,
        HeartbeatOverdueFilter,
        OverBudgetFilter,
    )
    search_fields = ("user__email", "user__username", "sprite_name")
    list_select_related = ("user",)
    list_per_page = 50
    actions = ["start", "stop", "heartbeat_now", "rotate_token", "refresh", "restore_golden", "destroy"]
    readonly_fields = (
        "public_id",
        "status_badge",
        "gateway_token_masked",
        "gateway_token_reveal",
        "runtime_display",
        "cost_total_display",
        "cost_month_display",
        "vm_model_month_display",
        "projected_display",
        "budget_display",
        "ledger_links",
        "gateway_health_display",
        "history",
    )
    change_list_template = "admin/sprites/usersprite/change_list.html"

    class Media:
        css = {"all": ("console/admin.css",)}
        js = ("console/live.js",)

    def has_operate_permission(self, request):
        """Running actions on sprites (start, stop, destroy…) takes the change permission."""
        return request.user.has_perm("sprites.change_usersprite")

    def get_queryset(self, request):
        # The token is decrypted on load: never for a list that never shows it.
        return selectors.annotate_costs(super().get_queryset(request).defer("gateway_token"))

    def get_fieldsets(self, request, obj=None):
        token = "gateway_token_reveal" if request.user.is_superuser else "gateway_token_masked"
        return [
            (None, {"fields": ["sprite_name", "user", "status_badge", "public_id", "sprite_id"]}),
            ("Gateway", {"fields": ["sprite_url", "gateway_url", token, "golden_checkpoint_id"]}),
            (
                "Heartbeat and cost",
                {
                    "fields": [
                        "last_heartbeat",
                        "runtime_display",
                        "cost_total_display",
                        "cost_month_display",
                        "vm_model_month_display",
                        "projected_display",
                        "budget_display",
                        "ledger_links",
                        "storage_billed_until",
                    ]
                },
            ),
            ("Last error", {"fields": ["last_error", "last_error_at"]}),
            ("Gateway health", {"fields": ["gateway_health_display", "gateway_ok_at", "gateway_failed_at",
                                           "gateway_failures", "gateway_error", "heal_alerted_at", "known_good_at"]}),
            ("History", {"fields": ["history"]}),
            (
                "Dates",
                {"fields": ["created_at", "assigned_at", "updated_at", "destroyed_at", "vm_state_checked_at"]},
            ),
        ]

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view
        return [
            path("live/", view(views.live(self)), name="%s_%s_live" % info),
            path("what-if/", view(what_if(self)), name="%s_%s_what_if" % info),
            path("tasks/<slug:batch>/", view(task_batch(self)), name="%s_%s_tasks" % info),
            path("reconcile/", view(healing.reconcile_now(self)), name="%s_%s_reconcile" % info),
            path(
                "<path:object_id>/reveal-token/",
                view(views.reveal_token(self)),
                name="%s_%s_reveal_token" % info,
            ),
            *self.money_urls(),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {"title": "Sprites: status and cost", **(extra_context or {}), **self.console_context(request),
                         "reconcile": healing.last_reconciliation(), "can_operate": self.has_operate_permission(request)}
        return super().changelist_view(request, extra_context)

    def console_context(self, request) -> dict:
        """The summary band and the chart (three queries), for the page and the live endpoint."""
        fleet = fleet_figures(timezone.now())
        return {
            "fleet": fleet,
            "chart": cost_chart(fleet["daily"][-CHART_DAYS:]),
            "live_url": reverse("admin:sprites_usersprite_live"),
            "live_interval_ms": LIVE_INTERVAL_MS,
        }

    def render_summary_from(self, context: dict, request) -> str:
        return render_to_string("admin/sprites/usersprite/summary.html", context, request)
