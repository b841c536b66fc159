"""Smoke tests of the harness against the real OpenClaw package, with configs written literally
here (the project's own render functions come in later tests). One gateway serves the module;
everything is on 127.0.0.1 and bounded in time."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest

from sprites.openclaw import engines

from . import harness

STARTUP_TIMEOUT = 90  # measured 8-15 s on 2 cores
PRICES = {"input": 3, "output": 15, "cacheRead": 0.3, "cacheWrite": 3.75}  # USD per million tokens
OWNER_SCOPES = ["operator.admin", "operator.approvals", "operator.pairing", "operator.questions",
                "operator.read", "operator.talk.secrets", "operator.write"]
ORIGIN = "https://sprite.example.test"
PROXIED = {"X-Forwarded-For": "203.0.113.7", "Origin": ORIGIN}


def provider(base_url: str, api_key: str) -> dict:
    return {"baseUrl": base_url, "apiKey": api_key, "api": "openai-completions",
            "models": [{"id": "fake-model", "name": "Fake Model", "reasoning": False, "input": ["text"],
                        "cost": dict(PRICES), "contextWindow": 128000, "maxTokens": 4096}]}


def gateway_config(token: str, port: int, model_url: str) -> dict:
    return {
        "gateway": {
            "mode": "local", "bind": "loopback", "port": port,
            "auth": {"mode": "token", "token": token},
            "controlUi": {"allowedOrigins": [ORIGIN]},
            "terminal": {"enabled": False},
            "trustedProxies": ["127.0.0.1"],
        },
        "models": {"providers": {
            "clawdirector": provider(model_url, "sk-good-key"),
            # A 402 disables a provider's key for ~10 minutes: failures get their own provider.
            "broken": provider(model_url, "sk-broken-key"),
        }},
        "agents": {"defaults": {"model": {"primary": "clawdirector/fake-model"}, "heartbeat": {"every": "0m"}}},
    }


@pytest.fixture(scope="module")
def model_server():
    with harness.fake_model_server(reply="HEARTBEAT_OK", prompt_tokens=1000, completion_tokens=200) as model:
        model.fail_keys["sk-broken-key"] = 402
        yield model


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, openclaw_install, model_server):
    home = harness.new_home(tmp_path_factory.mktemp("gateway"))
    port = harness.free_port()
    token = secrets.token_urlsafe(48)
    config = gateway_config(token, port, model_server.base_url)
    gw = harness.start_gateway(config, home=home, port=port,
                               env=harness.service_env(token, home, openclaw_install))
    gw.token, gw.config = token, config
    try:
        gw.startup_seconds = gw.wait_startupz(STARTUP_TIMEOUT)
        yield gw
    finally:
        gw.stop()


def cli(gw, *args, timeout=120):
    return harness.run_cli(list(args), gw.home, timeout=timeout)


# --- no gateway needed ------------------------------------------------------------------------


def test_version_and_engines(openclaw_install, openclaw_home):
    result = harness.run_cli(["--version"], openclaw_home, timeout=60)
    assert result.code == 0, result.stderr
    match = re.fullmatch(r"OpenClaw (\S+) \(([0-9a-f]{7,40})\)", result.stdout.strip())
    assert match, result.stdout
    assert match.group(1) == openclaw_install.version
    package = json.loads((openclaw_install.openclaw_mjs.parent / "package.json").read_text())
    assert package["engines"]["node"] == openclaw_install.engines_node
    node_version = subprocess.run([str(openclaw_install.node), "--version"], capture_output=True,
                                          text=True, timeout=30).stdout.strip()
    assert engines.satisfies(node_version, openclaw_install.engines_node)


def test_config_validate(openclaw_home):
    config = harness.loopback_config(secrets.token_urlsafe(48), 8080)
    config["gateway"]["bind"] = "lan"  # validation only: nothing listens
    harness.write_config(openclaw_home, config)
    ok = harness.run_cli(["config", "validate", "--json"], openclaw_home, timeout=60)
    assert ok.code == 0, ok.stdout + ok.stderr
    assert ok.json() == {"valid": True, "path": str(harness.config_path(openclaw_home)), "warnings": []}

    config["gateway"]["bogusKey"] = True
    harness.write_config(openclaw_home, config)
    bad = harness.run_cli(["config", "validate", "--json"], openclaw_home, timeout=60)
    assert bad.code == 1
    data = bad.json()
    assert data["ok"] is False and data["valid"] is False
    assert data["issues"] == [{"path": "gateway", "message": 'Unrecognized key: "bogusKey"'}]


def test_invalid_config_exits_78(openclaw_install, tmp_path):
    token = secrets.token_urlsafe(48)
    config = harness.loopback_config(token, harness.free_port())
    config["gateway"]["bogusKey"] = True
    gw = harness.start_gateway(config, home=harness.new_home(tmp_path), port=config["gateway"]["port"])
    try:
        with pytest.raises(harness.GatewayExited) as exited:
            gw.wait_startupz(30)
    finally:
        gw.stop()
    assert exited.value.code == 78
    assert exited.value.seconds < 15
    assert "Gateway failed to start: Invalid config at" in gw.stderr
    assert 'gateway: Unrecognized key: "bogusKey"' in gw.stderr


# --- one running gateway -----------------------------------------------------------------------


def test_health_endpoints(gateway):
    assert gateway.startup_seconds < STARTUP_TIMEOUT
    assert harness.http_get(gateway.port, "/healthz") == (200, {"ok": True, "status": "live"})
    status, body = harness.http_get(gateway.port, "/startupz")
    assert status == 200 and body["ok"] is True and body["status"] == "started"
    assert body["version"] == harness.require_install().version
    status, body = harness.http_get(gateway.port, "/readyz")
    assert status == 200 and body["ready"] is True


def test_ws_token(gateway):
    ok = harness.ws_connect(gateway.url, gateway.token)
    assert ok.challenge["event"] == "connect.challenge"
    assert set(ok.challenge["payload"]) >= {"nonce", "ts"}
    assert ok.hello, ok.response
    assert ok.hello["protocol"] == 4
    assert ok.hello["auth"]["role"] == "operator" and ok.hello["auth"]["method"] == "token"

    wrong = harness.ws_connect(gateway.url, "not-the-token-" + secrets.token_urlsafe(16))
    assert wrong.hello is None
    assert wrong.error["details"]["code"] == "AUTH_TOKEN_MISMATCH"
    assert wrong.close_code == 1008


def test_the_projects_connect_probe_is_what_the_real_gateway_says_hello_to(gateway):
    """sprites.openclaw.connect through sprites.client.ws_exchange (what verify-after-wake
    runs): the user's token and no device is a hello-ok; a wrong token is refused by name."""
    from sprites.client import ws_exchange
    from sprites.openclaw import connect

    frames = ws_exchange(gateway.url, lambda first: connect.probe_request(gateway.token))
    assert frames[0]["event"] == "connect.challenge"
    assert connect.probe_problem(frames) == "", frames[-1]
    wrong = ws_exchange(gateway.url, lambda first: connect.probe_request("not-the-token-" + secrets.token_urlsafe(8)))
    assert connect.probe_problem(wrong) == "WebSocket connect refused: AUTH_TOKEN_MISMATCH"


def test_proxied_device_pairing(gateway):
    device = harness.DeviceIdentity()
    first = harness.ws_connect(gateway.url, gateway.token, device=device, client_id="openclaw-control-ui",
                               client_mode="webchat", headers=PROXIED, display_name="Owner laptop")
    assert first.http_status == 101
    details = first.error["details"]
    assert details["code"] == "PAIRING_REQUIRED" and details["deviceId"] == device.device_id
    request_id = details["requestId"]

    listed = cli(gateway, "devices", "list", "--json")
    assert listed.code == 0, listed.stderr
    pending = {p["requestId"]: p for p in listed.json()["pending"]}
    assert pending[request_id]["remoteIp"] == "203.0.113.7"
    assert pending[request_id]["displayName"] == "Owner laptop"

    approved = cli(gateway, "devices", "approve", request_id, "--json")
    assert approved.code == 0, approved.stderr
    assert approved.json()["requestId"] == request_id
    assert approved.json()["device"]["deviceId"] == device.device_id
    assert approved.json()["device"]["approvedVia"] == "owner"

    again = harness.ws_connect(gateway.url, gateway.token, device=device, client_id="openclaw-control-ui",
                               client_mode="webchat", headers=PROXIED, display_name="Owner laptop")
    assert again.hello, again.response

    unknown = cli(gateway, "devices", "approve", request_id, "--json")  # consumed: now unknown
    assert unknown.code == 1 and unknown.stdout == ""
    assert unknown.stderr.startswith(f"No pending device request matches {request_id}.")


def test_agent_turn_cost(gateway, model_server):
    prompt = gateway.home / ".openclaw" / "heartbeat.md"
    prompt.write_text("Answer exactly HEARTBEAT_OK.\n")
    before = dict(model_server.usage_by_key.get("sk-good-key", {"prompt_tokens": 0, "completion_tokens": 0}))
    result = cli(gateway, "agent", "--agent", "main", "--message-file", str(prompt), "--timeout", "120", "--json",
                 timeout=180)
    assert result.code == 0, result.stdout[-2000:] + result.stderr[-2000:]
    data = result.json()
    assert data["status"] == "ok"
    meta = data["result"]["meta"]["agentMeta"]
    used = model_server.usage_by_key["sk-good-key"]
    tokens_in = used["prompt_tokens"] - before["prompt_tokens"]
    tokens_out = used["completion_tokens"] - before["completion_tokens"]
    assert (meta["usage"]["input"], meta["usage"]["output"]) == (tokens_in, tokens_out)
    expected = (Decimal(tokens_in) * Decimal(PRICES["input"]) + Decimal(tokens_out) * Decimal(PRICES["output"])) / 10**6
    assert Decimal(str(meta["costUsd"])) == expected
    assert data["result"]["payloads"][0]["text"] == "HEARTBEAT_OK"


def test_agent_turn_failed(gateway):
    prompt = gateway.home / "fail.md"
    prompt.write_text("Answer exactly HEARTBEAT_OK.\n")
    result = cli(gateway, "agent", "--agent", "main", "--message-file", str(prompt), "--timeout", "120", "--json",
                 "--model", "broken/fake-model", timeout=180)
    assert result.code == 1
    data = result.json()
    assert data["ok"] is False and data["runId"]
    assert data["error"]["type"] == "cli_error"
    assert "billing error" in data["error"]["message"]


def test_dashboard_bootstrap(gateway):
    result = cli(gateway, "dashboard", "--json")
    assert result.code == 0, result.stdout + result.stderr
    data = result.json()
    assert data["ok"] is True and data["port"] == gateway.port
    assert data["browserUrl"].startswith(f"http://127.0.0.1:{gateway.port}/#bootstrapToken=")
    assert abs(data["browserBootstrapExpiresAtMs"] / 1000 - time.time() - 600) < 60
    fragment = parse_qs(urlsplit(data["browserUrl"]).fragment)
    assert fragment["bootstrapProfile"] == ["owner"]
    assert fragment["gatewayUrl"] == [f"ws://127.0.0.1:{gateway.port}"]
    bootstrap = {"bootstrapToken": fragment["bootstrapToken"][0]}

    # A browser behind the proxy redeems it once, with exactly the owner scopes: no approval needed.
    first = harness.ws_connect(gateway.url, None, auth=bootstrap, scopes=OWNER_SCOPES,
                               client_id="openclaw-control-ui", client_mode="webchat", headers=PROXIED)
    assert first.hello, first.response
    assert first.hello["auth"]["method"] == "bootstrap-token" and first.hello["auth"]["deviceToken"]
    second = harness.ws_connect(gateway.url, None, auth=bootstrap, scopes=OWNER_SCOPES,
                                client_id="openclaw-control-ui", client_mode="webchat", headers=PROXIED)
    assert second.error["details"]["code"] == "AUTH_BOOTSTRAP_TOKEN_INVALID"


def test_trusted_proxies(gateway):
    """Forwarded headers from an untrusted source are refused (403 before the upgrade);
    gateway.trustedProxies hot-reloads. Runs last: it rewrites the config and restores it."""
    loopback_client = harness.ws_connect(gateway.url, gateway.token, headers={"X-Forwarded-For": "127.0.0.1"})
    assert loopback_client.http_status == 403  # a forwarded loopback client is never attributed
    assert json.loads(loopback_client.http_body)["error"]["type"] == "proxy_attribution_required"

    untrusted = json.loads(json.dumps(gateway.config))
    del untrusted["gateway"]["trustedProxies"]
    try:
        harness.write_config(gateway.home, untrusted)
        status = None
        for _ in range(40):  # hot reload takes ~1 s
            status, body = harness.http_get(gateway.port, "/readyz", headers={"X-Forwarded-For": "203.0.113.7"})
            if status == 403:
                break
            time.sleep(0.5)
        assert status == 403 and body["error"]["type"] == "proxy_attribution_required"
        refused = harness.ws_connect(gateway.url, gateway.token, headers=PROXIED)
        assert refused.http_status == 403 and "proxy_attribution_required" in refused.http_body
    finally:
        harness.write_config(gateway.home, gateway.config)
    for _ in range(40):
        if harness.http_get(gateway.port, "/readyz", headers={"X-Forwarded-For": "203.0.113.7"})[0] == 200:
            break
        time.sleep(0.5)
    assert harness.http_get(gateway.port, "/readyz", headers={"X-Forwarded-For": "203.0.113.7"})[0] == 200
