"""The sprite page's money: its user's budget (shown, and set by staff through a small form)
and the ledger per month as CSV. The same services as the API (`sprites.services.budgets`,
`sprites.exports`); the budget change is logged as a `set_budget` event by the service."""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from console.formatting import usd
from sprites import exports
from sprites.billing import budget
from sprites.services import budgets
from sprites.services.errors import SpriteActionError


class BudgetForm(forms.Form):
    monthly_budget_usd = forms.DecimalField(
        label="Monthly budget (USD)", required=False, min_value=0, max_digits=9, decimal_places=2,
        help_text="Empty: the default (SPRITE_MONTHLY_BUDGET_USD).")


class MoneyColumns:
    @admin.display(description="Monthly budget")
    def budget_display(self, obj):
        if obj.pk is None or obj.user_id is None:
            return "–"
        state = budget.budget_of(obj)
        own = "" if obj.monthly_budget_usd is not None else " (default)"
        figure = "none" if state.budget_usd is None else f"{usd(state.budget_usd)}{own}"
        percent = "" if state.percent is None else f", {state.percent}%"
        url = reverse("admin:sprites_usersprite_budget", args=[obj.pk])
        return format_html('{}: {} spent this month{} <span class="sprite-budget-{}">({})</span> · <a href="{}">Set</a>',
                           figure, usd(state.spent_usd), percent, state.state, state.state, url)

    @admin.display(description="Ledger (CSV)")
    def ledger_links(self, obj):
        if obj.pk is None:
            return "–"
        this = exports.parse_month(None)
        months = [this, (this - timedelta(days=1)).replace(day=1)]  # this month and the last
        url = reverse("admin:sprites_usersprite_ledger", args=[obj.pk])
        return format_html_join(" · ", '<a href="{}?month={}">{}</a>',
                                ((url, f"{m:%Y-%m}", f"{m:%B %Y}") for m in months))

    def money_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/budget/", view(self.set_budget_view), name="sprites_usersprite_budget"),
            path("<path:object_id>/ledger.csv", view(self.ledger_view), name="sprites_usersprite_ledger"),
        ]

    def _sprite(self, request, object_id):
        sprite = self.get_object(request, object_id)
        if sprite is None:
            raise Http404("No such sprite.")
        return sprite

    def ledger_view(self, request, object_id):
        sprite = self._sprite(request, object_id)
        try:
            month = exports.parse_month(request.GET.get("month"))
        except ValueError as exc:
            return HttpResponse(str(exc), status=400, content_type="text/plain")
        text, _ = exports.ledger_csv(sprite, month)
        response = HttpResponse(text, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{exports.filename(sprite, month)}"'
        return response

    def set_budget_view(self, request, object_id):
        if not self.has_operate_permission(request):
            raise PermissionDenied
        sprite = self._sprite(request, object_id)
        form = BudgetForm(request.POST or None, initial={"monthly_budget_usd": sprite.monthly_budget_usd})
        if request.method == "POST" and form.is_valid():
            try:
                state = budgets.set_budget(sprite=sprite, amount=form.cleaned_data["monthly_budget_usd"],
                                           actor=request.user)
            except SpriteActionError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"Monthly budget of {sprite.user}: "
                                           f"{usd(state.budget_usd) if state.budget_usd is not None else 'none'} "
                                           f"({state.state}).", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:sprites_usersprite_change", args=[sprite.pk]))
        context = {**self.admin_site.each_context(request), "title": f"Monthly budget of {sprite.user or sprite}",
                   "opts": self.opts, "sprite": sprite, "form": form, "state": budget.budget_of(sprite)}
        return TemplateResponse(request, "admin/sprites/usersprite/set_budget.html", context)
