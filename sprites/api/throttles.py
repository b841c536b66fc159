"""Per-user throttles for everything that reaches a sprite. Their counters live in the shared
cache (settings.CACHES: the database), so a budget is one budget across every worker and host.

- `SpriteActionThrottle` (THROTTLE_SPRITE_ACTIONS): provision, start, stop, rotate-token, device
  approval and dashboard links: each costs Sprites calls and may wake (and bill) a sprite.
- `SpriteReadThrottle` (THROTTLE_SPRITE_READS): the reads that run work too: `devices` (an
  `openclaw devices list` exec in the sprite, which wakes it) and `status?refresh=1` (a Sprites
  API call). A budget of its own, so a frontend polling them cannot starve the actions.
"""

from rest_framework.throttling import UserRateThrottle


class SpriteActionThrottle(UserRateThrottle):
    scope = "sprite_actions"


class SpriteReadThrottle(UserRateThrottle):
    scope = "sprite_reads"
