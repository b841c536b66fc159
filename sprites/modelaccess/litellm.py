"""The LiteLLM proxy's key API, spoken with its master key (which never leaves ClawDirector).

The second HTTP speaker of the domain (after `sprites.client`): a small `requests` session
with timeouts and no retries of non-idempotent calls. Shapes (LiteLLM's docs, proxy/virtual_keys):
- `POST /key/generate` {max_budget, soft_budget, budget_duration, metadata, models, key_alias}
  → {"key": "sk-…", "token": "<hashed id>", "expires": …, …}
- `GET /key/info?key=<key>` → {"key": …, "info": {"spend": 0.0123, "max_budget": …, …}}; ClawDirector
  passes the key's hashed `token` there (LiteLLM accepts it), so no secret is ever in a URL
- `POST /key/update` {"key": …, max_budget, soft_budget, …}
- `POST /key/delete` {"keys": [<key>, …]} → {"deleted_keys": [...]}
No secret is ever in an exception's message or a log line.
"""

from __future__ import annotations

from decimal import Decimal

import requests
from django.conf import settings

from .errors import ModelAccessUnavailable


class LiteLLM:
    def __init__(self, base_url: str | None = None, master_key: str | None = None):
        self.base_url = (base_url or settings.MODEL_PROXY_URL).rstrip("/")
        self._master_key = master_key or settings.MODEL_PROXY_MASTER_KEY
        self.session = requests.Session()

    def __repr__(self) -> str:  # never the master key
        return f"<LiteLLM {self.base_url}>"

    @property
    def openai_base_url(self) -> str:
        """What a sprite's OpenClaw calls (`<baseUrl>/chat/completions`)."""
        return f"{self.base_url}/v1"

    def _call(self, method: str, path: str, **kwargs) -> dict:
        headers = {"Authorization": f"Bearer {self._master_key}"}
        try:
            response = self.session.request(method, self.base_url + path, headers=headers,
                                            timeout=settings.MODEL_PROXY_TIMEOUT_SECONDS, **kwargs)
        except requests.RequestException as exc:
            raise ModelAccessUnavailable(f"The model proxy did not answer {path}: {type(exc).__name__}") from None
        if response.status_code >= 400:
            raise ModelAccessUnavailable(f"The model proxy answered {response.status_code} to {path}",
                                         status_code=response.status_code)
        try:
            return response.json()
        except ValueError:
            raise ModelAccessUnavailable(f"The model proxy answered {path} with something that is not JSON") from None

    def generate(self, *, user_label: str, sprite_label: str, budget: tuple[Decimal, Decimal]) -> tuple[str, str]:
        """A new virtual key for one user's sprite with `budget` (max, soft): (key, key id)."""
        body = {
            "max_budget": float(budget[0]), "soft_budget": float(budget[1]),
            "budget_duration": settings.MODEL_BUDGET_DURATION, "models": [settings.MODEL_ID],
            "key_alias": f"clawdirector-{sprite_label}",
            "metadata": {"clawdirector_user": user_label, "clawdirector_sprite": sprite_label},
        }
        data = self._call("POST", "/key/generate", json=body)
        key = data.get("key")
        if not isinstance(key, str) or not key:
            raise ModelAccessUnavailable("The model proxy's /key/generate answered no key")
        return key, str(data.get("token") or "")

    def info(self, key: str) -> dict:
        data = self._call("GET", "/key/info", params={"key": key})
        return data.get("info") if isinstance(data.get("info"), dict) else data

    def spend(self, key: str) -> Decimal:
        return Decimal(str(self.info(key).get("spend") or 0))

    def over_budget(self, key: str) -> bool:
        """Has the key's spend reached its max_budget (LiteLLM then refuses its calls)?"""
        info = self.info(key)
        budget = info.get("max_budget")
        return budget is not None and Decimal(str(info.get("spend") or 0)) >= Decimal(str(budget))

    def update(self, key: str, **fields) -> None:
        self._call("POST", "/key/update", json={"key": key, **fields})

    def delete(self, *keys: str) -> None:
        self._call("POST", "/key/delete", json={"keys": list(keys)})
