"""Bring your own model key (MODEL_ACCESS=byo, issue 15): the owner (or staff) sets their own
provider key and OpenAI-compatible base URL; it is stored encrypted and rendered into their
sprite's OpenClaw config. The key is never logged, never returned, never in an event."""

import time

from django.conf import settings

from sprites import modelaccess
from sprites.client import SpritesError, get_client
from sprites.models import UserSprite

from .errors import SpriteActionError
from .events import fail, log_event, ms_since
from .lifecycle import rotate_gateway_token


def set_model_key(*, sprite: UserSprite, base_url: str, api_key: str, actor) -> UserSprite:
    """Store the key, allow its host in the sprite's egress policy, and apply it now when the
    sprite is in service (a token rotation: the config is rewritten and the gateway restarted);
    otherwise it is rendered at the sprite's next activation or rotation."""
    if settings.MODEL_ACCESS != "byo":
        raise SpriteActionError("Model keys are not brought by users here (MODEL_ACCESS is not byo).",
                                code="model_access_not_byo")
    if actor is None or (actor.pk != sprite.user_id and not actor.is_staff):
        raise SpriteActionError("Only the sprite's owner or staff can set its model key.", code="permission_denied")
    t0 = time.monotonic()
    try:
        modelaccess.set_own_key(sprite, base_url=base_url, api_key=api_key)
    except ValueError as exc:
        raise SpriteActionError(str(exc), code="invalid_model_key") from None
    if sprite.status in UserSprite.IN_SERVICE:
        try:
            rules = [{"domain": d, "action": "allow"} for d in modelaccess.allowed_domains(base_url)]
            get_client().set_network_policy(sprite.sprite_name, rules + [{"domain": "*", "action": "deny"}])
        except SpritesError as exc:
            fail(sprite, action="set_model_key", actor=actor, exc=exc, started=t0)
            raise
        sprite = rotate_gateway_token(sprite=sprite, actor=actor)
    log_event(sprite=sprite, action="set_model_key", actor=actor, detail="own model key set (byo)",
              duration_ms=ms_since(t0))
    return sprite
