"""The project's own OpenClaw code against the real package (issue 9's contract).

Everything a sprite runs is taken from `sprites.openclaw` as production uses it: the config
from `render_config`, the gateway's argv and environment from `gateway_service`, the start-up
wait and failure window from settings, the heartbeat turn from `heartbeat_command`, and every
answer read by the project's own parsers. The only substitutions are where the sprite's
filesystem differs from this machine's: /home/sprite becomes a temp HOME, /usr/local/bin the
cached Node and OpenClaw, and `gateway.bind` "lan" (0.0.0.0) becomes "loopback", so that this
suite never listens beyond 127.0.0.1. Bounded in time, loopback only.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.test import override_settings

from sprites import openclaw
from sprites.client import StreamEvent
from sprites.models import ModelCredential
from sprites.services.errors import GatewayFailed, check_stream

from . import harness

SPRITE_URL = "https://claw-contract-x1.sprites.app"
FRONTEND = "https://app.example.test"
PRICES = {"input": 3, "output": 15, "cacheRead": 0.3, "cacheWrite": 3.75}  # USD per million tokens
PROXIED = {"X-Forwarded-For": "203.0.113.7", "Origin": SPRITE_URL}


MODEL_SETTINGS = {  # what production reads from MODEL_* settings (issue 15), set to the test's model
    "MODEL_PROVIDER_ID": "clawdirector", "MODEL_ID": "fake-model", "MODEL_NAME": "Fake Model",
    "MODEL_API": "openai-completions", "MODEL_PRICE_INPUT": Decimal("3"), "MODEL_PRICE_OUTPUT": Decimal("15"),
    "MODEL_PRICE_CACHE_READ": Decimal("0.3"), "MODEL_PRICE_CACHE_WRITE": Decimal("3.75"),
}


def credential(base_url: str, api_key: str = "sk-contract") -> ModelCredential:
    """A sprite's own model credential, as the services hand it to render_config (unsaved)."""
    return ModelCredential(backend=ModelCredential.Backend.LITELLM, base_url=base_url, api_key=api_key)


def rendered_config(token: str, *, model_url: str | None = None) -> dict:
    """`render_config` exactly, bound to loopback; with a model URL, the provider and default
    model are rendered by the project itself from its MODEL_* settings and the credential."""
    model = credential(model_url) if model_url else None
    config = json.loads(openclaw.render_config(token=token, sprite_url=SPRITE_URL, model=model))
    config["gateway"]["bind"] = "loopback"
    return config


def service_argv_env(token: str, home: Path, install: harness.Install) -> tuple[list[str], dict]:
    """`gateway_service(token)`: its args as they are, its env with the sprite's paths mapped."""
    spec = openclaw.gateway_service(token)
    assert spec["cmd"] == openclaw.OPENCLAW_BIN and spec["dir"] == openclaw.SPRITE_HOME
    env = dict(spec["env"])
    env["HOME"] = str(home)
    env["PATH"] = env["PATH"].replace("/usr/local/bin", str(install.node_bin_dir))
    return spec["args"], env


def service_events(gateway: harness.Gateway) -> list[StreamEvent]:
    """What the Sprites service stream carries for this process: its output lines, then its
    exit (sprites-api.md: stdout|stderr|exit events)."""
    events = [StreamEvent(type="stdout", data=line) for line in gateway.stdout.splitlines() if line.strip()]
    events += [StreamEvent(type="stderr", data=line) for line in gateway.stderr.splitlines() if line.strip()]
    if gateway.exit_code is not None:
        events.append(StreamEvent(type="exit", exit_code=gateway.exit_code))
    return events


@pytest.fixture(scope="module")
def port():
    return harness.free_port()


@pytest.fixture(scope="module", autouse=True)
def _project_settings(port):
    with override_settings(OPENCLAW_GATEWAY_PORT=port, OPENCLAW_ALLOWED_ORIGINS=[FRONTEND], **MODEL_SETTINGS):
        yield


@pytest.fixture(scope="module")
def model():
    with harness.fake_model_server(reply="HEARTBEAT_OK", prompt_tokens=1000, completion_tokens=200) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, openclaw_install, model, port):
    """The gateway started with the project's exact service command, arguments and env."""
    token = secrets.token_urlsafe(48)
    home = harness.new_home(tmp_path_factory.mktemp("project-gateway"))
    args, env = service_argv_env(token, home, openclaw_install)
    handle = harness.start_gateway(rendered_config(token, model_url=model.base_url), env=env, port=port,
                                   home=home, args=args, install=openclaw_install)
    handle.token = token
    try:
        handle.startup_seconds = handle.wait_startupz(timeout=openclaw.startup_wait_seconds())
        print(f"\n/startupz 200 after {handle.startup_seconds:.1f} s (the project waits "
              f"{openclaw.startup_wait_seconds()} s)")
        yield handle
    finally:
        handle.stop()


def cli(gateway, *args, timeout: float = 120) -> harness.CliResult:
    return harness.run_cli(list(args), gateway.home, timeout=timeout)


def test_the_rendered_config_validates(openclaw_home):
    """The exact render (bind "lan" included) passes OpenClaw's own validation."""
    harness.write_config(openclaw_home, openclaw.render_config(token="t" * 64, sprite_url=SPRITE_URL))
    result = harness.run_cli(["config", "validate", "--json"], openclaw_home)
    assert result.code == 0, result.stdout + result.stderr
    assert result.json()["valid"] is True


def test_the_rendered_config_with_a_model_provider_validates(openclaw_home):
    """The provider the project renders for a sprite's own credential is OpenClaw's exact
    custom-provider schema (an unknown key there would stop the gateway)."""
    config = openclaw.render_config(token="t" * 64, sprite_url=SPRITE_URL,
                                    model=credential("https://llm.example.test/v1", "sk-virtual"))
    rendered = json.loads(config)
    assert rendered["agents"]["defaults"]["model"] == {"primary": "clawdirector/fake-model"}
    assert rendered["models"]["providers"]["clawdirector"]["models"][0]["cost"] == PRICES
    harness.write_config(openclaw_home, config)
    result = harness.run_cli(["config", "validate", "--json"], openclaw_home)
    assert result.code == 0, result.stdout + result.stderr
    assert result.json() == {"valid": True, "path": result.json()["path"], "warnings": []}


def test_an_unknown_key_is_a_gateway_failure_with_openclaws_message(openclaw_install, tmp_path):
    """Production starts the service and watches its stream for the failure window: the
    gateway exits 78 inside it, and check_stream turns that into GatewayFailed with OpenClaw's
    own words (not a time-out)."""
    token = secrets.token_urlsafe(48)
    config = rendered_config(token)
    config["gateway"]["bogusKey"] = True
    home = harness.new_home(tmp_path)
    harness.write_config(home, config)
    validated = harness.run_cli(["config", "validate", "--json"], home)
    assert validated.code == 1 and "Unrecognized key" in json.dumps(validated.json()["issues"])

    args, env = service_argv_env(token, home, openclaw_install)
    gateway = harness.start_gateway(None, env=env, home=home, args=args, install=openclaw_install)
    try:
        window = settings.OPENCLAW_FAILURE_WINDOW_SECONDS
        deadline = time.monotonic() + window
        while gateway.exit_code is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert gateway.exit_code == 78, f"no exit within the {window:g} s failure window"
        with pytest.raises(GatewayFailed, match="Unrecognized key") as failed:
            check_stream(service_events(gateway), "Starting the gateway service")
        assert "exit code 78" in str(failed.value)
    finally:
        gateway.stop()


def test_the_gateway_starts_within_the_projects_wait(gateway):
    assert gateway.startup_seconds < openclaw.startup_wait_seconds()
    status, body = harness.http_get(gateway.port, "/startupz")
    assert status == 200 and body["status"] == "started"


def test_a_browser_connects_with_the_users_token_and_a_wrong_one_is_refused(gateway):
    ok = harness.ws_connect(gateway.url, gateway.token)
    assert ok.challenge["event"] == "connect.challenge" and ok.hello, ok.response
    wrong = harness.ws_connect(gateway.url, secrets.token_urlsafe(48))
    assert wrong.hello is None and wrong.error["details"]["code"] == "AUTH_TOKEN_MISMATCH"
    assert wrong.close_code == 1008


def test_a_request_through_the_proxy_is_accepted_with_the_rendered_trusted_proxies(gateway):
    """OPENCLAW_TRUSTED_PROXIES' default (loopback) lets the router's X-Forwarded-For in: the
    client is attributed, not refused with 403 proxy_attribution_required."""
    proxied = harness.ws_connect(gateway.url, gateway.token, device=False, headers=PROXIED)
    assert proxied.http_status == 101 and proxied.hello, proxied.http_body or proxied.response


def test_the_heartbeat_commands_flags_are_all_in_agent_help(gateway):
    command = openclaw.heartbeat_command(timeout=settings.HEARTBEAT_TIMEOUT_SECONDS)
    agent_part = command[command.index(f"{openclaw.OPENCLAW_BIN} agent"):]
    flags = set(re.findall(r"\s(--[a-z][a-z-]*)", agent_part))
    assert flags >= {"--agent", "--message-file", "--timeout", "--json"}
    help_text = cli(gateway, "agent", "--help").stdout
    assert {flag for flag in flags if flag not in help_text} == set()


def heartbeat_turn(gateway, install) -> subprocess.CompletedProcess:
    """The project's heartbeat command, run as the sprite runs it (`bash -c`), with the
    sprite's paths mapped onto this machine."""
    prompt = gateway.home / ".openclaw" / "heartbeat.md"
    prompt.write_bytes(openclaw.heartbeat_prompt())
    command = openclaw.heartbeat_command(timeout=settings.HEARTBEAT_TIMEOUT_SECONDS)
    command = command.replace(openclaw.OPENCLAW_BIN, str(install.openclaw_bin))
    command = command.replace(openclaw.HEARTBEAT_PROMPT_PATH, str(prompt))
    env = harness.base_env(gateway.home, install)
    return subprocess.run(["bash", "-c", command], env=env, cwd=str(gateway.home), capture_output=True, text=True,
                          timeout=settings.HEARTBEAT_TIMEOUT_SECONDS + 30)


def test_one_heartbeat_turn_runs_and_the_project_reads_its_cost(gateway, model, openclaw_install):
    """Issue 15's proof: the config the project renders (provider + default model from
    settings, the sprite's own key) makes a real turn succeed, and costUsd = tokens x the
    configured prices per million tokens."""
    before = dict(model.usage_by_key.get("sk-contract", {"prompt_tokens": 0, "completion_tokens": 0}))
    ran = heartbeat_turn(gateway, openclaw_install)
    turn = openclaw.parse_turn(ran.returncode, ran.stdout, ran.stderr)
    assert turn.ok, ran.stdout[-2000:] + ran.stderr[-2000:]
    used = model.usage_by_key["sk-contract"]
    tokens_in = used["prompt_tokens"] - before["prompt_tokens"]
    tokens_out = used["completion_tokens"] - before["completion_tokens"]
    assert tokens_in and tokens_out
    expected = (tokens_in * settings.MODEL_PRICE_INPUT + tokens_out * settings.MODEL_PRICE_OUTPUT) / 10**6
    assert turn.cost_usd == expected


def test_devices_list_approve_and_unknown_id_through_the_projects_parsers(gateway):
    first = harness.ws_connect(gateway.url, gateway.token, client_id="openclaw-control-ui", client_mode="webchat",
                               headers=PROXIED, display_name="Owner laptop")
    request_id = first.error["details"]["requestId"]

    listed = cli(gateway, *openclaw.devices_list_argv()[1:])
    assert listed.code == 0, listed.stderr
    pending = {p["requestId"]: p for p in openclaw.parse_devices(listed.stdout)}
    assert pending[request_id]["displayName"] == "Owner laptop" and pending[request_id]["remoteIp"] == "203.0.113.7"

    approved = cli(gateway, *openclaw.devices_approve_argv(request_id)[1:])
    assert approved.code == 0, approved.stderr
    assert openclaw.parse_approved(approved.stdout, request_id)["deviceId"] == first.device_id

    unknown = cli(gateway, *openclaw.devices_approve_argv(request_id)[1:])  # consumed: unknown now
    assert unknown.code == 1 and openclaw.approve_not_found(unknown.stderr)


def test_the_dashboard_link_is_rehomed_on_the_sprite_url_and_keeps_its_expiry(gateway):
    result = cli(gateway, *openclaw.dashboard_argv()[1:])
    assert result.code == 0, result.stdout + result.stderr
    link = openclaw.parse_dashboard(result.stdout, sprite_url=SPRITE_URL)
    parts = urlsplit(link.url)
    assert f"{parts.scheme}://{parts.netloc}" == SPRITE_URL
    fragment = parse_qs(parts.fragment)
    assert fragment["gatewayUrl"] == ["wss://claw-contract-x1.sprites.app/"] and fragment["bootstrapToken"]
    assert gateway.token not in link.url
    assert abs(link.expires_at.timestamp() - time.time() - 600) < 60


def test_a_failed_turn_is_a_failed_wake_with_its_message(gateway, model, openclaw_install):
    """Runs last: a 402 from the model disables the provider's key for about 10 minutes."""
    model.fail_keys["sk-contract"] = 402
    ran = heartbeat_turn(gateway, openclaw_install)
    turn = openclaw.parse_turn(ran.returncode, ran.stdout, ran.stderr)
    assert ran.returncode == 1 and not turn.ok and not turn.timed_out
    assert turn.error == json.loads(ran.stdout)["error"]["message"] and "billing" in turn.error
