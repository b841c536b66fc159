"""Every multi-step or Sprites-touching operation on a sprite. The API, the console, the
commands and the heartbeat call these; none of them calls the Sprites client itself.

Conventions:
- keyword-only arguments; `actor` is the user who asked (None = the system);
- every action writes a `LifecycleEvent`, and on failure stores the error on the row
  ("<action>: <message>") and re-raises the `SpritesError` (or a `SpriteActionError`);
- no database transaction or row lock is ever held across a Sprites HTTP call: rows are
  claimed with short conditional UPDATEs (on the model), then the HTTP work runs, then the
  result is saved;
- every wake ClawDirector causes is billed through `sprites.billing`.

Rooms: `provisioning` (a user's sprite, set-up, resume), `pool` (the warm pool), `lifecycle`
(start, stop, refresh, rotate, destroy, VM states), `sampling` (every read of the VM states
bills the users' own sessions, cause `user`), `pairing` (browser devices, dashboard
links), `heartbeat` (one turn in one sprite), `verify` and `heal` (the gateway checked through its
URL after a wake; restart, restore, alert), `reconcile` (the provider's inventory against the
database), `storage` (hourly accrual), `metrics` (API call
counts into the database, the API check `/readyz` makes), `events` and `errors` (what they
share).
"""

from .errors import CommandFailed, GatewayFailed, PairingRequestNotFound, SpriteActionError
from .events import log_event
from .heal import alert, heal_fleet, restore_golden
from .heartbeat import Outcome, Target, WakeResult, read_org, run_turn, settle_budget
from .lifecycle import (
    destroy_sprite,
    refresh_status,
    rotate_gateway_token,
    start_sprite,
    stop_sprite,
    sync_vm_states,
)
from .metrics import persist_api_calls, sprites_api_problem
from .pairing import approve_pairing_request, create_dashboard_link, list_pairing_requests
from .pool import fill_pool
from .provisioning import new_sprite_name, provision_sprite, resume_stuck_provisioning, run_provisioning
from .reconcile import reconcile_if_due
from .storage import accrue_storage

__all__ = [
    "CommandFailed", "GatewayFailed", "Outcome", "PairingRequestNotFound", "SpriteActionError", "Target",
    "WakeResult", "accrue_storage", "alert", "approve_pairing_request", "create_dashboard_link", "destroy_sprite",
    "fill_pool", "heal_fleet", "list_pairing_requests", "log_event", "new_sprite_name", "provision_sprite", "refresh_status",
    "persist_api_calls", "read_org", "reconcile_if_due", "restore_golden", "resume_stuck_provisioning",
    "rotate_gateway_token", "run_provisioning", "run_turn", "settle_budget",
    "sprites_api_problem", "start_sprite", "stop_sprite", "sync_vm_states",
]
