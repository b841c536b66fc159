"""The changelists' filters: SimpleListFilters, each one query condition."""

from django.conf import settings
from django.contrib import admin
from django.db.models import DecimalField, F, Value
from django.db.models.functions import Coalesce

from sprites.models import UserSprite


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
    """Two intervals late (`UserSprite.objects.overdue`)."""

    title = "heartbeat overdue"
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        minutes = 2 * settings.HEARTBEAT_INTERVAL_MINUTES
        return [("yes", f"Yes (> {minutes} min)"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(pk__in=UserSprite.objects.overdue().values("pk"))
        if self.value() == "no":
            return queryset.exclude(pk__in=UserSprite.objects.overdue().values("pk"))
        return queryset


class OverBudgetFilter(admin.SimpleListFilter):
    title = "monthly budget"
    parameter_name = "budget"

    def lookups(self, request, model_admin):
        return [("over", "Over its budget this month"), ("projected", "Projected over its budget")]

    def queryset(self, request, queryset):
        # Each sprite's own budget, else the default; no budget at all is never over.
        default = settings.SPRITE_MONTHLY_BUDGET_USD
        budget = F("monthly_budget_usd") if default is None else Coalesce(
            F("monthly_budget_usd"), Value(default, output_field=DecimalField()))
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
