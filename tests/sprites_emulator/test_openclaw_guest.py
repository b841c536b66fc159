"""The simulated OpenClaw CLI inside a sprite: pairing, dashboard links, set-up."""

import json
import time

import pytest
import requests

from .conftest import Api


def test_it_handles_device_pairing(emu):
    api = Api(emu.url)
    api.create("pair")
    response = requests.post(f"{emu.url}/_emulator/sprites/pair/pairing-request", timeout=5,
                             json={"displayName": "Firefox on Linux"})
    assert response.status_code == 201
    request_id = response.json()["requestId"]

    code, out, _ = api.run("pair", "openclaw", "devices", "list", "--json")
    listing = json.loads(out)
    assert code == 0 and listing["paired"] == []
    pending = listing["pending"][0]
    assert pending["requestId"] == request_id and pending["displayName"] == "Firefox on Linux"
    assert pending["role"] == "operator" and isinstance(pending["ts"], int)

    code, out, _ = api.run("pair", "openclaw", "devices", "approve", request_id)
    assert code == 0 and request_id in out.decode()
    listing = json.loads(api.run("pair", "openclaw", "devices", "list", "--json")[1])
    assert listing["pending"] == [] and listing["paired"][0]["deviceId"] == pending["deviceId"]

    code, _, err = api.run("pair", "openclaw", "devices", "approve", "no-such-request")
    assert code == 1 and err.startswith(b"No pending device request matches no-such-request.")
    missing = requests.post(f"{emu.url}/_emulator/sprites/ghost/pairing-request", timeout=5)
    assert missing.status_code == 404


def test_it_mints_single_use_dashboard_links(emu):
    api = Api(emu.url)
    url = api.create("dash")["url"]
    first = json.loads(api.run("dash", "openclaw", "dashboard", "--json")[1])
    second = json.loads(api.run("dash", "openclaw", "dashboard", "--json")[1])
    # The real 2026.9.6 shape (openclaw.md): loopback links, the expiry under its own name.
    assert set(first) == {"ok", "url", "httpUrl", "wsUrl", "port", "tokenIncluded", "browserUrl",
                          "browserBootstrapExpiresAtMs"}
    assert first["browserUrl"].startswith("http://127.0.0.1:") and "#bootstrapToken=" in first["browserUrl"]
    assert first["browserUrl"] != second["browserUrl"]
    assert first["browserBootstrapExpiresAtMs"] == pytest.approx(time.time() * 1000 + 600_000, abs=5_000)
    assert url  # the emulator's sprite URL; ClawDirector rewrites the link onto it


def test_it_runs_the_setup_script(emu):
    api = Api(emu.url)
    api.create("fresh")
    code, out, _ = api.run("fresh", "bash", "-c", "curl -fsSL https://openclaw.ai/install.sh | bash -s -- --no-onboard")
    assert code == 0 and out
    assert emu.openclaw_installed("fresh") is True
