"""The console's what-if page: the fleet's projected month from the schedule, today's beside
the same projection under another interval, idle tail, turn length, pool size or rate card
(`manage.py costs --what-if` prints the same). A GET form; a bad value is shown on the page."""

from django.template.response import TemplateResponse
from django.utils import timezone

from console.formatting import usd
from sprites import selectors
from sprites.billing.schedule import KEYS, RATE_CARDS, Schedule, WhatIfError

FIELDS = [  # (key, label, hint)
    ("interval", "Heartbeat interval", "minutes"),
    ("idle", "Idle tail", "seconds"),
    ("turn", "Turn length", "seconds (empty: each sprite's measured turn)"),
    ("pool", "Pool size", "sprites"),
    ("rate", "Active rate", "USD per hour"),
    ("storage_rate", "Storage rate", "USD per GB-hour"),
    ("storage_gb", "Storage", "GB per sprite"),
]
ROWS = [
    ("Wakes / month / sprite", "wakes_per_month", False),
    ("Billed seconds / wake", "billed_seconds_per_wake", False),
    ("Users", "users", False),
    ("Pool sprites", "pool", False),
    ("Heartbeat compute", "heartbeat_usd", True),
    ("User sessions (7-day average)", "user_usd", True),
    ("Storage", "storage_usd", True),
    ("Projected / month", "total_usd", True),
    ("Per user / month", "per_user_usd", True),
]


def what_if(model_admin):
    def view(request):
        now, today = timezone.now(), Schedule.current()
        asked = {key: request.GET[key].strip() for key in [*KEYS, "card"] if request.GET.get(key, "").strip()}
        error, other = "", None
        if asked:
            try:
                other = selectors.fleet_projection(schedule=today.what_if(asked), now=now)
            except WhatIfError as exc:
                error = str(exc)
        current = selectors.fleet_projection(schedule=today, now=now)
        rows = [{"label": label, "today": _show(current[key], money),
                 "what_if": _show(other[key], money) if other else ""} for label, key, money in ROWS]
        return TemplateResponse(request, "admin/sprites/usersprite/what_if.html", {
            **model_admin.admin_site.each_context(request),
            "title": "What if: the projected month under another schedule",
            "opts": model_admin.opts,
            "fields": [{"key": k, "label": label, "hint": hint, "value": asked.get(k, ""),
                        "today": current["schedule"][KEYS[k][0]] or ""} for k, label, hint in FIELDS],
            "cards": list(RATE_CARDS), "card": asked.get("card", ""),
            "rows": rows, "asked": bool(other), "error": error,
        })

    return view


def _show(value, money: bool) -> str:
    return usd(value) if money else ("–" if value is None else str(value))
