"""The DRF API a frontend calls: one ViewSet scoped to the signed-in user.

Views only call `sprites.services`. Every error is JSON with a stable `code` (see
`sprites.api.errors`); another user's sprite
and a malformed id are both 404, so ids reveal nothing.
"""

import uuid

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import exceptions, serializers, viewsets
from rest_framework import status as http
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from sprites import modelaccess, openclaw, services
from sprites.api.budgets import MoneyActions
from sprites.api.serializers import (
    DashboardLinkSerializer,
    ErrorSerializer,
    ModelKeySerializer,
    PairingApprovedSerializer,
    PairingListSerializer,
    SpriteSerializer,
    SpriteStatusSerializer,
    StatusQuerySerializer,
)
from sprites.api.throttles import SpriteActionThrottle, SpriteReadThrottle
from sprites.logcontext import bind_sprite
from sprites.models import UserSprite
from sprites.services.modelkeys import set_model_key

PROVISION_OUTCOMES = {"ready": http.HTTP_201_CREATED, "provisioning": http.HTTP_202_ACCEPTED,
                      "existing": http.HTTP_200_OK}


# --- Schema helpers ------------------------------------------------------------------------------

ERRORS = {
    400: "Malformed body, query or id (`parse_error`, `invalid`, `invalid_request_id`).",
    401: "No or bad credentials (`not_authenticated`, `authentication_failed`).",
    403: "Session without a valid CSRF token (`csrf_failed`).",
    404: "No such sprite among yours, or a malformed id (`not_found`).",
    402: "The monthly budget of the sprite's user, or the fleet's cap, is spent (`over_budget`).",
    409: "The sprite is not in a state that allows this (`invalid_state`).",
    413: "The request body is too large (`request_too_large`).",
    429: "Too many requests that reach a sprite (`throttled`); see Retry-After.",
    502: "Sprites or the command in the sprite refused (`sprites_error`, `gateway_failed`, `command_failed`).",
    503: "The Sprites API is unavailable (`sprites_unavailable`); see Retry-After.",
}


def errors(*codes: int) -> dict:
    return {code: OpenApiResponse(ErrorSerializer, description=ERRORS[code]) for code in codes}


AUTH = (401, 403)
SPRITE_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The sprite's public id.")
ACTION_ERRORS = errors(*AUTH, 400, 404, 409, 413, 429, 502, 503)


def _check_body(request) -> None:
    """These actions take no input, but a malformed body is still the client's error (400),
    never silently ignored."""
    data = request.data  # parses now: broken (or absurdly nested) JSON raises ParseError
    if data and not hasattr(data, "keys"):
        raise exceptions.ValidationError({"non_field_errors": ["Expected a JSON object or an empty body."]})


# --- The ViewSet ----------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Your sprites", responses={200: SpriteSerializer(many=True), **errors(*AUTH)}),
    retrieve=extend_schema(
        summary="One of your sprites", parameters=[SPRITE_ID],
        responses={200: SpriteSerializer, **errors(*AUTH, 404)},
    ),
)
class SpriteViewSet(MoneyActions, viewsets.ReadOnlyModelViewSet):
    """The caller's own sprites. Staff see only their own here too: the admin is their tool."""

    serializer_class = SpriteSerializer
    # Token first: an unauthenticated call then gets a 401 with `WWW-Authenticate: Token`
    # (with the session first, DRF can only answer 403).
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    throttled_actions = frozenset({"provision", "start", "stop", "rotate_token", "approve_device", "dashboard_link",
                                   "model_key"})

    def get_queryset(self):
        return UserSprite.objects.filter(user=self.request.user).order_by("-created_at", "-pk")

    def get_throttles(self):
        if self.action in self.throttled_actions:
            return [SpriteActionThrottle()]
        if self.action in ("devices", "ledger") or (self.action == "status" and self._refresh_asked()):
            return [SpriteReadThrottle()]
        return super().get_throttles()

    def _refresh_asked(self) -> bool:
        """`?refresh=` as the status action will read it (an invalid value is its 400, unthrottled)."""
        query = StatusQuerySerializer(data=self.request.query_params)
        return query.is_valid() and query.validated_data["refresh"]

    def get_object(self) -> UserSprite:
        try:
            public_id = uuid.UUID(str(self.kwargs[self.lookup_url_kwarg]))
        except ValueError:
            raise exceptions.NotFound() from None
        sprite = get_object_or_404(self.get_queryset(), public_id=public_id)
        self.check_object_permissions(self.request, sprite)
        bind_sprite(sprite.public_id)  # every later log line of this request names it
        return sprite

    def _status(self, sprite: UserSprite, code: int = http.HTTP_200_OK) -> Response:
        response = Response(SpriteStatusSerializer(sprite).data, status=code)
        if code == http.HTTP_201_CREATED:  # the sprite now exists, here
            response["Location"] = self.request.build_absolute_uri(
                reverse("sprites:sprite-detail", kwargs={"id": sprite.public_id}))
        elif code == http.HTTP_202_ACCEPTED:  # being set up: poll this
            response["Location"] = self.request.build_absolute_uri(
                reverse("sprites:sprite-status", kwargs={"id": sprite.public_id}))
        return response

    @extend_schema(
        summary="Provision your sprite",
        description=(
            "Idempotent. 201: claimed from the warm pool and online now (`Location`: the sprite). 202: the "
            "pool was empty; a new sprite is being set up (`Location`: its status, to poll). 200: you "
            "already have one (any status)."
        ),
        request=None,
        responses={
            200: OpenApiResponse(SpriteStatusSerializer, description="Your existing sprite."),
            201: OpenApiResponse(SpriteStatusSerializer, description="Ready, from the warm pool."),
            202: OpenApiResponse(SpriteStatusSerializer, description="Being set up (status `provisioning`)."),
            **errors(*AUTH, 400, 413, 429, 502, 503),
        },
    )
    @action(detail=False, methods=["post"])
    def provision(self, request):
        _check_body(request)
        sprite, outcome = services.provision_sprite(user=request.user)
        bind_sprite(sprite.public_id)
        return self._status(sprite, PROVISION_OUTCOMES[outcome])

    @extend_schema(
        summary="Status, runtime, cost and how to connect",
        description=(
            "Served from the database (no Sprites call) unless `refresh=1` (throttled: THROTTLE_SPRITE_READS). "
            "`gateway_token` is full admin of your gateway: send it only in the WebSocket connect frame "
            "(params.auth.token)."
        ),
        parameters=[SPRITE_ID, StatusQuerySerializer],
        responses={200: SpriteStatusSerializer, **errors(*AUTH, 400, 404, 429, 502, 503)},
    )
    @action(detail=True, methods=["get"])
    def status(self, request, id=None):
        query = StatusQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        sprite = self.get_object()
        if query.validated_data["refresh"]:
            sprite = services.refresh_status(sprite=sprite, actor=request.user)
        return self._status(sprite)

    @extend_schema(summary="Start the gateway (wakes the sprite)", request=None, parameters=[SPRITE_ID],
                   responses={200: SpriteStatusSerializer, **ACTION_ERRORS, **errors(402)})
    @action(detail=True, methods=["post"])
    def start(self, request, id=None):
        _check_body(request)
        return self._status(services.start_sprite(sprite=self.get_object(), actor=request.user))

    @extend_schema(summary="Stop the gateway (the sprite sleeps)", request=None, parameters=[SPRITE_ID],
                   responses={200: SpriteStatusSerializer, **ACTION_ERRORS})
    @action(detail=True, methods=["post"])
    def stop(self, request, id=None):
        _check_body(request)
        return self._status(services.stop_sprite(sprite=self.get_object(), actor=request.user))

    @extend_schema(summary="Rotate the gateway token", request=None, parameters=[SPRITE_ID],
                   description="The old token stops working; the gateway restarts. Returns the new token.",
                   responses={200: SpriteStatusSerializer, **ACTION_ERRORS})
    @action(detail=True, methods=["post"], url_path="rotate-token")
    def rotate_token(self, request, id=None):
        _check_body(request)
        return self._status(services.rotate_gateway_token(sprite=self.get_object(), actor=request.user))

    @extend_schema(
        summary="Bring your own model key", request=ModelKeySerializer, parameters=[SPRITE_ID],
        description=(
            "Only when the platform runs with MODEL_ACCESS=byo (else 409 `model_access_not_byo`); staff may set it "
            "on any user's sprite. Your own "
            "provider key and OpenAI-compatible base URL: stored encrypted, never returned, rendered into your "
            "sprite's OpenClaw config (the gateway restarts with a new token, as on a rotation). You pay the "
            "provider directly."
        ),
        responses={200: SpriteStatusSerializer, **ACTION_ERRORS},
    )
    @action(detail=True, methods=["put"], url_path="model-key")
    def model_key(self, request, id=None):
        body = ModelKeySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        sprite = self._any_users_sprite() if request.user.is_staff else self.get_object()
        sprite = set_model_key(sprite=sprite, actor=request.user, **body.validated_data)
        if sprite.user_id != request.user.pk:  # staff for a user: never that user's gateway token
            return Response({"id": str(sprite.public_id), "model_access": modelaccess.status_of(sprite)})
        return self._status(sprite)

    def _any_users_sprite(self) -> UserSprite:
        """Staff may set a user's model key (the issue: "the user, or staff"): any assigned sprite."""
        try:
            public_id = uuid.UUID(str(self.kwargs[self.lookup_url_kwarg]))
        except ValueError:
            raise exceptions.NotFound() from None
        sprite = get_object_or_404(UserSprite.objects.filter(user__isnull=False), public_id=public_id)
        bind_sprite(sprite.public_id)
        return sprite

    @extend_schema(summary="Pending browser pairing requests", parameters=[SPRITE_ID],
                   description="Runs `openclaw devices list` in the sprite (throttled: THROTTLE_SPRITE_READS).",
                   responses={200: PairingListSerializer, **errors(*AUTH, 404, 409, 429, 502, 503)})
    @action(detail=True, methods=["get"])
    def devices(self, request, id=None):
        return Response({"pending": services.list_pairing_requests(sprite=self.get_object())})

    @extend_schema(
        summary="Approve a browser pairing request",
        request=None,
        parameters=[SPRITE_ID, OpenApiParameter("request_id", OpenApiTypes.STR, OpenApiParameter.PATH,
                                                pattern=openclaw.SAFE_REQUEST_ID.pattern,
                                                description="`requestId` from the devices list.")],
        responses={200: PairingApprovedSerializer, **errors(*AUTH, 400, 404, 409, 413, 429, 502, 503)},
    )
    @action(detail=True, methods=["post"], url_path=r"devices/(?P<request_id>[^/]+)/approve")
    def approve_device(self, request, id=None, request_id=None):
        _check_body(request)
        sprite = self.get_object()
        return Response(services.approve_pairing_request(sprite=sprite, request_id=request_id, actor=request.user))

    @extend_schema(
        summary="A single-use browser link to the Control UI",
        description="Valid 10 minutes, once. The browser connects without the frontend holding the token.",
        request=None, parameters=[SPRITE_ID],
        responses={200: DashboardLinkSerializer, **ACTION_ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="dashboard-link")
    def dashboard_link(self, request, id=None):
        _check_body(request)
        link = services.create_dashboard_link(sprite=self.get_object(), actor=request.user)
        return Response(DashboardLinkSerializer(link).data)


class ObtainTokenView(ObtainAuthToken):
    """`POST /api/auth/token` with `username` and `password`: the caller's DRF token, for a
    frontend on another origin (cross-origin calls use `Authorization: Token …`, no cookies).
    Throttled per client address (THROTTLE_AUTH) against password guessing: the socket's peer, or
    the address TRUSTED_PROXY_COUNT proxies put in X-Forwarded-For, never one a client chose."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"
    renderer_classes = [JSONRenderer]
    parser_classes = api_settings.DEFAULT_PARSER_CLASSES  # ObtainAuthToken pins DRF's own

    @extend_schema(
        operation_id="auth_token",
        request=AuthTokenSerializer,
        responses={
            200: OpenApiResponse(
                inline_serializer("AuthTokenResponse", {"token": serializers.CharField()}), description="The user's token."
            ),
            400: OpenApiResponse(description="Wrong credentials or missing fields (`code`: `invalid`)."),
            413: OpenApiResponse(description="The request body is too large (`code`: `request_too_large`)."),
            429: OpenApiResponse(description="Too many attempts (`code`: `throttled`)."),
        },
        tags=["auth"],
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)
