"""Checkpoints of a sprite: create, list, get, restore, delete (a mixin of `SpritesClient`;
shapes: ../shared/sprites-api.md section 4)."""

from __future__ import annotations

from .errors import CheckpointDeleteUnsupported, SpriteNotFound, SpritesBadRequest, SpritesUnavailable
from .types import Checkpoint, StreamEvent, parse_checkpoint_id
from .wire import raise_stream_error, seg, stream_events


class CheckpointsMixin:
    def create_checkpoint(self, name: str, *, comment: str = "") -> str:
        """Create a checkpoint and return its id, parsed from the stream's text."""
        body = {"comment": comment} if comment else {}
        response = self._request("POST", f"/sprites/{seg(name)}/checkpoint", json_body=body,
                                 stream=True, read_timeout=max(self.read_timeout, 300))
        events = stream_events(response)
        raise_stream_error(events, f"checkpoint of sprite {name}")
        checkpoint_id = parse_checkpoint_id(events)
        if not checkpoint_id:
            raise SpritesUnavailable(f"Checkpoint of sprite {name} gave no id", code="no_checkpoint_id")
        return checkpoint_id

    def list_checkpoints(self, name: str) -> list[Checkpoint]:
        data = self._json(self._request("GET", f"/sprites/{seg(name)}/checkpoints"))
        if isinstance(data, dict):
            data = data.get("checkpoints") or []
        # "Current" is a pseudo-entry for the live filesystem, not a checkpoint.
        return [Checkpoint.from_json(c) for c in data if isinstance(c, dict) and c.get("id") != "Current"]

    def get_checkpoint(self, name: str, checkpoint_id: str) -> Checkpoint:
        return Checkpoint.from_json(
            self._json(self._request("GET", f"/sprites/{seg(name)}/checkpoints/{seg(checkpoint_id)}"))
        )

    def restore_checkpoint(self, name: str, checkpoint_id: str) -> list[StreamEvent]:
        """Restore is idempotent (the same overlay again), so it is retried."""
        response = self._request("POST", f"/sprites/{seg(name)}/checkpoints/{seg(checkpoint_id)}/restore",
                                 stream=True, retry=True, read_timeout=max(self.read_timeout, 300))
        events = stream_events(response)
        raise_stream_error(events, f"restore of sprite {name}")
        return events

    def delete_checkpoint(self, name: str, checkpoint_id: str) -> None:
        """Delete one checkpoint; already gone counts as done. The REST path is UNCONFIRMED
        (sprites-api.md: the CLI has `sprite checkpoint delete`); this is the one the CLI's
        shape implies, and what the emulator answers. An API without that route answers 404
        (or 405) for the route itself, so a 404 counts as done only once the checkpoint is
        also gone from the list; else CheckpointDeleteUnsupported, never a kept checkpoint
        counted as deleted."""
        try:
            self._request("DELETE", f"/sprites/{seg(name)}/checkpoints/{seg(checkpoint_id)}", ok=(200, 204))
            return
        except SpriteNotFound:
            pass
        except SpritesBadRequest as exc:
            if exc.status_code != 405:
                raise
        if any(c.id == checkpoint_id for c in self.list_checkpoints(name)):
            raise CheckpointDeleteUnsupported(
                f"The Sprites API did not delete checkpoint {checkpoint_id} of sprite {name}: "
                "DELETE /v1/sprites/{name}/checkpoints/{id} is not a route it has", code="checkpoint_delete_unsupported")
