"""`GET /api/costs/projection` (staff): the fleet's projected month from the heartbeat
schedule, with its breakdown, and with what-if query parameters (`?interval=30&idle=15&pool=5`,
`turn`, `rate`, `storage_rate`, `storage_gb`, `card=guide|published`) the same projection
under that schedule beside today's (sprites.selectors.fleet_projection)."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions
from rest_framework import status as http
from rest_framework.response import Response
from rest_framework.views import APIView

from sprites import selectors
from sprites.billing.schedule import KEYS, Schedule, WhatIfError


def _json(projection: dict) -> dict:
    return {key: (str(value) if value is not None and not isinstance(value, (int, dict)) else value)
            for key, value in projection.items()}


class ProjectionView(APIView):
    permission_classes = [permissions.IsAdminUser]

    @extend_schema(
        operation_id="costs_projection",
        summary="The fleet's projected month from the schedule, and a what-if beside it (staff)",
        parameters=[OpenApiParameter(key, str, required=False) for key in [*KEYS, "card"]],
        responses={200: OpenApiResponse(description="`{today: projection, what_if: projection | null}`; each "
                                                    "projection has `total_usd`, `per_user_usd`, `heartbeat_usd`, "
                                                    "`user_usd`, `storage_usd`, `users`, `pool`, `wakes_per_month`, "
                                                    "`billed_seconds_per_wake` and its `schedule`."),
                   400: OpenApiResponse(description="A what-if value is wrong (`code`: `invalid_what_if`)."),
                   403: OpenApiResponse(description="Not staff.")},
        tags=["costs"],
    )
    def get(self, request):
        today = Schedule.current()
        asked = {key: value for key, value in request.query_params.items() if key in KEYS or key == "card"}
        unknown = sorted(set(request.query_params) - set(asked))
        try:
            if unknown:
                raise WhatIfError(f"Unknown what-if key {unknown[0]!r}: use {', '.join([*KEYS, 'card'])}.")
            other = today.what_if(asked) if asked else None
        except WhatIfError as exc:
            return Response({"code": "invalid_what_if", "detail": str(exc)}, status=http.HTTP_400_BAD_REQUEST)
        return Response({
            "today": _json(selectors.fleet_projection(schedule=today)),
            "what_if": _json(selectors.fleet_projection(schedule=other)) if other else None,
        })
