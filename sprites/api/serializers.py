"""Read-only shapes of the API. No business logic: the figures are model properties."""

from urllib.parse import urlsplit, urlunsplit

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sprites import modelaccess, selectors
from sprites.billing import budget
from sprites.models import UserSprite


def websocket_url(url: str) -> str:
    """The gateway's WebSocket is at the root of the sprite URL: https → wss, http → ws."""
    if not url:
        return ""
    parts = urlsplit(url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


class SpriteSerializer(serializers.ModelSerializer):
    """A sprite in a list or on its own (no token: that is only in the status)."""

    id = serializers.UUIDField(source="public_id", read_only=True)

    class Meta:
        model = UserSprite
        fields = [
            "id", "sprite_name", "status", "vm_state", "gateway_url", "last_heartbeat", "last_error",
            "created_at", "assigned_at",
        ]
        read_only_fields = fields


class SpriteStatusSerializer(serializers.ModelSerializer):
    """What a frontend polls: state, runtime, cost, and how to connect (owner only)."""

    id = serializers.UUIDField(source="public_id", read_only=True)
    total_runtime_minutes = serializers.DecimalField(max_digits=20, decimal_places=2, read_only=True)
    total_runtime_hours = serializers.DecimalField(max_digits=20, decimal_places=2, read_only=True)
    cost_to_date_usd = serializers.DecimalField(
        source="total_cost_usd", max_digits=14, decimal_places=8, read_only=True
    )
    projected_monthly_cost_usd = serializers.SerializerMethodField(
        help_text="The schedule's projection for a month (docs/cost-model.md, \"Projection\"), USD."
    )
    projected_monthly = serializers.SerializerMethodField(
        help_text="Its breakdown (USD per month): `heartbeat_usd` (wakes × billed seconds per wake × rate), "
                  "`user_usd` (the user's sessions, last 7 days' average), `storage_usd`, `monthly_usd` (the sum)."
    )
    gateway_ws_url = serializers.SerializerMethodField(
        help_text="wss:// URL of the gateway's WebSocket (send the token in connect params.auth.token)."
    )
    gateway_token = serializers.CharField(
        read_only=True, help_text="Full admin of this user's gateway. Never put it in a URL."
    )
    model_access = serializers.SerializerMethodField(
        help_text=(
            "The sprite's model access (never its key): `backend` (\"\" none, \"litellm\", \"byo\"), "
            "`configured` (the sprite has a model credential), `over_budget` (the model proxy last said "
            "the budget is spent: heartbeat turns are refused until it resets)."
        )
    )

    budget = serializers.SerializerMethodField(
        help_text=(
            "The user's monthly budget: `monthly_budget_usd` (null: none), `spent_month_usd` (this calendar "
            "month, UTC), `percent`, `state` (`ok`, `warned` at BUDGET_WARN_PERCENT, `over`: the sprite is "
            "`over_budget` and a start answers 402)."
        )
    )
    gateway_health = serializers.SerializerMethodField(
        help_text=(
            "The end-to-end check of the gateway through the sprite URL after each wake: `healthy` (null "
            "until checked once), `last_good`, `last_bad`, `consecutive_failures`, `error`, and `healing` "
            "(\"\", \"restarted\", \"restored\" or \"needs_staff\")."
        )
    )

    class Meta:
        model = UserSprite
        fields = [
            "id", "status", "vm_state", "vm_state_checked_at", "last_heartbeat",
            "total_runtime_minutes", "total_runtime_hours", "cost_to_date_usd", "projected_monthly_cost_usd",
            "projected_monthly", "gateway_url", "gateway_ws_url", "gateway_token", "last_error", "last_error_at",
            "model_access", "budget", "gateway_health",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "object", "properties": {
        "monthly_budget_usd": {"type": "string", "nullable": True}, "spent_month_usd": {"type": "string"},
        "percent": {"type": "string", "nullable": True}, "state": {"type": "string", "enum": ["ok", "warned", "over"]}}})
    def get_budget(self, sprite: UserSprite) -> dict:
        return budget.budget_of(sprite).as_dict()

    @extend_schema_field({"type": "object", "properties": {
        "backend": {"type": "string"}, "configured": {"type": "boolean"}, "over_budget": {"type": "boolean"}}})
    def get_model_access(self, sprite: UserSprite) -> dict:
        return modelaccess.status_of(sprite)

    @extend_schema_field({"type": "object", "properties": {
        "healthy": {"type": "boolean", "nullable": True}, "last_good": {"type": "string", "nullable": True},
        "last_bad": {"type": "string", "nullable": True}, "consecutive_failures": {"type": "integer"},
        "error": {"type": "string"}, "healing": {"type": "string"}}})
    def get_gateway_health(self, sprite: UserSprite) -> dict:
        return sprite.gateway_health()

    def _projection(self, sprite: UserSprite) -> dict:
        if getattr(self, "_projected", (None,))[0] != sprite.pk:
            self._projected = (sprite.pk, selectors.sprite_projection(sprite))
        return self._projected[1]

    @extend_schema_field(OpenApiTypes.DECIMAL)
    def get_projected_monthly_cost_usd(self, sprite: UserSprite) -> str:
        return str(self._projection(sprite)["monthly_usd"])

    @extend_schema_field({"type": "object", "properties": {
        key: {"type": "string", "format": "decimal"} for key in ("heartbeat_usd", "user_usd", "storage_usd", "monthly_usd")}})
    def get_projected_monthly(self, sprite: UserSprite) -> dict:
        return {key: str(value) for key, value in self._projection(sprite).items()}

    @extend_schema_field(OpenApiTypes.STR)
    def get_gateway_ws_url(self, sprite: UserSprite) -> str:
        return websocket_url(sprite.gateway_url)


class StatusQuerySerializer(serializers.Serializer):
    refresh = serializers.BooleanField(
        required=False, default=False, help_text="Ask the Sprites API for the VM state first."
    )


class PairingRequestSerializer(serializers.Serializer):
    """One pending device pairing request, as OpenClaw lists it."""

    requestId = serializers.CharField()
    deviceId = serializers.CharField(required=False)
    displayName = serializers.CharField(required=False)
    platform = serializers.CharField(required=False)
    clientId = serializers.CharField(required=False)
    clientMode = serializers.CharField(required=False)
    role = serializers.CharField(required=False)
    roles = serializers.ListField(child=serializers.CharField(), required=False)
    scopes = serializers.ListField(child=serializers.CharField(), required=False)
    remoteIp = serializers.CharField(required=False)
    ts = serializers.IntegerField(required=False, help_text="When the browser asked, in ms since 1970.")


class PairingListSerializer(serializers.Serializer):
    pending = PairingRequestSerializer(many=True)


class PairingApprovedSerializer(serializers.Serializer):
    requestId = serializers.CharField()
    deviceId = serializers.CharField()
    displayName = serializers.CharField()


class DashboardLinkSerializer(serializers.Serializer):
    url = serializers.URLField(help_text="Single-use Control UI link; open it in the user's browser.")
    expires_at = serializers.DateTimeField(allow_null=True)


class ErrorSerializer(serializers.Serializer):
    """Every error answer."""

    code = serializers.CharField(help_text="Stable machine-readable code.")
    detail = serializers.CharField(help_text="Human message.")
    errors = serializers.DictField(required=False, help_text="Per-field messages (code `invalid`).")


class ModelKeySerializer(serializers.Serializer):
    """Your own model provider key (MODEL_ACCESS=byo): stored encrypted, never shown again."""

    base_url = serializers.URLField(max_length=500, help_text="OpenAI-compatible base URL, e.g. https://api.openai.com/v1")
    api_key = serializers.CharField(max_length=500, write_only=True, help_text="Your provider API key.")
