"""Formatting shared by the pages, the live endpoint and the summary band."""

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.utils import timezone
from django.utils.html import format_html


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




def against_budget(amount, title, budget):
    """A dollar figure, flagged when it is over `budget` (the sprite's own monthly budget, else
    SPRITE_MONTHLY_BUDGET_USD; None: none)."""
    if budget is not None and amount > budget:
        return format_html('<span class="sprite-over" title="{}">{}</span>', title.format(usd(budget)), usd(amount))
    return usd(amount)


def live_cell(obj, field: str, inner):
    """Wrap a live cell so live.js can find it again and swap its content."""
    return format_html('<span data-live-id="{}" data-live-field="{}">{}</span>', obj.pk, field, inner)


def run_duration(run) -> str:
    """A heartbeat run's duration, or "running"."""
    if run is None:
        return ""
    return "running" if run.duration_seconds is None else f"{run.duration_seconds:.1f} s"
