"""The data model: one sprite per user (`sprite`), the append-only usage ledger and its daily
rollup (`ledger`), and lifecycle events (`events`)."""

from sprites.models.events import LifecycleEvent
from sprites.models.ledger import HOURS_PER_MONTH, ZERO, SpriteDailyCost, UsageRecord
from sprites.models.sprite import UserSprite

__all__ = ["HOURS_PER_MONTH", "ZERO", "LifecycleEvent", "SpriteDailyCost", "UsageRecord", "UserSprite"]
