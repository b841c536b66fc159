"""The data model: one sprite per user (`sprite`), the append-only usage ledger and its daily
rollup (`ledger`), lifecycle events (`events`), gateway health and known-good checkpoints
(`health`), reconciliation runs (`reconcile`), the counters `/metrics` reads (`counters`),
each sprite's model credential (`credential`), notifications (`notification`), and the usage
sampler's last observation (`samples`)."""

from sprites.models.counters import Counter
from sprites.models.credential import ModelCredential
from sprites.models.events import LifecycleEvent
from sprites.models.health import KnownGoodCheckpoint
from sprites.models.ledger import HOURS_PER_MONTH, ZERO, SpriteDailyCost, UsageRecord
from sprites.models.notification import Notification
from sprites.models.reconcile import ReconcileRun
from sprites.models.samples import VMSample
from sprites.models.sprite import UserSprite

__all__ = [
    "HOURS_PER_MONTH", "ZERO", "Counter", "KnownGoodCheckpoint", "LifecycleEvent", "ModelCredential",
    "Notification", "ReconcileRun", "SpriteDailyCost", "UsageRecord", "UserSprite", "VMSample",
]
