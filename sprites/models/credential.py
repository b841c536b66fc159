"""Each sprite's model credential (issue 15): what its OpenClaw uses to call a model.

One row per key: a sprite has at most one active (not revoked) credential, minted for the user
who holds the sprite; rotation and revocation keep the old row (revoked) with its last spend. `api_key` is encrypted at rest (like the gateway token),
never logged, shown to nobody: it only travels into the sprite's openclaw.json. `key_id` is
the proxy's handle on a LiteLLM virtual key (its hashed `token`, not a secret), used for
`/key/info`, `/key/update` and `/key/delete`. A BYO credential is the user's own provider key
and base URL (`backend = "byo"`, no `key_id`).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from sprites.fields import EncryptedTextField


class ModelCredential(models.Model):
    class Backend(models.TextChoices):
        LITELLM = "litellm", "LiteLLM virtual key"
        BYO = "byo", "Bring your own key"

    sprite = models.ForeignKey("sprites.UserSprite", on_delete=models.PROTECT, related_name="model_credentials")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    backend = models.CharField(max_length=10, choices=Backend.choices)
    base_url = models.CharField(max_length=500)
    api_key = EncryptedTextField(blank=True)
    key_id = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Since when the proxy has said the key's spend reached its max_budget (it refuses its
    # calls); cleared when it no longer does (a new budget window, a raised budget).
    over_budget_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "sprite_model_credentials"
        constraints = [models.UniqueConstraint(fields=["sprite"], condition=Q(revoked_at__isnull=True),
                                               name="one_active_model_credential_per_sprite")]

    def __str__(self) -> str:  # never the key
        return f"{self.backend} credential of sprite {self.sprite_id}"

    def __repr__(self) -> str:
        return f"<ModelCredential {self.backend} sprite={self.sprite_id} revoked={self.revoked_at is not None}>"

    @property
    def usable(self) -> bool:
        return bool(self.api_key and self.base_url and self.revoked_at is None)
