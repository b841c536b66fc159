"""Per-user throttle for the actions that reach the Sprites API (rate: THROTTLE_SPRITE_ACTIONS)."""

from rest_framework.throttling import UserRateThrottle


class SpriteActionThrottle(UserRateThrottle):
    """One budget per user shared by provision, start, stop, rotate-token, device approval and
    dashboard links: each costs Sprites calls and may wake (and bill) a sprite."""

    scope = "sprite_actions"
