"""The sprites themselves: create, get, list, update, delete, upgrade, and the sprite URL.

A mixin of `EmulatorState` (state.py), which supplies the lock, the clocks and `_get`.
"""

from __future__ import annotations

import base64
import bisect
import itertools
import re
import uuid
from typing import Any

from .errors import ApiError
from .formats import one, rfc3339
from .models import Checkpoint, Sprite

# Fly's reference control plane enforces this (sprites-api.md, "Sprite name rules").
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*[a-z0-9]$")
MAX_NAME_LENGTH = 63
MAX_PAGE = 50  # docs: max_results is 1-50; larger values are clamped, not refused


class SpritesMixin:
    def _sprite_json(self, sprite: Sprite, now: float) -> dict:
        status = self.status(sprite, now)
        last_running = last_warming = None
        if sprite.run_start is not None:
            if status == "running":
                last_running = now
            else:
                last_running = last_warming = sprite.last_end + self.options.idle_seconds
            if last_warming is None:
                last_warming = sprite.previous_warming
        return {
            "id": sprite.id,
            "name": sprite.name,
            "organization": self.options.organization,
            "status": status,
            "url": self.sprite_url(sprite.name),
            "url_settings": dict(sprite.url_settings),
            "created_at": rfc3339(sprite.created_at),
            "updated_at": rfc3339(sprite.updated_at),
            "last_running_at": rfc3339(self.wall(last_running)) if last_running else None,
            "last_warming_at": rfc3339(self.wall(last_warming)) if last_warming else None,
            "labels": list(sprite.labels),
            "version": None,
            "environment_version": None,
        }

    def create_sprite(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, {"errors": ["request body must be a JSON object"]})
        name = body.get("name")
        if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or not NAME_RE.match(name):
            raise ApiError(400, {"errors": ["invalid sprite name format"]})
        url_settings = _url_settings({"auth": "sprite"}, body.get("url_settings"))
        labels = _labels(body.get("labels", []))
        with self.lock:
            if name in self.sprites:
                raise ApiError(409, {"error": f"A sprite named '{name}' already exists. "
                                              "Please choose a different name."})
            now = self.now()
            wall = self.wall(now)
            sprite = Sprite(id=f"sprite-{uuid.uuid4()}", name=name, created_at=wall, updated_at=wall,
                            url_settings=url_settings, labels=labels)
            # Every sprite has a v0 from creation (sprites-api.md, "Listing quirks").
            sprite.checkpoints.append(Checkpoint("v0", wall, "", sprite.snapshot()))
            self.sprites[name] = sprite
            bisect.insort(self._names, name)
            return self._sprite_json(sprite, now)

    def get_sprite(self, name: str) -> dict:
        with self.lock:
            now = self.now()
            self._advance(now)
            return self._sprite_json(self._get(name), now)

    def list_sprites(self, query: dict) -> dict:
        prefix, max_results, after = _list_params(query)
        with self.lock:
            now = self.now()
            self._advance(now)
            start = bisect.bisect_right(self._names, after) if after else 0
            start = max(start, bisect.bisect_left(self._names, prefix))
            page: list[Sprite] = []
            has_more = False
            for name in itertools.islice(self._names, start, None):
                if not name.startswith(prefix):
                    break
                if len(page) == max_results:
                    has_more = True
                    break
                page.append(self.sprites[name])
            counts = self._counts(now)
            next_token = None
            if has_more:
                next_token = base64.urlsafe_b64encode(page[-1].name.encode()).decode().rstrip("=")
            return {
                "sprites": [self._sprite_json(s, now) for s in page],
                "has_more": has_more,
                "next_continuation_token": next_token,
                # The Go SDK reads org counts, the Python SDK top-level ones: give both.
                "org": {"name": self.options.organization, **counts,
                        "running_limit": self.options.running_limit,
                        "warm_limit": self.options.warm_limit},
                **counts,
            }

    def update_sprite(self, name: str, body: Any) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, {"errors": ["request body must be a JSON object"]})
        with self.lock:
            sprite = self._get(name)
            url_settings = _url_settings(sprite.url_settings, body.get("url_settings"))
            labels = sprite.labels
            if body.get("clear_labels"):
                labels = []
            if "labels" in body and body["labels"] is not None:
                labels = _labels(body["labels"])
            sprite.url_settings, sprite.labels = url_settings, labels
            now = self.now()
            sprite.updated_at = self.wall(now)
            return self._sprite_json(sprite, now)

    def delete_sprite(self, name: str) -> None:
        """Delete it and its checkpoints. Its running time so far stays on the meter."""
        with self.lock:
            sprite = self._get(name)
            now = self.now()
            if sprite.run_start is not None:
                if sprite.active:
                    ran = now - sprite.run_start
                else:  # the VM is destroyed: an idle tail still ahead is never billed
                    ran = min(now, sprite.last_end + self.options.idle_seconds) - sprite.run_start
                self.retired[name] = self.retired.get(name, 0.0) + sprite.closed_seconds + ran
            self._cancel_sessions(sprite)
            self._advance(now)
            self._hot.pop(name, None)  # its slot is free at once
            del self.sprites[name]
            del self._names[bisect.bisect_left(self._names, name)]

    def upgrade_sprite(self, name: str) -> None:
        with self.lock:
            self._get(name)

    # -- the sprite URL

    def visit_url(self, name: str, path: str) -> tuple[int, dict | str]:
        """A request to the sprite's public URL: wakes it; answered by the gateway service."""
        with self.lock:
            sprite = self._get(name)
            self._touch(sprite, self.now())
            up = sprite.gateway_running()
        if path.strip("/") in ("healthz", "startupz", "readyz"):
            return (200, {"ok": True}) if up else (503, {"ok": False, "error": "gateway not running"})
        if not up:
            return 503, {"error": "no service is listening on this sprite's http_port"}
        return 200, ("<!doctype html><title>OpenClaw Control UI</title>"
                     "<p>OpenClaw gateway (Sprites emulator)</p>")


def _list_params(query: dict) -> tuple[str, int, str]:
    """(prefix, page size, the name the page starts after) of GET /v1/sprites."""
    prefix = one(query, "prefix") or ""
    raw_max = one(query, "max_results")
    try:
        max_results = int(raw_max) if raw_max not in (None, "") else MAX_PAGE
    except ValueError:
        raise ApiError(400, {"errors": ["invalid max_results"]}) from None
    max_results = min(max(max_results, 1), MAX_PAGE)
    after = ""
    token = one(query, "continuation_token")
    if token:
        try:
            after = base64.urlsafe_b64decode(token.encode() + b"==").decode()
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, {"error": "invalid continuation_token"}) from None
    return prefix, max_results, after


def _url_settings(current: dict, update: Any) -> dict:
    if update is None:
        return dict(current)
    if not isinstance(update, dict):
        raise ApiError(400, {"errors": ["invalid url_settings"]})
    merged = {**current, **{k: v for k, v in update.items() if v is not None}}
    if merged.get("auth") not in ("sprite", "public"):
        raise ApiError(400, {"errors": ["url_settings.auth must be 'sprite' or 'public'"]})
    if merged.get("private_access") not in (None, "admins", "org_users"):
        raise ApiError(400, {"errors": ["url_settings.private_access must be 'admins' or 'org_users'"]})
    return merged


def _labels(value: Any) -> list:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, {"errors": ["labels must be a list of strings"]})
    return list(value)
