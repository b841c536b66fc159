"""The network policy endpoints (stored and validated, never enforced).

A mixin of `EmulatorState` (state.py).
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError


class PolicyMixin:
    def get_policy(self, name: str) -> dict:
        with self.lock:
            return {"rules": copy.deepcopy(self._get(name).policy)}

    def set_policy(self, name: str, body: Any) -> None:
        rules = body.get("rules") if isinstance(body, dict) else None
        if not isinstance(rules, list) or not all(_valid_rule(r) for r in rules):
            raise ApiError(400, {"error": "invalid policy"})
        with self.lock:
            self._get(name).policy = copy.deepcopy(rules)


def _valid_rule(rule: Any) -> bool:
    if not isinstance(rule, dict):
        return False
    if set(rule) == {"include"}:
        return rule["include"] == "defaults"
    return (set(rule) == {"domain", "action"} and isinstance(rule["domain"], str)
            and bool(rule["domain"].strip()) and rule["action"] in ("allow", "deny"))
