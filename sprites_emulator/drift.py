"""Faults of a fleet that drifts (issue 14): an orphan (a sprite made behind the control
plane's back), a ghost (a sprite deleted behind its back), a gateway that does not come back
after a wake (crashed, or a corrupt config only a restore cures), a checkpoint that fails to
restore; and the checkpoint delete the heal's pruning uses.

A mixin of `EmulatorState` (state.py). The wake faults are per-sprite behaviours
(control.py) that fire once, on the sprite's next wake, and are then spent.
"""

from __future__ import annotations

from typing import Any

from .errors import ApiError
from .models import Checkpoint, Service, Sprite

# One-shot behaviours: the next wake of the sprite consumes them.
WAKE_FAULTS = ("gateway_crash_on_wake", "gateway_corrupt_on_wake")


class DriftMixin:
    def make_orphan(self, name: str, body: Any = None) -> dict:
        """A sprite created out of band (no HTTP fault, not counted). Body: `labels`, and for
        one that looks set up, `checkpoint_comment` (a checkpoint with that comment, taken with
        OpenClaw installed and a stopped gateway service); `age_seconds` backdates it."""
        body = body if isinstance(body, dict) else {}
        made = self.create_sprite({"name": name, "labels": body.get("labels") or []})
        with self.lock:
            sprite = self._get(name)
            age = float(body.get("age_seconds") or 0)
            sprite.created_at -= age
            sprite.updated_at -= age
            comment = body.get("checkpoint_comment")
            if comment:
                sprite.openclaw_installed = True
                sprite.services["openclaw-gateway"] = Service("openclaw-gateway", "openclaw", ["gateway"],
                                                              http_port=8080)
                checkpoint_id = f"v{sprite.next_checkpoint}"
                sprite.next_checkpoint += 1
                sprite.checkpoints.append(Checkpoint(checkpoint_id, sprite.created_at, str(comment),
                                                     sprite.snapshot()))
            return self._sprite_json(sprite, self.now()) if (age or comment) else made

    def vanish(self, name: str) -> None:
        """A ghost: the sprite is deleted behind the control plane's back (its meter kept)."""
        self.delete_sprite(name)

    def delete_checkpoint(self, name: str, checkpoint_id: str) -> None:
        with self.lock:
            sprite = self._get(name)
            for i, checkpoint in enumerate(sprite.checkpoints):
                if checkpoint.id == checkpoint_id:
                    del sprite.checkpoints[i]
                    return
        raise ApiError(404, {"error": "checkpoint not found"})

    def _on_wake(self, sprite: Sprite) -> None:
        """Under the lock, when a period of running opens: spend a one-shot wake fault."""
        mine = self.behaviors.get(sprite.name)
        if not mine or not any(mine.get(key) for key in WAKE_FAULTS):
            return
        corrupt = bool(mine.pop("gateway_corrupt_on_wake", False))
        crash = bool(mine.pop("gateway_crash_on_wake", False))
        if corrupt:
            sprite.config_corrupt = True  # in the filesystem: a checkpoint from before cures it
        gateway = sprite.gateway()
        if (crash or corrupt) and gateway is not None and gateway.status == "running":
            gateway.status, gateway.pid = "failed", None
            gateway.error = "exited with code 78" if corrupt else "killed by signal 9"
