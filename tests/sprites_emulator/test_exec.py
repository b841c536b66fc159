"""Exec: framing, the tiny shell, heartbeat turns, timeouts and sessions."""

import json
import os
import time
import uuid

import requests

from .conftest import Api, run_in_thread


def test_it_frames_exec_output_one_frame_per_chunk(emu):
    api = Api(emu.url)
    api.create("ex")
    frames, response = api.exec("ex", "bash", "-c", "echo out; echo err >&2; exit 3")
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert frames == [b"\x01out\n", b"\x02err\n", b"\x03\x03"]


def test_it_follows_and_and_or_in_scripts(emu):
    api = Api(emu.url)
    api.create("sh")
    assert api.run("sh", "bash", "-c", "false && echo no || echo yes") == (0, b"yes\n", b"")
    assert api.run("sh", "sh", "-lc", "echo -n a; exit 300")[:2] == (44, b"a")
    assert api.run("sh", "echo", "plain", "argv") == (0, b"plain argv\n", b"")


def test_it_runs_a_heartbeat_turn(emu):
    api = Api(emu.url)
    api.create("hb")
    code, out, err = api.run("hb", "timeout", "-k", "10", "150", "openclaw", "agent", "--agent", "main",
                             "--message-file", "/tmp/prompt.md", "--timeout", "120", "--json")
    assert code == 0 and err == b""
    result = json.loads(out)
    assert result["status"] == "ok" and result["summary"] == "completed"
    assert result["result"]["payloads"] == [{"text": "HEARTBEAT_OK", "mediaUrl": None}]
    meta = result["result"]["meta"]  # no top-level meta when run through the gateway
    assert meta["agentMeta"]["costUsd"] == 0.0012 and "meta" not in result
    assert meta["durationMs"] >= 50


def test_it_applies_heartbeat_behaviour_overrides(emu):
    api = Api(emu.url)
    api.create("hb2")
    response = requests.post(f"{emu.url}/_emulator/sprites/hb2/behavior", timeout=5,
                             json={"heartbeat_exit_code": 1, "heartbeat_cost_usd": 0.5})
    assert response.status_code == 200
    code, out, err = api.run("hb2", "openclaw", "agent", "--json")
    assert code == 1 and b"The CLI command failed" in err
    assert json.loads(out)["error"]["message"] == "Agent turn failed (emulated)"
    bad = requests.post(f"{emu.url}/_emulator/sprites/hb2/behavior", json={"nope": 1}, timeout=5)
    assert bad.status_code == 400


def test_it_caps_a_hanging_turn_with_its_timeout_wrapper(emu):
    api = Api(emu.url)
    api.create("hang")
    emu.set_behavior("hang", hang=True)
    started = time.monotonic()
    code, out, _ = api.run("hang", "bash", "-c", "timeout -k 10 0.3 openclaw agent --json")
    assert code == 124 and out == b""
    assert 0.25 < time.monotonic() - started < 2


def test_it_never_runs_host_commands(emu):
    api = Api(emu.url)
    api.create("safe")
    target = f"/tmp/x-{uuid.uuid4()}"
    assert api.run("safe", "touch", target)[0] == 0
    assert api.run("safe", "bash", "-c", f"touch {target} && echo made")[1] == b"made\n"
    assert api.run("safe", "sh", "-c", f"python3 -c 'open(\"{target}\", \"w\")'")[0] == 0
    assert not os.path.exists(target)


def test_it_lists_sessions_and_ends_them_on_restore(emu):
    api = Api(emu.url)
    api.create("sess")
    result = {}
    worker = run_in_thread(emu, "sess", "sleep", "5", into=result)
    for _ in range(50):
        sessions = api("GET", "/v1/sprites/sess/exec").json()["sessions"]
        if sessions:
            break
        time.sleep(0.02)
    assert sessions[0]["command"] == "sleep 5" and sessions[0]["is_active"] is True
    restore = api("POST", "/v1/sprites/sess/checkpoints/v0/restore")
    assert restore.status_code == 200
    worker.join(timeout=3)
    assert result["run"][0] == 137  # killed, not left running
    assert api("GET", "/v1/sprites/sess/exec").json() == {"sessions": []}
