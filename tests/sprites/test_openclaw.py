"""sprites.openclaw: the pins and their engines range, the config it renders, the shapes of
what the real 2026.9.6 CLI prints (openclaw.md), and the dashboard link it hands out."""

import json
import subprocess
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.core.checks import run_checks

from sprites import openclaw
from sprites.openclaw import engines

ENGINES = ">=24.16.0 <25 || >=26.1.0"  # openclaw 2026.9.6, npm view openclaw@2026.9.6 engines


@pytest.mark.parametrize("node, ok", [
    ("24.15.0", False), ("24.16.0", True), ("24.22.3", True), ("25.0.0", False), ("25.9.0", False),
    ("26.0.9", False), ("26.1.0", True), ("27.2.1", True), ("22.22.3", False),
])
def test_it_reads_the_engines_range_like_npm(node, ok):
    assert engines.satisfies(node, ENGINES) is ok


def test_it_ships_the_pinned_releases_engines_and_a_node_inside_them(settings):
    assert engines.node_engines("2026.9.6") == ENGINES
    assert engines.satisfies(settings.OPENCLAW_NODE_VERSION, engines.node_engines())


def test_the_system_check_refuses_a_node_outside_the_pinned_range(settings):
    settings.OPENCLAW_NODE_VERSION = "24.15.0"
    assert "clawdirector.E005" in {e.id for e in run_checks()}
    settings.OPENCLAW_NODE_VERSION = "24.22.3"
    assert "clawdirector.E005" not in {e.id for e in run_checks()}
    settings.OPENCLAW_VERSION = "2099.1.1"
    assert "clawdirector.W002" in {e.id for e in run_checks()}


def test_it_renders_trusted_proxies_from_the_setting(settings):
    settings.OPENCLAW_TRUSTED_PROXIES = ["10.0.0.0/8"]
    config = json.loads(openclaw.render_config(token="t", sprite_url="https://claw-a.sprites.app"))
    assert config["gateway"]["trustedProxies"] == ["10.0.0.0/8"]


def test_it_recognises_the_real_unknown_request_message():
    stderr = "No pending device request matches 3f2a. Run openclaw devices list and retry with a current id."
    assert openclaw.approve_not_found(stderr)
    assert not openclaw.approve_not_found("gateway closed the connection")


DASHBOARD = {  # the shape of `openclaw dashboard --json` in 2026.9.6 (openclaw.md)
    "ok": True,
    "url": "http://127.0.0.1:8080/#token=SHARED-GATEWAY-TOKEN",
    "httpUrl": "http://127.0.0.1:8080/",
    "wsUrl": "ws://127.0.0.1:8080/",
    "port": 8080,
    "tokenIncluded": True,
    "browserUrl": "http://127.0.0.1:8080/#bootstrapToken=boot-123&bootstrapProfile=owner&gatewayUrl=ws%3A%2F%2F127.0.0.1%3A8080",
    "browserBootstrapExpiresAtMs": 1796000000000,
}


def test_it_points_the_dashboard_link_at_the_sprites_public_url():
    link = openclaw.parse_dashboard(json.dumps(DASHBOARD), sprite_url="https://claw-a-x1.sprites.app")
    parts = urlsplit(link.url)
    assert (parts.scheme, parts.netloc) == ("https", "claw-a-x1.sprites.app")
    fragment = parse_qs(parts.fragment)
    assert fragment["bootstrapToken"] == ["boot-123"] and fragment["bootstrapProfile"] == ["owner"]
    assert fragment["gatewayUrl"] == ["wss://claw-a-x1.sprites.app/"]
    assert "SHARED-GATEWAY-TOKEN" not in link.url
    assert link.expires_at.timestamp() == 1796000000


def test_the_setup_script_reads_the_version_inside_openclaws_banner():
    """`openclaw --version` prints "OpenClaw 2026.9.6 (<commit>)"; comparing the whole line
    with the pin reinstalled OpenClaw on every set-up."""
    script = (openclaw.ASSETS / "setup.sh").read_text()
    [line] = [ln for ln in script.splitlines() if ln.startswith("installed=")]
    pipeline = line.split("2>/dev/null", 1)[1].rsplit("|| true", 1)[0]
    out = subprocess.run(["bash", "-c", f"echo 'OpenClaw 2026.9.6 (4f1c2ab)' {pipeline}"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "2026.9.6"


# The fixtures of the pinned release (recorded by tests/openclaw_contract/record_fixtures.py).
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openclaw" / settings.OPENCLAW_VERSION


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_it_reads_a_real_turns_cost_from_where_the_gateway_puts_it():
    turn = openclaw.parse_turn(0, fixture("agent-turn-ok.json"))
    data = json.loads(fixture("agent-turn-ok.json"))
    assert turn.ok and turn.error == ""
    assert turn.cost_usd == Decimal(str(data["result"]["meta"]["agentMeta"]["costUsd"])) > 0


def test_a_real_failed_turn_is_a_failure_with_openclaws_own_message():
    turn = openclaw.parse_turn(1, fixture("agent-turn-failed.json"), fixture("agent-turn-failed.stderr.txt"))
    assert not turn.ok and not turn.timed_out
    assert turn.error == json.loads(fixture("agent-turn-failed.json"))["error"]["message"]


def test_the_real_unknown_request_message_is_recognised():
    assert openclaw.approve_not_found(fixture("devices-approve-unknown.stderr.txt"))


def test_it_reads_the_real_devices_list_and_approval():
    [pending] = openclaw.parse_devices(fixture("devices-list.json"))
    assert set(pending) <= set(openclaw.PAIRING_FIELDS) and pending["requestId"]
    approved = openclaw.parse_approved(fixture("devices-approve.json"), pending["requestId"])
    assert approved["deviceId"] == json.loads(fixture("devices-approve.json"))["device"]["deviceId"]


def test_it_rehomes_the_real_dashboard_link():
    link = openclaw.parse_dashboard(fixture("dashboard.json"), sprite_url="https://claw-a-x1.sprites.app")
    assert link.url.startswith("https://claw-a-x1.sprites.app/#bootstrapToken=")
    assert "gatewayUrl=wss%3A%2F%2Fclaw-a-x1.sprites.app%2F" in link.url and link.expires_at is not None


def test_a_node_pin_it_cannot_read_is_refused_not_a_crash(settings):
    settings.OPENCLAW_NODE_VERSION = "24"
    assert "clawdirector.E005" in {e.id for e in run_checks()}
    with pytest.raises(ValueError):
        engines.satisfies("24.22.3", "^24.16.0")  # outside the grammar engines.node uses: say so
