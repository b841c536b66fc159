"""The operator console: every sprite's status and cost at a glance, fleet totals, actions.

Scale: the changelist and its summary band run a fixed number of queries whatever the page or
fleet size; figures are annotations (sprites/costs.py) and aggregates, never a query per row.
Live refresh: live.js polls `live/` (sprites/admin_views.py) and swaps the cells marked with
`data-live-id`/`data-live-field`, rendered by the same methods as the page itself.
"""

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Q
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from heartbeat.models import HeartbeatRun
from heartbeat.sweep import WAKEABLE, run_sweep
from sprites import admin_views, costs, services
from sprites.client import SpritesError
from sprites.models import LifecycleEvent, UsageRecord, UserSprite

CHART_DAYS = 30
RECENT_EVENTS = 10
LIVE_INTERVAL_MS = 5000


# --- formatting shared by the page, the live endpoint and the summary band ------------------


def usd(value) -> str:
    if value is None:
        return "–"
    return f"${Decimal(value):,.2f}"


def local_money(value_usd) -> str:
    """The local-currency figure (e.g. INR) when COST_LOCAL_CURRENCY/COST_LOCAL_PER_USD are set."""
    code, rate = settings.COST_LOCAL_CURRENCY, settings.COST_LOCAL_PER_USD
    if not code or not rate or value_usd is None:
        return ""
    return f"≈ {code} {Decimal(value_usd) * rate:,.0f}"


def ago(when: datetime | None, now: datetime | None = None) -> str:
    if when is None:
        return "never"
    seconds = int(((now or timezone.now()) - when).total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 48 * 3600:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def exact_time(when: datetime | None) -> str:
    return timezone.localtime(when).strftime("%Y-%m-%d %H:%M:%S %Z") if when else ""


def overdue_cutoff(now: datetime | None = None) -> datetime:
    """A heartbeat is overdue when it is two sweep intervals late: one missed sweep is noise."""
    return (now or timezone.now()) - timedelta(minutes=2 * settings.HEARTBEAT_INTERVAL_MINUTES)


def heartbeat_overdue_q(now: datetime | None = None) -> Q:
    cutoff = overdue_cutoff(now)
    return (
        Q(user__isnull=False, status__in=WAKEABLE)  # what the sweep wakes
        & (Q(last_heartbeat__lt=cutoff) | Q(last_heartbeat__isnull=True, assigned_at__lt=cutoff))
    )


# --- filters ------------------------------------------------------------------------------


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("live", "Live (not destroyed)"), *UserSprite.Status.choices]

    def queryset(self, request, queryset):
        if self.value() == "live":
            return queryset.exclude(status=UserSprite.Status.DESTROYED)
        if self.value() in UserSprite.Status.values:
            return queryset.filter(status=self.value())
        return queryset


class VMStateFilter(admin.SimpleListFilter):
    title = "VM state"
    parameter_name = "vm"

    def lookups(self, request, model_admin):
        return [(value or "unknown", label) for value, label in UserSprite.VMState.choices]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "unknown":
            return queryset.filter(vm_state="")
        if value in UserSprite.VMState.values:
            return queryset.filter(vm_state=value)
        return queryset


class HasErrorFilter(admin.SimpleListFilter):
    title = "has error"
    parameter_name = "has_error"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(last_error="")
        if self.value() == "no":
            return queryset.filter(last_error="")
        return queryset


class HeartbeatOverdueFilter(admin.SimpleListFilter):
    title = "heartbeat overdue"
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        minutes = 2 * settings.HEARTBEAT_INTERVAL_MINUTES
        return [("yes", f"Yes (> {minutes} min)"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(heartbeat_overdue_q())
        if self.value() == "no":
            return queryset.exclude(heartbeat_overdue_q())
        return queryset


class OverBudgetFilter(admin.SimpleListFilter):
    title = "monthly budget"
    parameter_name = "budget"

    def lookups(self, request, model_admin):
        budget = settings.SPRITE_MONTHLY_BUDGET_USD
        if budget is None:
            return []  # no budget set: the filter is not shown
        return [
            ("over", f"Over {usd(budget)} this month"),
            ("projected", f"Projected over {usd(budget)}"),
        ]

    def queryset(self, request, queryset):
        budget = settings.SPRITE_MONTHLY_BUDGET_USD
        if budget is None:
            return queryset
        if self.value() == "over":
            return queryset.filter(cost_month_usd__gt=budget)
        if self.value() == "projected":
            return queryset.filter(projected_monthly_usd__gt=budget)
        return queryset


class SpriteFilter(admin.SimpleListFilter):
    """?sprite=<id> from the sprite's change page; shows only the chosen sprite (no 10k list)."""

    title = "sprite"
    parameter_name = "sprite"
    field = "sprite_id"  # what the chosen sprite id is matched against

    def lookups(self, request, model_admin):
        value = self.value()
        if not value or not value.isdigit():
            return []
        name = UserSprite.objects.filter(pk=value).values_list("sprite_name", flat=True).first()
        return [(value, name or f"#{value}")]

    def queryset(self, request, queryset):
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(**{self.field: value})
        return queryset


# --- the sprites changelist ---------------------------------------------------------------


def _against_budget(amount, title):
    """A dollar figure, flagged when it is over SPRITE_MONTHLY_BUDGET_USD (if one is set)."""
    budget = settings.SPRITE_MONTHLY_BUDGET_USD
    if budget is not None and amount > budget:
        return format_html('<span class="sprite-over" title="{}">{}</span>', title.format(usd(budget)), usd(amount))
    return usd(amount)


def _cell(obj, field: str, inner):
    """Wrap a live cell so live.js can find it again and swap its content."""
    return format_html('<span data-live-id="{}" data-live-field="{}">{}</span>', obj.pk, field, inner)


@admin.register(UserSprite)
class UserSpriteAdmin(admin.ModelAdmin):
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
    # Facet counts would cost a query per filter choice.
    show_facets = admin.ShowFacets.NEVER
    actions = ["start", "stop", "heartbeat_now", "rotate_token", "refresh", "destroy"]
    readonly_fields = (
        "public_id",
        "status_badge",
        "gateway_token_masked",
        "gateway_token_reveal",
        "runtime_display",
        "cost_total_display",
        "cost_month_display",
        "projected_display",
        "history",
    )
    change_list_template = "admin/sprites/usersprite/change_list.html"

    class Media:
        css = {"all": ("sprites/admin.css",)}
        js = ("sprites/live.js",)

    # Sprites are created and changed only through the services (provision, actions).
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_operate_permission(self, request):
        """Running actions on sprites (start, stop, destroy…) takes the change permission."""
        return request.user.has_perm("sprites.change_usersprite")

    def get_queryset(self, request):
        # The token is decrypted on load: never for a list that never shows it.
        return costs.annotate_costs(super().get_queryset(request).defer("gateway_token"))

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
                        "projected_display",
                        "storage_billed_until",
                    ]
                },
            ),
            ("Last error", {"fields": ["last_error", "last_error_at"]}),
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
            path("live/", view(admin_views.live(self)), name="%s_%s_live" % info),
            path(
                "<path:object_id>/reveal-token/",
                view(admin_views.reveal_token(self)),
                name="%s_%s_reveal_token" % info,
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {"title": "Sprites: status and cost", **(extra_context or {}), **self.console_context(request)}
        return super().changelist_view(request, extra_context)

    def console_context(self, request) -> dict:
        """The summary band and the chart (three queries), for the page and the live endpoint."""
        fleet = self.fleet_figures(timezone.now())
        return {
            "fleet": fleet,
            "chart": cost_chart(fleet["daily"][-CHART_DAYS:]),
            "live_url": reverse("admin:sprites_usersprite_live"),
            "live_interval_ms": LIVE_INTERVAL_MS,
        }

    def fleet_figures(self, now: datetime) -> dict:
        summary = costs.fleet_summary(now=now)
        run = last_heartbeat_run()
        target = settings.SPRITE_POOL_SIZE
        summary.update(
            statuses=[
                {"value": value, "label": label, "count": summary["counts"][value]}
                for value, label in UserSprite.Status.choices
                if value != UserSprite.Status.DESTROYED
            ],
            destroyed=summary["counts"][UserSprite.Status.DESTROYED],
            pool_target=target,
            pool_short=summary["pool_ready"] < target,
            cost_month=usd(summary["cost_month_usd"]),
            projected_monthly=usd(summary["projected_monthly_usd"]),
            projected_monthly_local=local_money(summary["projected_monthly_usd"]),
            avg_per_user=usd(summary["avg_per_user_usd"]),
            avg_per_user_local=local_money(summary["avg_per_user_usd"]),
            cost_to_date=usd(summary["cost_to_date_usd"]),
            budget=usd(settings.SPRITE_MONTHLY_BUDGET_USD)
            if settings.SPRITE_MONTHLY_BUDGET_USD is not None
            else "",
            run=run,
            run_ago=ago(run.started_at, now) if run else "",
            run_when=exact_time(run.started_at) if run else "",
            run_seconds=run_duration(run),
        )
        return summary

    def render_summary_from(self, context: dict, request) -> str:
        return render_to_string("admin/sprites/usersprite/summary.html", context, request)

    # Columns. Each live one renders its inner HTML in `<name>_html` so the live endpoint
    # can return exactly what the page shows.

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
        return _cell(obj, "status", self.status_html(obj))

    def heartbeat_html(self, obj):
        if obj.last_heartbeat is None:
            return mark_safe('<span class="sprite-muted">never</span>')
        return format_html('<span title="{}">{}</span>', exact_time(obj.last_heartbeat), ago(obj.last_heartbeat))

    @admin.display(description="Last heartbeat", ordering="last_heartbeat")
    def heartbeat_display(self, obj):
        return _cell(obj, "heartbeat", self.heartbeat_html(obj))

    def runtime_html(self, obj):
        return f"{obj.total_runtime_hours} h"

    @admin.display(description="Runtime", ordering="total_runtime_seconds")
    def runtime_display(self, obj):
        return _cell(obj, "runtime", self.runtime_html(obj))

    def cost_total_html(self, obj):
        return usd(obj.total_cost_usd)

    @admin.display(description="Cost to date", ordering="total_cost_usd")
    def cost_total_display(self, obj):
        return _cell(obj, "cost_total", self.cost_total_html(obj))

    def cost_month_html(self, obj):
        return _against_budget(obj.cost_month_usd, "Over the {} budget")

    @admin.display(description="This month", ordering="cost_month_usd")
    def cost_month_display(self, obj):
        return _cell(obj, "cost_month", self.cost_month_html(obj))

    def projected_html(self, obj):
        return _against_budget(obj.projected_monthly_usd, "Projected over the {} budget")

    @admin.display(description="Projected / month", ordering="projected_monthly_usd")
    def projected_display(self, obj):
        return _cell(obj, "projected", self.projected_html(obj))

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
        return _cell(obj, "error", self.error_html(obj))

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

    # Actions: each calls the same service as the API, per sprite, and reports a count.

    def _each(self, request, queryset, done_verb: str, call) -> None:
        done, failures = 0, []
        for sprite in queryset:
            try:
                call(sprite=sprite, actor=request.user)
                done += 1
            except (SpritesError, services.SpriteActionError) as exc:
                failures.append(f"{sprite.sprite_name}: {exc}")
        if done:
            self.message_user(request, f"{done_verb} {done} sprite{'s' if done != 1 else ''}.", messages.SUCCESS)
        if failures:
            shown = "; ".join(failures[:3]) + (f"; and {len(failures) - 3} more" if len(failures) > 3 else "")
            self.message_user(request, f"{len(failures)} failed: {shown}", messages.ERROR)

    @admin.action(description="Start selected sprites", permissions=["operate"])
    def start(self, request, queryset):
        self._each(request, queryset, "Started", services.start_sprite)

    @admin.action(description="Stop selected sprites", permissions=["operate"])
    def stop(self, request, queryset):
        self._each(request, queryset, "Stopped", services.stop_sprite)

    @admin.action(description="Refresh status from the Sprites API", permissions=["operate"])
    def refresh(self, request, queryset):
        self._each(request, queryset, "Refreshed", services.refresh_status)

    @admin.action(description="Rotate gateway token", permissions=["operate"])
    def rotate_token(self, request, queryset):
        self._each(request, queryset, "Rotated the gateway token of", services.rotate_gateway_token)

    @admin.action(description="Run a heartbeat now", permissions=["operate"])
    def heartbeat_now(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        try:
            run = run_sweep(trigger="staff", sprite_ids=ids, force=True)
        except ImproperlyConfigured as exc:
            self.message_user(request, f"Heartbeat not run: {exc}", messages.ERROR)
            return
        level = messages.WARNING if run.failed else messages.SUCCESS
        self.message_user(
            request,
            f"Heartbeat for {len(ids)} sprite{'s' if len(ids) != 1 else ''}: "
            f"woke {run.woke}, skipped {run.skipped}, failed {run.failed}.",
            level,
        )

    @admin.action(description="Destroy selected sprites…", permissions=["operate"])
    def destroy(self, request, queryset):
        queryset = queryset.exclude(status=UserSprite.Status.DESTROYED)
        if request.POST.get("post") == "yes":
            self._each(request, queryset, "Destroyed", services.destroy_sprite)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Destroy sprites?",
            "opts": self.opts,
            "queryset": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/sprites/usersprite/destroy_confirmation.html", context)


# --- helpers for the band -----------------------------------------------------------------


def last_heartbeat_run() -> HeartbeatRun | None:
    return HeartbeatRun.objects.order_by("-started_at").first()


def run_duration(run: HeartbeatRun | None) -> str:
    if run is None:
        return ""
    return "running" if run.duration_seconds is None else f"{run.duration_seconds:.1f} s"


CHART_W, CHART_H, CHART_LEFT, CHART_BOTTOM, CHART_TOP = 1000, 160, 56, 22, 10


def cost_chart(days: list) -> dict:
    """Bar geometry for the inline SVG chart of daily fleet cost (drawn by the template)."""
    peak = max((cost for _, cost in days), default=Decimal(0))
    scale_max = peak if peak > 0 else Decimal(1)
    plot_h = CHART_H - CHART_BOTTOM - CHART_TOP
    slot = (CHART_W - CHART_LEFT) / max(len(days), 1)
    bars = []
    for i, (day, cost) in enumerate(days):
        h = float(cost / scale_max) * plot_h
        bars.append(
            {
                "x": round(CHART_LEFT + i * slot + 1, 1),
                "y": round(CHART_TOP + plot_h - h, 1),
                "w": round(slot - 2, 1),
                "h": round(h, 1),
                "title": f"{day:%a %d %b}: {usd(cost)}",
                "label": f"{day.day} {day:%b}" if i % 5 == 0 or i == len(days) - 1 else "",
                "label_x": round(CHART_LEFT + (i + 0.5) * slot, 1),
            }
        )
    return {
        "width": CHART_W,
        "height": CHART_H,
        "left": CHART_LEFT,
        "top": CHART_TOP,
        "baseline": CHART_TOP + plot_h,
        "mid": CHART_TOP + plot_h / 2,
        "label_y": CHART_H - 6,
        "max_label": usd(peak) if peak > 0 else "$0",
        "mid_label": usd(peak / 2) if peak > 0 else "",
        "total": usd(sum((cost for _, cost in days), Decimal(0))),
        "bars": bars,
        "days": len(days),
    }


# --- read-only history ----------------------------------------------------------------------


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is written by the services and the ledger only; the admin shows it."""

    show_full_result_count = False  # a count(*) over the whole ledger is the slow part
    show_facets = admin.ShowFacets.NEVER

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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
