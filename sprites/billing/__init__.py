"""The one bill: what every ledger row costs, its idempotency key, and the ledger writes.

- `pricing`: the rate card (settings) applied to seconds and hours, and the rounding;
- `usage`: `Usage`, the row to write, with one builder and one key per kind: `active` (a wake
  ClawDirector caused: wall time plus the idle tail before the sprite sleeps), `llm` (model
  spend a turn reported), `storage_hour`, `user_session` (running time nothing of ours caused,
  estimated by `sessions` from two samples of the VM); `wake` is what one wake bills;
- `ledger`: `record_usage`, which writes each key once and keeps the totals and the daily
  rollup equal to the ledger, in one transaction.

Services and the heartbeat build rows only through here; nothing else writes the ledger.
"""

from sprites.billing.ledger import billed_until, record_usage, retry_deadlocks
from sprites.billing.pricing import active_cost, round_cost, round_seconds, storage_cost, storage_cost_per_hour
from sprites.billing.usage import Usage, active, llm, storage_hour, user_session, wake

__all__ = [
    "billed_until",
    "Usage", "active", "active_cost", "llm", "record_usage", "retry_deadlocks", "round_cost", "round_seconds",
    "storage_cost", "storage_cost_per_hour", "storage_hour", "user_session", "wake",
]
