"""Model access (issue 15), the kit of test_*.py here: the LiteLLM proxy double
(sprites_emulator.modelproxy) with its master key, every HTTP request ClawDirector sends,
a provisioned sprite, its rendered openclaw.json and spend through its key."""

import json
from decimal import Decimal

import pytest
import requests

from sprites import openclaw, services
from sprites_emulator.modelproxy import start_model_proxy

MASTER = "sk-master-" + "m" * 32
PLATFORM_PROVIDER_KEY = "sk-proj-platform-" + "p" * 32  # what a proxy holds upstream: never ours to send


@pytest.fixture
def proxy(settings):
    handle = start_model_proxy(master_key=MASTER)
    settings.MODEL_ACCESS = "litellm"
    settings.MODEL_PROXY_URL = handle.url
    settings.MODEL_PROXY_MASTER_KEY = MASTER
    settings.MODEL_BUDGET_USD = Decimal("5")
    settings.MODEL_SOFT_BUDGET_USD = Decimal("4")
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def sent(monkeypatch):
    """Every HTTP request ClawDirector makes (method, URL, headers, body), at the requests edge."""
    seen = []
    original = requests.Session.send

    def send(self, request, **kwargs):
        body = request.body or b""
        seen.append({"method": request.method, "url": request.url, "headers": dict(request.headers),
                     "body": body if isinstance(body, bytes) else body.encode()})
        return original(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", send)
    return seen


def config_in(emulator, row) -> dict:
    return json.loads(emulator.file_text(row.sprite_name, openclaw.CONFIG_PATH))


def provisioned(alice):
    services.fill_pool(target=1)
    row, outcome = services.provision_sprite(user=alice)
    assert outcome == "ready"
    return row


def spend_through(proxy, key: str, calls: int) -> None:
    for _ in range(calls):
        answer = requests.post(f"{proxy.url}/v1/chat/completions", json={"model": "m", "messages": []},
                               headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200
