"""Model access: where each sprite's own model credential comes from (issue 15).

A platform-wide model key never enters a sprite (../shared/openclaw.md "Security"): each sprite
gets its own credential, rendered into its openclaw.json as a custom provider
(`openclaw.render_config(model=...)`). One small interface, the backend chosen by the setting
`MODEL_ACCESS`:

- `""`: none (the `make run` demo). Sprites get no provider; the console says so.
- `"litellm"`: a LiteLLM virtual key per sprite, minted with the proxy's master key (which stays
  in ClawDirector's settings) with the user's budget; LiteLLM enforces it and reports spend.
- `"byo"`: the user's own provider key and base URL, set through the API by the owner or staff
  (`set_own_key`), stored encrypted. The user pays the provider directly.

The services call `credential_for` (activation: mints when the sprite has none for its user),
`rotation` (with the gateway token) and `revoke` (on destroy). Secrets never reach a log line,
an exception message or a URL.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from decimal import Decimal
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sprites.billing.budget import monthly_budget_for
from sprites.models import ModelCredential

from .errors import ModelAccessUnavailable

__all__ = [
    "ModelAccessUnavailable", "active_credential", "allowed_domains", "backend_name", "configured",
    "credential_for", "key_budget", "note_budget", "over_budget", "proxy", "revoke", "rotation", "set_own_key", "status_of",
    "update_budget",
]

Backend = ModelCredential.Backend
logger = logging.getLogger(__name__)


def backend_name() -> str:
    return settings.MODEL_ACCESS


def configured() -> bool:
    return settings.MODEL_ACCESS in (Backend.LITELLM, Backend.BYO)


def proxy():
    from .litellm import LiteLLM

    return LiteLLM()


def allowed_domains(extra_url: str = "") -> list[str]:
    """The sprite's egress allow-list: SPRITE_NETWORK_ALLOW, plus the model proxy's host (LiteLLM)
    and `extra_url`'s host (a BYO base URL)."""
    domains = list(settings.SPRITE_NETWORK_ALLOW)
    urls = [extra_url]
    if settings.MODEL_ACCESS == Backend.LITELLM:
        urls.append(settings.MODEL_PROXY_URL)
    for url in urls:
        host = urlsplit(url).hostname if url else None
        if host and host not in domains:
            domains.append(host)
    return domains


def active_credential(sprite) -> ModelCredential | None:
    return ModelCredential.objects.filter(sprite=sprite, revoked_at__isnull=True).first()


def _labels(sprite) -> tuple[str, str]:
    return (str(sprite.user_id or ""), str(getattr(sprite, "public_id", "") or sprite.pk))


def key_budget(sprite) -> tuple[Decimal, Decimal]:
    """The one budget: a key's (max_budget, soft_budget) are the user's monthly budget (their own,
    else SPRITE_MONTHLY_BUDGET_USD) and its warning share (BUDGET_WARN_PERCENT); with no money
    budget at all, MODEL_BUDGET_USD and MODEL_SOFT_BUDGET_USD. The model can then never spend
    more than the whole budget, and ClawDirector stops the sprite when VM + model reach it."""
    monthly = monthly_budget_for(sprite)
    if monthly is None:
        return settings.MODEL_BUDGET_USD, settings.MODEL_SOFT_BUDGET_USD
    return monthly, (monthly * settings.BUDGET_WARN_PERCENT / 100).quantize(Decimal("0.01"))


def update_budget(sprite) -> bool:
    """After staff change a user's budget: the active LiteLLM key gets the new max/soft budget
    (`/key/update`). False with no LiteLLM key; raises ModelAccessUnavailable."""
    row = active_credential(sprite)
    if row is None or row.backend != Backend.LITELLM or not row.api_key:
        return False
    max_budget, soft_budget = key_budget(sprite)
    proxy().update(row.api_key, max_budget=float(max_budget), soft_budget=float(soft_budget))
    return True


def _mint(sprite) -> ModelCredential:
    client = proxy()
    user_label, sprite_label = _labels(sprite)
    key, key_id = client.generate(user_label=user_label, sprite_label=sprite_label, budget=key_budget(sprite))
    return ModelCredential(sprite=sprite, user_id=sprite.user_id, backend=Backend.LITELLM,
                           base_url=client.openai_base_url, api_key=key, key_id=key_id)


def _final_reconcile(row: ModelCredential) -> None:
    """A key's last spend, read before the proxy forgets it (best effort: logged if it fails)."""
    from .reconcile import reconcile_one

    try:
        reconcile_one(row)
    except ModelAccessUnavailable as exc:
        logger.warning("Last model spend of credential %s not reconciled: %s", row.pk, exc)


def _revoke_row(row: ModelCredential) -> None:
    """Delete a LiteLLM key at the proxy after booking its last spend (a BYO key is the
    user's: only forgotten), then mark it."""
    if row.backend == Backend.LITELLM and row.api_key:
        _final_reconcile(row)
        proxy().delete(row.api_key)
    row.revoked_at, row.api_key = timezone.now(), ""  # a dead key is not kept (a BYO one may still work)
    row.save(update_fields=["revoked_at", "api_key"])


def credential_for(sprite) -> ModelCredential | None:
    """The credential to render into `sprite` now, minting a LiteLLM key when it has none for
    its current user (a pool sprite gets its own when claimed; a key minted for an earlier user
    of a sprite returned to the pool is revoked first). None without model access."""
    if not configured() or sprite.user_id is None:
        return None
    row = active_credential(sprite)
    if row is not None and row.backend == settings.MODEL_ACCESS and row.user_id == sprite.user_id and row.usable:
        return row
    if settings.MODEL_ACCESS == Backend.BYO:
        return None  # the user has not set their key yet
    if row is not None:
        _revoke_row(row)
    minted = _mint(sprite)
    minted.save()
    return minted


@contextmanager
def rotation(sprite):
    """Rotate with the gateway token: yields the NEW credential (unsaved) to render; when the
    block succeeds it becomes the active one and the old LiteLLM key is deleted; when it raises,
    the new key is deleted and the old one stays. A BYO key is the user's: rendered as is."""
    old = active_credential(sprite) if configured() else None
    if old is None or old.backend != Backend.LITELLM:
        yield credential_for(sprite)
        return
    new = _mint(sprite)
    try:
        yield new
    except BaseException:
        try:
            proxy().delete(new.api_key)
        except ModelAccessUnavailable:
            pass  # an orphan key with a budget and no sprite: it expires with its budget
        raise
    old_key = old.api_key
    with transaction.atomic():
        old.revoked_at = timezone.now()
        old.save(update_fields=["revoked_at"])
        new.rotated_at = timezone.now()
        new.save()
    try:
        _final_reconcile(old)
        proxy().delete(old_key)
    except ModelAccessUnavailable as exc:
        # Revoked here; at the proxy it lives on with its budget until deleted by hand.
        logger.warning("Old model key of credential %s not deleted at the proxy: %s", old.pk, exc)
    old.api_key = ""
    old.save(update_fields=["api_key"])


def revoke(sprite) -> int:
    """On destroy: every active credential of the sprite is revoked (LiteLLM: deleted at the
    proxy). Returns how many."""
    count = 0
    for row in ModelCredential.objects.filter(sprite=sprite, revoked_at__isnull=True):
        _revoke_row(row)
        count += 1
    return count


def over_budget(sprite) -> bool:
    """Is the sprite's LiteLLM key at its max_budget (the proxy refuses its calls)? For a failed
    turn: OpenClaw 2026.9.6 words LiteLLM's 400 `budget_exceeded` as a rejected request, so
    the proxy is asked. False without a LiteLLM key; raises ModelAccessUnavailable."""
    row = active_credential(sprite)
    if row is None or row.backend != Backend.LITELLM or not row.api_key:
        return False
    over = proxy().over_budget(row.key_id or row.api_key)  # the hashed token: no secret in a URL
    note_budget(row, over)
    return over


def note_budget(row: ModelCredential, over: bool) -> None:
    """Remember what the proxy said (the status API shows it without asking the proxy)."""
    if over and row.over_budget_since is None:
        row.over_budget_since = timezone.now()
    elif not over and row.over_budget_since is not None:
        row.over_budget_since = None
    else:
        return
    row.save(update_fields=["over_budget_since"])


def status_of(sprite) -> dict:
    """What the status API says about model access (never the key): the backend, whether the
    sprite has a credential, and whether the proxy last said its budget is spent."""
    row = active_credential(sprite) if configured() else None
    return {
        "backend": settings.MODEL_ACCESS,
        "configured": bool(row and row.usable),
        "over_budget": bool(row and row.over_budget_since),
    }


def set_own_key(sprite, *, base_url: str, api_key: str) -> ModelCredential:
    """BYO: the owner's (or staff's) own provider key and base URL, stored encrypted, replacing
    the active one. Rendered into the sprite at its next activation or token rotation."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password:
        raise ValueError("base_url must be an http(s) URL without credentials in it.")
    if not api_key or len(api_key) > 500 or any(c.isspace() for c in api_key):
        raise ValueError("api_key must be one token of at most 500 characters.")
    with transaction.atomic():
        for row in ModelCredential.objects.select_for_update().filter(sprite=sprite, revoked_at__isnull=True):
            if row.backend == Backend.LITELLM:
                _revoke_row(row)
            else:
                row.revoked_at, row.api_key = timezone.now(), ""
                row.save(update_fields=["revoked_at", "api_key"])
        return ModelCredential.objects.create(sprite=sprite, user_id=sprite.user_id, backend=Backend.BYO,
                                              base_url=base_url.rstrip("/"), api_key=api_key)
