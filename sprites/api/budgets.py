"""The money endpoints of a sprite: its user's budget (staff set it) and the ledger as CSV.

A mixin of `SpriteViewSet`, so the same scoping holds: a user reaches only their own sprite
(another user's is a 404), staff reach any user's.
"""

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from sprites import exports
from sprites.api.serializers import ErrorSerializer
from sprites.models import UserSprite
from sprites.services import budgets


class CSVRenderer(BaseRenderer):
    """Lets a client ask for `Accept: text/csv`; the CSV itself is a plain HttpResponse."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes) else str(data).encode()


class BudgetSerializer(serializers.Serializer):
    monthly_budget_usd = serializers.DecimalField(
        max_digits=9, decimal_places=2, min_value=0, allow_null=True,
        help_text="The user's monthly budget in USD; null: the default (SPRITE_MONTHLY_BUDGET_USD).")


class BudgetStateSerializer(serializers.Serializer):
    monthly_budget_usd = serializers.CharField(allow_null=True, help_text="null: no budget.")
    spent_month_usd = serializers.CharField(help_text="The user's ledger this calendar month (UTC).")
    percent = serializers.CharField(allow_null=True)
    state = serializers.ChoiceField(["ok", "warned", "over"])


class LedgerQuerySerializer(serializers.Serializer):
    month = serializers.RegexField(rf"^{exports.MONTH.pattern}$", required=False, max_length=7,
                                   help_text="YYYY-MM; default this month.")


def _error(code: int, text: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=text)


AUTH = {401: _error(401, "No or bad credentials (`not_authenticated`, `authentication_failed`)."),
        403: _error(403, "Session without a valid CSRF token (`csrf_failed`), or not staff (`permission_denied`).")}


ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The sprite's public id.")


class MoneyActions:
    """`budget` (GET: owner or staff; PUT: staff) and `ledger` (CSV: owner or staff)."""

    def _sprite_for_money(self) -> UserSprite:
        return self._any_users_sprite() if self.request.user.is_staff else self.get_object()

    @extend_schema(
        methods=["GET"], summary="The user's monthly budget and this month's spend", parameters=[ID],
        responses={200: BudgetStateSerializer, **AUTH, 404: _error(404, "No such sprite among yours (`not_found`).")},
    )
    @extend_schema(
        methods=["PUT"], summary="Set the user's monthly budget (staff)", parameters=[ID], request=BudgetSerializer,
        description=("Logged as a `set_budget` event. A raise that gives room again restarts an `over_budget` "
                     "sprite (a task; seconds later); a cut below this month's spend suspends it."),
        responses={200: BudgetStateSerializer, 400: _error(400, "Not an amount (`invalid`, `invalid_budget`)."),
                   **AUTH, 404: _error(404, "No such sprite.")},
    )
    @action(detail=True, methods=["get", "put"])
    def budget(self, request, id=None):
        sprite = self._sprite_for_money()
        if request.method == "GET":
            return Response(budgets.status_of(sprite))
        body = BudgetSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        state = budgets.set_budget(sprite=sprite, amount=body.validated_data["monthly_budget_usd"], actor=request.user)
        return Response(state.as_dict())

    @extend_schema(
        summary="The user's ledger for a month, as CSV", parameters=[ID, LedgerQuerySerializer],
        description=("Every ledger row of the sprite's user started in the month (UTC), one per line, and a last "
                     "`total` line that equals the console's \"This month\" for their sprites."),
        responses={(200, "text/csv"): OpenApiTypes.STR, 400: _error(400, "Bad month (`invalid`)."), **AUTH,
                   404: _error(404, "No such sprite among yours (`not_found`)."),
                   429: _error(429, "Too many requests (`throttled`); see Retry-After.")},
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, CSVRenderer])
    def ledger(self, request, id=None):
        query = LedgerQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        sprite = self._sprite_for_money()
        month = exports.parse_month(query.validated_data.get("month"))
        text, total = exports.ledger_csv(sprite, month)
        response = HttpResponse(text, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{exports.filename(sprite, month)}"'
        response["X-Total-Cost-USD"] = str(total)
        return response
