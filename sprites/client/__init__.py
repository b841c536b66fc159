"""The Sprites REST API client, the only code that speaks HTTP to Sprites: `http` (the client
and its retries), `checkpoints` (its checkpoint calls), `errors` (the exception family),
`types` (typed results), `wire` (reading error bodies, exec frames and NDJSON streams); and
`gateway`, the end-to-end check of a gateway through its sprite URL (no org token)."""

from .errors import (
    CheckpointDeleteUnsupported,
    SpriteNotFound,
    SpritesAuthFailed,
    SpritesBadRequest,
    SpritesCapacityExceeded,
    SpritesConflict,
    SpritesError,
    SpritesRateLimited,
    SpritesUnavailable,
)
from .gateway import check_gateway, ws_exchange
from .http import SpritesClient, get_client
from .types import Checkpoint, ExecResult, OrgInfo, Service, Sprite, StreamEvent, parse_checkpoint_id
from .wire import parse_exec_body, parse_exec_frames

__all__ = [
    "Checkpoint", "CheckpointDeleteUnsupported", "ExecResult", "OrgInfo", "Service", "Sprite", "SpriteNotFound",
    "SpritesAuthFailed", "SpritesBadRequest", "SpritesCapacityExceeded",
    "SpritesClient", "SpritesConflict", "SpritesError", "SpritesRateLimited", "SpritesUnavailable", "StreamEvent",
    "check_gateway", "get_client", "ws_exchange", "parse_checkpoint_id", "parse_exec_body", "parse_exec_frames",
]
