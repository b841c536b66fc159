"""The emulator's OpenClaw guest answers with the shapes the real openclaw 2026.9.6 prints
(tests/fixtures/openclaw/2026.9.6, recorded from the real package by the contract suite), so
a provision and a heartbeat against the emulator meet what a real sprite would say.

"Same shape": every key the guest prints exists in the real output at the same path with a
value of the same JSON type (the guest invents nothing), and every path ClawDirector reads is
present in both."""

import json
from pathlib import Path

import pytest
import requests
from django.conf import settings

from .conftest import Api

# The fixtures of the pinned release (recorded by tests/openclaw_contract/record_fixtures.py).
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openclaw" / settings.OPENCLAW_VERSION


def kind(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}[type(value)]


def invented(guest, real, path="") -> list[str]:
    """Paths in `guest` the real output lacks, or holds with another JSON type."""
    if isinstance(guest, dict) and isinstance(real, dict):
        return [
            p for key, value in guest.items()
            for p in ([f"{path}.{key}"] if key not in real else invented(value, real[key], f"{path}.{key}"))
        ]
    if isinstance(guest, list) and isinstance(real, list):
        return [p for item in guest[:1] for p in invented(item, real[0], f"{path}[]")] if real else []
    if kind(guest) != kind(real) and "null" not in (kind(guest), kind(real)):
        return [f"{path}: {kind(guest)} vs {kind(real)}"]
    return []


def at(data, path: str):
    for key in path.split("."):
        data = data[int(key)] if isinstance(data, list) else data[key]
    return data


def real(name: str):
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def sprite(emu):
    api = Api(emu.url)
    api.create("shapes")
    return api


def run_json(api, *argv):
    code, out, err = api.run("shapes", "openclaw", *argv)
    return code, json.loads(out), err.decode()


def test_a_heartbeat_turn_has_the_real_shape(sprite):
    code, guest, _ = run_json(sprite, "agent", "--agent", "main", "--json")
    assert code == 0
    assert invented(guest, real("agent-turn-ok.json")) == []
    for path in ("status", "result.meta.agentMeta.costUsd", "result.meta.durationMs"):
        assert at(guest, path) is not None and at(real("agent-turn-ok.json"), path) is not None


def test_a_failed_turn_has_the_real_shape(sprite, emu):
    emu.set_behavior("shapes", heartbeat_exit_code=1)
    code, guest, err = run_json(sprite, "agent", "--agent", "main", "--json")
    assert code == 1 and invented(guest, real("agent-turn-failed.json")) == []
    assert guest["ok"] is False and guest["error"]["message"]
    assert err.startswith((FIXTURES / "agent-turn-failed.stderr.txt").read_text().splitlines()[0])


def test_devices_and_dashboard_have_the_real_shapes(sprite, emu):
    requests.post(f"{emu.url}/_emulator/sprites/shapes/pairing-request", timeout=5).raise_for_status()
    code, listing, _ = run_json(sprite, "devices", "list", "--json")
    assert code == 0 and invented(listing, real("devices-list.json")) == []
    request_id = listing["pending"][0]["requestId"]

    code, approved, _ = run_json(sprite, "devices", "approve", request_id, "--json")
    assert code == 0 and invented(approved, real("devices-approve.json")) == []

    code, out, err = sprite.run("shapes", "openclaw", "devices", "approve", request_id, "--json")
    real_err = (FIXTURES / "devices-approve-unknown.stderr.txt").read_text()
    assert code == 1 and out == b"" and err.decode().split(request_id)[0] == real_err.split(" matches ")[0] + " matches "

    code, link, _ = run_json(sprite, "dashboard", "--json")
    assert code == 0 and invented(link, real("dashboard.json")) == [] and set(link) == set(real("dashboard.json"))
