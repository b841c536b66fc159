"""The master key never reaches a sprite and no virtual key rides in a URL; the system check
that wants a backend, the proxy double's key API, and a billing refusal read as over budget."""

import json
from decimal import Decimal

import pytest
import requests

from heartbeat.sweep import run_sweep
from sprites import modelaccess, openclaw, services

from .conftest import MASTER, PLATFORM_PROVIDER_KEY, provisioned, spend_through


def test_no_request_to_the_sprites_api_carries_the_master_key(db, emulator, proxy, alice, sent, settings):
    """Provisioning (set-up, claim, activation), rotation and a heartbeat sweep: every request
    to the Sprites API (fs writes, service env, exec argv, URLs, headers) is scanned."""
    settings.SPRITE_IDLE_SECONDS = 1
    row = provisioned(alice)
    services.rotate_gateway_token(sprite=row, actor=alice)
    run_sweep(concurrency=1)

    to_sprites = [r for r in sent if r["url"].startswith(emulator.url)]
    to_proxy = [r for r in sent if r["url"].startswith(proxy.url)]
    assert len(to_sprites) > 5 and len(to_proxy) >= 3  # generate, generate, delete
    for request in to_sprites:
        blob = request["url"] + json.dumps(request["headers"]) + request["body"].decode(errors="replace")
        assert MASTER not in blob and PLATFORM_PROVIDER_KEY not in blob, request["url"]
    # The sprite's own key travels only in the config file's body, never in a URL or an env.
    key = modelaccess.active_credential(row).api_key
    carrying = [r for r in to_sprites if key.encode() in r["body"] or key in r["url"]]
    assert carrying and all("/fs/" in r["url"] and key not in r["url"] for r in carrying)
    # The master key goes only to the proxy's key API, in the Authorization header.
    assert all(r["headers"]["Authorization"] == f"Bearer {MASTER}" for r in to_proxy)
    assert all(MASTER not in r["url"] and MASTER.encode() not in r["body"] for r in to_proxy)


def test_the_system_check_wants_a_backend_and_litellms_url_and_master_key(settings):
    from clawdirector.checks import check_model_access

    settings.MODEL_ACCESS = "openai"
    assert [e.id for e in check_model_access()] == ["clawdirector.E007"]
    settings.MODEL_ACCESS, settings.MODEL_PROXY_URL, settings.MODEL_PROXY_MASTER_KEY = "litellm", "https://llm", ""
    assert [e.id for e in check_model_access()] == ["clawdirector.E007"]
    settings.MODEL_PROXY_MASTER_KEY = MASTER
    assert check_model_access() == []


def test_a_billing_refusal_is_a_turn_over_budget_and_other_failures_are_not():
    from pathlib import Path

    fixtures = Path(__file__).resolve().parents[2] / "fixtures" / "openclaw" / "2026.9.6"
    billing = openclaw.parse_turn(1, (fixtures / "agent-turn-failed.json").read_text())
    assert billing.over_budget and not billing.ok
    cooled = openclaw.parse_turn(1, json.dumps({"ok": False, "error": {"type": "cli_error", "message": (
        'Inline API key for provider "clawdirector" is temporarily disabled after a provider auth/billing '
        "failure. Retry after about 10 minutes")}}))
    assert cooled.over_budget
    assert not openclaw.parse_turn(1, (fixtures / "agent-turn-failed-500.json").read_text()).over_budget
    assert not openclaw.parse_turn(0, (fixtures / "agent-turn-ok.json").read_text()).over_budget


def test_the_proxy_double_speaks_litellms_key_api_and_refuses_like_it(proxy):
    from sprites.modelaccess.litellm import LiteLLM

    client = LiteLLM()
    key, key_id = client.generate(user_label="7", sprite_label="s1", budget=(Decimal("5"), Decimal("4")))
    chat = f"{client.openai_base_url}/chat/completions"
    answer = requests.post(chat, json={"model": "m", "messages": []}, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200 and answer.json()["usage"]["prompt_tokens"] == 1000
    assert client.spend(key) == Decimal("0.006") and not client.over_budget(key)  # 1000 x 3 + 200 x 15 per M
    proxy.set_spend(key, 5.0)
    refused = requests.post(chat, json={"model": "m", "messages": []}, headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 400 and refused.json()["error"]["type"] == "budget_exceeded"
    assert client.over_budget(key)
    with pytest.raises(modelaccess.ModelAccessUnavailable):  # the key API wants the master key
        LiteLLM(master_key="sk-not-the-master").generate(user_label="7", sprite_label="s1", budget=(Decimal(1), Decimal(1)))
    client.delete(key)
    gone = requests.post(chat, json={"model": "m", "messages": []}, headers={"Authorization": f"Bearer {key}"})
    assert gone.status_code == 401 and proxy.keys() == []


def test_no_virtual_key_is_ever_in_a_url_to_the_proxy(db, emulator, proxy, alice, staff, sent):
    from sprites.modelaccess.reconcile import reconcile

    row = provisioned(alice)
    key = modelaccess.active_credential(row).api_key
    spend_through(proxy, key, 3)
    reconcile()
    modelaccess.over_budget(row)
    services.rotate_gateway_token(sprite=row, actor=alice)
    keys = [key, modelaccess.active_credential(row).api_key]
    services.destroy_sprite(sprite=row, actor=staff)
    assert [c.api_key for c in row.model_credentials.all()] == ["", ""]  # dead keys are not kept
    to_proxy = [r for r in sent if r["url"].startswith(proxy.url)]
    assert any("/key/info" in r["url"] for r in to_proxy)
    assert not [r["url"] for r in to_proxy if any(k in r["url"] for k in keys)]
