"""Views behind the operator console, wired in `console.admin.sprites.UserSpriteAdmin.get_urls()` (admin login and
staff checks come from `admin_site.admin_view`).

- `live/`: the visible rows' live cells and the summary band, as JSON, for live.js.
- `<id>/reveal-token/`: shows one gateway token to a superuser, by POST only, and logs it.
"""

import re

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, JsonResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from sprites import services
from sprites.api.errors import json_error

MAX_LIVE_IDS = 500
# ASCII digits only (str.isdigit() takes "²", which int() refuses) and at most 18 of them, so
# the value fits the bigint primary key instead of overflowing in the database.
LIVE_ID = re.compile(r"[0-9]{1,18}")


def live(model_admin):
    def view(request):
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        if not model_admin.has_view_permission(request):
            return json_error("forbidden", "You may not view sprites.", 403)
        raw = [part for part in request.GET.get("ids", "").split(",") if part]
        if not all(LIVE_ID.fullmatch(part) for part in raw):
            return json_error("bad_ids", "ids must be comma-separated sprite ids.", 400)
        if len(raw) > MAX_LIVE_IDS:
            return json_error("too_many_ids", f"At most {MAX_LIVE_IDS} ids per request.", 400)
        rows = model_admin.get_queryset(request).filter(pk__in=[int(part) for part in raw]) if raw else []
        context = model_admin.console_context(request)
        fleet = context["fleet"]
        response = JsonResponse(
            {
                "at": timezone.now().isoformat(),
                "rows": {str(obj.pk): model_admin.live_cells(obj) for obj in rows},
                "summary": {
                    "counts": fleet["counts"],
                    "pool_ready": fleet["pool_ready"],
                    "pool_target": fleet["pool_target"],
                    "cost_month_usd": str(fleet["cost_month_usd"]),
                    "projected_monthly_usd": str(fleet["projected_monthly_usd"]),
                    "avg_per_user_usd": None
                    if fleet["avg_per_user_usd"] is None
                    else str(fleet["avg_per_user_usd"]),
                },
                "summary_html": model_admin.render_summary_from(context, request),
            }
        )
        response["Cache-Control"] = "no-store"
        return response

    return view


def reveal_token(model_admin):
    def view(request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.is_superuser:
            raise PermissionDenied
        sprite = model_admin.get_object(request, object_id)
        if sprite is None:
            raise Http404("No such sprite.")
        services.log_event(
            sprite=sprite,
            action="reveal_token",
            actor=request.user,
            actor_kind="staff",
            detail="Gateway token shown in the admin.",
        )
        response = TemplateResponse(
            request,
            "admin/sprites/usersprite/reveal_token.html",
            {
                **model_admin.admin_site.each_context(request),
                "title": f"Gateway token of {sprite.sprite_name}",
                "opts": model_admin.opts,
                "sprite": sprite,
                "token": sprite.gateway_token,
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    return view
