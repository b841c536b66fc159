"""Checkpoints: create, list, get, restore.

A mixin of `EmulatorState` (state.py). A checkpoint is a `Snapshot` of the sprite's
filesystem (models.py); creating or restoring one is an instant activity.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from .errors import ApiError
from .formats import rfc3339
from .models import Checkpoint, Sprite


class CheckpointsMixin:
    def create_checkpoint(self, name: str, body: Any) -> Iterator[dict]:
        comment = ""
        if isinstance(body, dict) and body.get("comment") is not None:
            comment = str(body["comment"])
        elif body not in (None, {}) and not isinstance(body, dict):
            raise ApiError(400, {"error": "request body must be a JSON object"})
        with self.lock:
            sprite = self._get(name)
            now = self.now()
            self._touch(sprite, now)
            checkpoint_id = f"v{sprite.next_checkpoint}"
            sprite.next_checkpoint += 1
            wall = self.wall(now)
            sprite.checkpoints.append(Checkpoint(checkpoint_id, wall, comment, sprite.snapshot()))
        created = datetime.fromtimestamp(wall, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        # The text lines of a recorded real response (sprites-ruby checkpoints_create.yml).
        return self._progress([
            ("info", "Creating checkpoint..."),
            ("info", "Checkpoint created successfully"),
            ("info", "\nCheckpoint Details:"),
            ("info", f"  ID: {checkpoint_id}"),
            ("info", f"  Created: {created}"),
            ("info", f"  Path: checkpoints/{checkpoint_id}"),
            ("complete", f"Checkpoint {checkpoint_id} created successfully"),
        ])

    def list_checkpoints(self, name: str) -> list:
        with self.lock:
            sprite = self._get(name)
            current = {"id": "Current", "create_time": rfc3339(self.wall(self.now()), seconds=True),
                       "is_auto": False}
            return [current] + [c.to_json() for c in reversed(sprite.checkpoints)]

    def get_checkpoint(self, name: str, checkpoint_id: str) -> dict:
        with self.lock:
            return self._checkpoint(self._get(name), checkpoint_id).to_json()

    @staticmethod
    def _checkpoint(sprite: Sprite, checkpoint_id: str) -> Checkpoint:
        for checkpoint in sprite.checkpoints:
            if checkpoint.id == checkpoint_id:
                return checkpoint
        raise ApiError(404, {"error": "checkpoint not found"})

    def restore_checkpoint(self, name: str, checkpoint_id: str) -> Iterator[dict]:
        """Replace the filesystem, terminate sessions; services come back stopped."""
        with self.lock:
            sprite = self._get(name)
            snap = self._checkpoint(sprite, checkpoint_id).snapshot
            self._touch(sprite, self.now())
            if self._behavior(name).get("restore_fails"):
                failed = {"type": "error", "error": "restore failed: overlay could not be mounted (emulated)",
                          "time": rfc3339(self.wall(self.now()), nanos=True)}
                return iter([*self._progress([("info", f"Restoring from checkpoint {checkpoint_id}...")]), failed])
            self._cancel_sessions(sprite)
            sprite.files, sprite.dirs = dict(snap.files), set(snap.dirs)
            sprite.services = {n: s.definition() for n, s in snap.services.items()}
            sprite.openclaw_installed = snap.openclaw_installed
            sprite.config_corrupt = snap.config_corrupt
            sprite.pending, sprite.paired = copy.deepcopy(snap.pending), copy.deepcopy(snap.paired)
        # The text lines of a recorded real response (sprites-ruby checkpoints_restore.yml).
        return self._progress([
            ("info", f"Restoring from checkpoint {checkpoint_id}..."),
            ("info", "Container components started successfully"),
            ("complete", f"Restore from {checkpoint_id} complete"),
        ])

    def _progress(self, lines: list[tuple[str, str]]) -> Iterator[dict]:
        """The NDJSON events of a checkpoint operation, each stamped with its `time`."""
        return iter([{"type": kind, "data": data, "time": rfc3339(self.wall(self.now()), nanos=True)}
                     for kind, data in lines])
