"""Model access rendered into openclaw.json: the provider and default model from settings,
none without a credential or a backend, and the network policy open to the proxy's host."""

import json
from decimal import Decimal

from sprites import modelaccess, openclaw
from sprites.models import ModelCredential

from .conftest import config_in, provisioned


def test_without_a_credential_the_config_has_no_provider():
    config = json.loads(openclaw.render_config(token="t", sprite_url="https://claw-a.sprites.app"))
    assert "models" not in config and "model" not in config["agents"]["defaults"]


def test_the_provider_and_default_model_come_from_settings(settings):
    settings.MODEL_PROVIDER_ID, settings.MODEL_ID, settings.MODEL_NAME = "clawdirector", "m-1", "M One"
    settings.MODEL_PRICE_INPUT, settings.MODEL_PRICE_OUTPUT = Decimal("3"), Decimal("15")
    settings.MODEL_PRICE_CACHE_READ, settings.MODEL_PRICE_CACHE_WRITE = Decimal("0.3"), Decimal("3.75")
    cred = ModelCredential(backend="litellm", base_url="https://llm.example/v1", api_key="sk-own")
    config = json.loads(openclaw.render_config(token="t", sprite_url="https://claw-a.sprites.app", model=cred))
    assert config["models"] == {"providers": {"clawdirector": {
        "baseUrl": "https://llm.example/v1", "apiKey": "sk-own", "api": "openai-completions",
        "models": [{"id": "m-1", "name": "M One",
                    "cost": {"input": 3.0, "output": 15.0, "cacheRead": 0.3, "cacheWrite": 3.75},
                    "contextWindow": 128000, "maxTokens": 4096}]}}}
    assert config["agents"]["defaults"]["model"] == {"primary": "clawdirector/m-1"}
    assert config["agents"]["defaults"]["heartbeat"] == {"every": "0m"}


def test_the_network_policy_allows_the_proxys_host(settings):
    settings.SPRITE_NETWORK_ALLOW = ["registry.npmjs.org"]
    settings.MODEL_ACCESS, settings.MODEL_PROXY_URL = "litellm", "https://llm.internal.example:4000"
    assert modelaccess.allowed_domains() == ["registry.npmjs.org", "llm.internal.example"]
    assert "api.own.example" in modelaccess.allowed_domains("https://api.own.example/v1")
    settings.MODEL_ACCESS = ""
    assert modelaccess.allowed_domains() == ["registry.npmjs.org"]


def test_no_model_access_configured_renders_no_provider(db, emulator, alice, settings):
    settings.MODEL_ACCESS = ""
    row = provisioned(alice)
    assert "models" not in config_in(emulator, row)
    assert not ModelCredential.objects.exists()
