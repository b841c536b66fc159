"""Issue 15 against the real OpenClaw: a sprite's own LiteLLM virtual key, minted by the
project's key API client on the emulator's LiteLLM double (sprites_emulator.modelproxy), in
the config the project renders, makes a real heartbeat turn succeed; its costUsd equals the
tokens x the configured prices and the proxy's spend for that key; a key over its budget makes
the turn fail the way the project reads as over budget. Loopback only."""

from __future__ import annotations

import json
import secrets
from decimal import Decimal

import pytest
from django.conf import settings
from django.test import override_settings

from sprites import openclaw
from sprites.modelaccess.litellm import LiteLLM
from sprites_emulator.modelproxy import start_model_proxy

from . import harness
from .test_project import FRONTEND, MODEL_SETTINGS, SPRITE_URL, credential, heartbeat_turn, service_argv_env

MASTER = "sk-master-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def proxy():
    with start_model_proxy(master_key=MASTER, prompt_tokens=1000, completion_tokens=200,
                           price_input="3", price_output="15") as handle:
        yield handle


@pytest.fixture(scope="module")
def port():
    return harness.free_port()


@pytest.fixture(scope="module", autouse=True)
def _project_settings(port, proxy):
    with override_settings(OPENCLAW_GATEWAY_PORT=port, OPENCLAW_ALLOWED_ORIGINS=[FRONTEND], MODEL_ACCESS="litellm",
                           MODEL_PROXY_URL=proxy.url, MODEL_PROXY_MASTER_KEY=MASTER, MODEL_BUDGET_USD=Decimal("1"),
                           **MODEL_SETTINGS):
        yield


@pytest.fixture(scope="module")
def minted(_project_settings):
    key, key_id = LiteLLM().generate(user_label="42", sprite_label="contract", budget=(Decimal("1"), Decimal("0.8")))
    return key


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, openclaw_install, minted, port):
    token = secrets.token_urlsafe(48)
    home = harness.new_home(tmp_path_factory.mktemp("model-access-gateway"))
    config = json.loads(openclaw.render_config(token=token, sprite_url=SPRITE_URL,
                                               model=credential(LiteLLM().openai_base_url, minted)))
    config["gateway"]["bind"] = "loopback"
    assert MASTER not in json.dumps(config)
    args, env = service_argv_env(token, home, openclaw_install)
    handle = harness.start_gateway(config, env=env, port=port, home=home, args=args, install=openclaw_install)
    try:
        handle.wait_startupz(timeout=openclaw.startup_wait_seconds())
        yield handle
    finally:
        handle.stop()


def test_a_turn_spends_through_the_sprites_own_key_and_costs_what_the_proxy_says(gateway, proxy, minted,
                                                                                 openclaw_install):
    ran = heartbeat_turn(gateway, openclaw_install)
    turn = openclaw.parse_turn(ran.returncode, ran.stdout, ran.stderr)
    assert turn.ok, ran.stdout[-2000:] + ran.stderr[-2000:]
    info = proxy.key_info(minted)
    assert info["calls"] >= 1
    expected = (info["prompt_tokens"] * settings.MODEL_PRICE_INPUT
                + info["completion_tokens"] * settings.MODEL_PRICE_OUTPUT) / 10**6
    assert turn.cost_usd == expected == LiteLLM().spend(minted)
    chats = [r for r in proxy.requests() if r["path"].endswith("/chat/completions")]
    assert chats and {r["auth"] for r in chats} == {minted}  # the sprite's key, never the master key


def test_a_key_over_its_budget_fails_the_turn_and_only_the_proxy_says_why(gateway, proxy, minted, openclaw_install):
    """Runs last. LiteLLM refuses a key at its max_budget with `400 {"error": {"type":
    "budget_exceeded"}}` (its auth_exception_handler); the real 2026.9.6 does NOT read that as
    a billing error but as a rejected request, so the project asks the proxy (`/key/info`)."""
    proxy.set_spend(minted, 1.0)  # = max_budget
    ran = heartbeat_turn(gateway, openclaw_install)
    turn = openclaw.parse_turn(ran.returncode, ran.stdout, ran.stderr)
    assert ran.returncode == 1 and not turn.ok and not turn.timed_out
    assert "provider rejected the request" in turn.error and not turn.over_budget, turn.error
    assert turn.maybe_over_budget  # what makes the sweep ask the proxy (an over_budget wake)
    assert LiteLLM().over_budget(minted)
    refused = [r for r in proxy.requests() if r["path"].endswith("/chat/completions")][-1]
    assert refused["auth"] == minted
