"""The sprites changelist's columns and change-page fields.

Each live column renders its inner HTML in `<name>_html`, so the live endpoint returns exactly
what the page shows; `<name>_display` wraps it in a cell live.js can find.
"""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from console.formatting import against_budget, ago, exact_time, live_cell, usd
from sprites.billing.budget import monthly_budget_for

RECENT_EVENTS = 10


class SpriteColumns:
    LIVE_FIELDS = ("status", "heartbeat", "runtime", "cost_total", "cost_month", "projected", "error")

    def live_cells(self, obj) -> dict:
        return {field: getattr(self, f"{field}_html")(obj) for field in self.LIVE_FIELDS}

    @admin.display(description="User", ordering="user__email")
    def user_display(self, obj):
        if obj.user_id is None:
            return mark_safe('<span class="sprite-pool">pool</span>')
        return obj.user.email or obj.user.get_username()

    def status_html(self, obj):
        return format_html(
            '<span class="sprite-badge sprite-badge--{}">{}</span> <span class="sprite-vm" title="VM state">{}</span>',
            obj.status,
            obj.get_status_display(),
            obj.get_vm_state_display().lower() if obj.vm_state else "",
        )

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return live_cell(obj, "status", self.status_html(obj))

    def heartbeat_html(self, obj):
        if obj.last_heartbeat is None:
            return mark_safe('<span class="sprite-muted">never</span>')
        return format_html('<span title="{}">{}</span>', exact_time(obj.last_heartbeat), ago(obj.last_heartbeat))

    @admin.display(description="Last heartbeat", ordering="last_heartbeat")
    def heartbeat_display(self, obj):
        return live_cell(obj, "heartbeat", self.heartbeat_html(obj))

    @admin.display(description="Gateway", ordering="gateway_failures")
    def gateway_health_display(self, obj):
        """The end-to-end check after the last wake (issue 14), and how far the heal went."""
        healthy = obj.gateway_healthy
        if healthy is None:
            return mark_safe('<span class="sprite-muted">not checked</span>')
        if healthy:
            return format_html('<span title="last good {}">ok</span>', exact_time(obj.gateway_ok_at))
        healing = {"restarted": ", restarted", "restored": ", restored", "needs_staff": ", needs staff"}.get(
            obj.healing, "")
        return format_html('<span class="sprite-error" title="{}">failing ×{}{}</span>',
                           Truncator(obj.gateway_error).chars(200), obj.gateway_failures, healing)

    def runtime_html(self, obj):
        return f"{obj.total_runtime_hours} h"

    @admin.display(description="Runtime", ordering="total_runtime_seconds")
    def runtime_display(self, obj):
        return live_cell(obj, "runtime", self.runtime_html(obj))

    def cost_total_html(self, obj):
        return usd(obj.total_cost_usd)

    @admin.display(description="Cost to date", ordering="total_cost_usd")
    def cost_total_display(self, obj):
        return live_cell(obj, "cost_total", self.cost_total_html(obj))

    def cost_month_html(self, obj):
        return against_budget(obj.cost_month_usd, "Over the {} budget", monthly_budget_for(obj))

    @admin.display(description="This month", ordering="cost_month_usd")
    def cost_month_display(self, obj):
        return live_cell(obj, "cost_month", self.cost_month_html(obj))

    @admin.display(description="VM / model this month", ordering="model_month_usd")
    def vm_model_month_display(self, obj):
        """This month's cost split: the VM's (compute + storage) and the model's (`llm` rows)."""
        model = getattr(obj, "model_month_usd", None)
        if model is None:
            return "-"
        return f"{usd(obj.cost_month_usd - model)} / {usd(model)}"

    def projected_html(self, obj):
        return against_budget(obj.projected_monthly_usd, "Projected over the {} budget", monthly_budget_for(obj))

    @admin.display(description="Projected / month", ordering="projected_monthly_usd")
    def projected_display(self, obj):
        return live_cell(obj, "projected", self.projected_html(obj))

    def error_html(self, obj):
        if not obj.last_error:
            return ""
        return format_html(
            '<span class="sprite-error" title="{}">{}</span>',
            obj.last_error,
            Truncator(obj.last_error).chars(60),
        )

    @admin.display(description="Last error", ordering="last_error_at")
    def error_display(self, obj):
        return live_cell(obj, "error", self.error_html(obj))

    # Change page.

    @admin.display(description="Gateway token")
    def gateway_token_masked(self, obj):
        if not obj.gateway_token:
            return mark_safe('<span class="sprite-muted">none</span>')
        return mark_safe('<span class="sprite-secret">••••••••••••••••</span>')

    @admin.display(description="Gateway token")
    def gateway_token_reveal(self, obj):
        if not obj.gateway_token:
            return self.gateway_token_masked(obj)
        # A submit button of the page's own form (it carries the CSRF token): a POST, logged.
        url = reverse("admin:sprites_usersprite_reveal_token", args=[obj.pk])
        return format_html(
            '{} <button type="submit" class="button sprite-reveal" formaction="{}" formmethod="post" '
            'name="reveal" value="1">Reveal</button> <span class="sprite-muted">(logged)</span>',
            self.gateway_token_masked(obj),
            url,
        )

    @admin.display(description="Recent activity")
    def history(self, obj):
        if obj.pk is None:
            return ""
        events = obj.events.order_by("-created_at")[:RECENT_EVENTS]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    exact_time(e.created_at),
                    e.action,
                    e.get_actor_kind_display(),
                    e.get_outcome_display(),
                    Truncator(e.detail).chars(80),
                )
                for e in events
            ),
        )
        links = [
            (reverse("admin:sprites_lifecycleevent_changelist") + f"?sprite={obj.pk}", "All lifecycle events"),
            (reverse("admin:sprites_usagerecord_changelist") + f"?sprite={obj.pk}", "Usage ledger"),
            (reverse("admin:heartbeat_heartbeatwake_changelist") + f"?sprite={obj.pk}", "Heartbeat turns"),
            (reverse("admin:heartbeat_heartbeatrun_changelist") + f"?sprite={obj.pk}", "Heartbeat runs"),
        ]
        return format_html(
            '<table class="sprite-history"><thead><tr><th>When</th><th>Action</th><th>By</th>'
            "<th>Outcome</th><th>Detail</th></tr></thead><tbody>{}</tbody></table><p>{}</p>",
            rows or mark_safe('<tr><td colspan="5" class="sprite-muted">No events yet</td></tr>'),
            format_html_join(" · ", '<a href="{}">{}</a>', links),
        )
