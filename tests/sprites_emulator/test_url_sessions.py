"""User sessions through the sprite URL and the clock control (sprites_emulator/sessions.py)."""

import socket
import time

import pytest

from sprites_emulator.testing import start_emulator

from .conftest import Api


def gateway(api, name):
    response = api("PUT", f"/v1/sprites/{name}/services/gw", json={"cmd": "openclaw", "args": ["gateway"],
                                                                  "http_port": 18789})
    assert response.status_code == 200


def test_the_clock_moves_status_and_the_meter_forward():
    with start_emulator(idle_seconds=30, cold_seconds=300) as emu:
        api = Api(emu.url)
        api.create("vm")
        api("GET", "/_sprite/vm/healthz")
        assert api.status("vm") == "running"
        answer = api("POST", "/_emulator/clock", json={"advance": 31}).json()
        assert answer["offset_seconds"] == 31
        assert api.status("vm") == "warm"
        assert api("GET", "/v1/sprites/vm").json()["last_warming_at"] < answer["now"]
        assert emu.meter()["sprites"]["vm"]["running_seconds"] == pytest.approx(30, abs=0.5)
        assert api("POST", "/_emulator/clock", json={"advance": -1}).status_code == 400
        assert api("POST", "/_emulator/clock", json={"advance": "1"}).status_code == 400


def test_a_simulated_session_keeps_the_sprite_running_for_its_length_then_the_idle_window():
    with start_emulator(idle_seconds=30, cold_seconds=300) as emu:
        api = Api(emu.url)
        api.create("vm")
        response = api("POST", "/_emulator/sprites/vm/session", json={"seconds": 600})
        assert response.status_code == 201
        emu.advance_clock(599)
        assert api.status("vm") == "running"
        emu.advance_clock(30.5)
        assert api.status("vm") == "running"  # inside the idle window
        emu.advance_clock(1)
        assert api.status("vm") == "warm"
        meter = emu.meter()["sprites"]["vm"]
        assert meter["running_seconds"] == pytest.approx(630, abs=0.5)
        assert meter["url_sessions"] == 1 and meter["wakes"] == 1
        assert api("POST", "/_emulator/sprites/vm/session", json={}).status_code == 400
        assert api("POST", "/_emulator/sprites/nope/session", json={"seconds": 1}).status_code == 404


def test_a_websocket_to_the_sprite_url_keeps_it_running_until_the_client_hangs_up():
    with start_emulator(idle_seconds=30, cold_seconds=300) as emu:
        api = Api(emu.url)
        api.create("vm")
        gateway(api, "vm")
        emu.advance_clock(100)
        host, port = emu.url.removeprefix("http://").rsplit(":", 1)
        conn = socket.create_connection((host, int(port)))
        conn.sendall(b"GET /_sprite/vm/ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        assert conn.recv(100).startswith(b"HTTP/1.1 101")
        emu.advance_clock(3600)
        assert api.status("vm") == "running" and emu.activities("vm") == 1
        conn.close()
        for _ in range(200):
            if emu.activities("vm") == 0:
                break
            time.sleep(0.01)
        emu.advance_clock(31)
        assert api.status("vm") == "warm"
        assert emu.meter()["sprites"]["vm"]["running_seconds"] == pytest.approx(30 + 3600 + 30, abs=1)


def test_a_websocket_to_a_sprite_whose_gateway_is_down_is_a_503_and_a_wake():
    with start_emulator(idle_seconds=30, cold_seconds=300) as emu:
        api = Api(emu.url)
        api.create("vm")
        response = api("GET", "/_sprite/vm/", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
        assert response.status_code == 503
        assert emu.activities("vm") == 0 and api.status("vm") == "running"


def test_the_websocket_speaks_the_gateways_opening_hello_to_its_token_and_1008_to_another():
    """What OpenClaw 2026.9.6 does (tests/openclaw_contract/test_smoke.py pins the real one):
    a challenge, hello-ok for the gateway token, AUTH_TOKEN_MISMATCH then a 1008 close."""
    from sprites.client import ws_exchange
    from sprites.openclaw import connect

    with start_emulator(idle_seconds=30, cold_seconds=300) as emu:
        api = Api(emu.url)
        api.create("vm")
        response = api("PUT", "/v1/sprites/vm/services/gw", json={
            "cmd": "openclaw", "args": ["gateway"], "http_port": 18789, "env": {"OPENCLAW_GATEWAY_TOKEN": "tok-1"}})
        assert response.status_code == 200
        url = f"{emu.url}/_sprite/vm"
        frames = ws_exchange(url, lambda first: connect.probe_request("tok-1"))
        assert frames[0]["event"] == "connect.challenge" and connect.probe_problem(frames) == ""
        wrong = ws_exchange(url, lambda first: connect.probe_request("tok-2"))
        assert connect.probe_problem(wrong) == "WebSocket connect refused: AUTH_TOKEN_MISMATCH"
        for _ in range(200):  # both hung up: no session holds the sprite any more
            if emu.activities("vm") == 0:
                break
            time.sleep(0.01)
        assert emu.activities("vm") == 0
