"""The local Sprites emulator, exercised over real HTTP with `requests` (no Django involved)."""

import json
import os
import threading
import time
import uuid

import pytest
import requests

from sprites.emulator.testing import start_emulator


@pytest.fixture
def emu():
    with start_emulator(idle_seconds=0.3, cold_seconds=0.3, exec_seconds=0.05, setup_seconds=0) as handle:
        yield handle


class Api:
    """A bearer-token session bound to one emulator."""

    def __init__(self, url: str, token: str = "test-token"):
        self.url = url
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.url + path, **kwargs)

    def create(self, name: str, **body) -> dict:
        response = self("POST", "/v1/sprites", json={"name": name, **body})
        assert response.status_code == 201, response.text
        return response.json()

    def exec(self, name: str, *argv: str) -> tuple[list[bytes], requests.Response]:
        """Run argv; returns the frames as sent, one per HTTP chunk."""
        response = self("POST", f"/v1/sprites/{name}/exec", params=[("cmd", a) for a in argv], stream=True)
        if response.status_code != 200:
            return [], response
        frames = [chunk for chunk in response.raw.read_chunked() if chunk]
        return frames, response

    def run(self, name: str, *argv: str) -> tuple[int, bytes, bytes]:
        """Run argv; returns (exit code, stdout, stderr)."""
        frames, response = self.exec(name, *argv)
        assert response.status_code == 200, response.text
        assert frames[-1][:1] == b"\x03" and len(frames[-1]) == 2, frames
        out = b"".join(f[1:] for f in frames if f[:1] == b"\x01")
        err = b"".join(f[1:] for f in frames if f[:1] == b"\x02")
        return frames[-1][1], out, err

    def status(self, name: str) -> str:
        return self("GET", f"/v1/sprites/{name}").json()["status"]


def ndjson(response: requests.Response) -> list[dict]:
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def run_in_thread(emu, name: str, *argv: str, into: dict | None = None) -> threading.Thread:
    """Run argv on its own connection in the background; the result lands in `into["run"]`."""
    def work():
        result = Api(emu.url).run(name, *argv)
        if into is not None:
            into["run"] = result

    thread = threading.Thread(target=work)
    thread.start()
    return thread


# --- sprites -------------------------------------------------------------------------------


def test_it_creates_gets_and_deletes_a_sprite(emu):
    api = Api(emu.url)
    created = api.create("alpha", labels=["pool"])
    assert created["name"] == "alpha"
    assert created["id"].startswith("sprite-")
    assert created["status"] == "cold"
    assert created["organization"] == "emulator"
    assert created["url"] == f"{emu.url}/_sprite/alpha"
    assert created["url_settings"] == {"auth": "sprite"}
    assert created["labels"] == ["pool"]
    assert created["version"] is None and created["environment_version"] is None
    assert created["created_at"].endswith("Z")

    got = api("GET", "/v1/sprites/alpha")
    assert got.status_code == 200
    assert got.headers["Sprite-Version"] == "v0.0.1-emulator"
    assert got.json()["id"] == created["id"]

    deleted = api("DELETE", "/v1/sprites/alpha")
    assert deleted.status_code == 204 and deleted.content == b""
    gone = api("GET", "/v1/sprites/alpha")
    assert gone.status_code == 404
    assert gone.json() == {"error": "sprite not found"}


def test_it_pages_through_the_list(emu):
    api = Api(emu.url)
    for i in range(120):
        api.create(f"claw-{i:03d}")
    api.create("other-1")

    names, token, pages = [], None, 0
    while True:
        params = {"prefix": "claw-", "max_results": 50}
        if token:
            params["continuation_token"] = token
        page = api("GET", "/v1/sprites", params=params).json()
        pages += 1
        names += [s["name"] for s in page["sprites"]]
        assert all("status" in s and "url" in s for s in page["sprites"])  # full objects
        if not page["has_more"]:
            assert page["next_continuation_token"] is None
            break
        token = page["next_continuation_token"]
    assert pages == 3
    assert names == [f"claw-{i:03d}" for i in range(120)]
    assert page["org"] == {"name": "emulator", "running": 0, "warm": 0, "cold": 121,
                           "running_limit": 10000, "warm_limit": 10000}
    assert (page["running"], page["warm"], page["cold"]) == (0, 0, 121)

    clamped = api("GET", "/v1/sprites", params={"max_results": 500}).json()
    assert len(clamped["sprites"]) == 50 and clamped["has_more"] is True
    default = api("GET", "/v1/sprites").json()
    assert len(default["sprites"]) == 50


def test_it_refuses_a_duplicate_name(emu):
    api = Api(emu.url)
    api.create("dup")
    response = api("POST", "/v1/sprites", json={"name": "dup"})
    assert response.status_code == 409
    assert response.json()["error"].startswith("A sprite named 'dup' already exists.")


@pytest.mark.parametrize("name", ["", "a", "-ab", "ab-", "Abc", "a_b", "a.b", "a" * 64, None, 42])
def test_it_rejects_bad_names(emu, name):
    response = Api(emu.url)("POST", "/v1/sprites", json={"name": name})
    assert response.status_code == 400
    assert response.json() == {"errors": ["invalid sprite name format"]}


def test_it_accepts_a_63_character_name(emu):
    assert Api(emu.url).create("a" * 63)["name"] == "a" * 63


def test_it_answers_404_for_a_missing_sprite(emu):
    api = Api(emu.url)
    for method, path in [
        ("GET", "/v1/sprites/nope"), ("PUT", "/v1/sprites/nope"), ("DELETE", "/v1/sprites/nope"),
        ("POST", "/v1/sprites/nope/exec?cmd=true"), ("GET", "/v1/sprites/nope/services"),
        ("GET", "/v1/sprites/nope/checkpoints"), ("POST", "/v1/sprites/nope/checkpoint"),
        ("GET", "/v1/sprites/nope/fs/read?path=/x"), ("GET", "/v1/sprites/nope/policy/network"),
    ]:
        response = api(method, path, json={} if method == "PUT" else None)
        assert response.status_code == 404, (method, path)
        assert response.json() == {"error": "sprite not found"}, (method, path)


def test_it_requires_a_bearer_token(emu):
    for headers in [{}, {"Authorization": "Bearer "}, {"Authorization": "Token abc"}]:
        response = requests.get(f"{emu.url}/v1/sprites", headers=headers, timeout=5)
        assert response.status_code == 401
        assert response.json() == {"error": "authentication failed"}
    assert Api(emu.url, "anything")("GET", "/v1/sprites").status_code == 200


def test_it_accepts_only_the_configured_token():
    with start_emulator(token="s3cret") as emu:
        assert Api(emu.url, "wrong")("GET", "/v1/sprites").status_code == 401
        assert Api(emu.url, "s3cret")("GET", "/v1/sprites").status_code == 200


def test_it_updates_labels_and_url_settings(emu):
    api = Api(emu.url)
    api.create("upd", labels=["a"])
    response = api("PUT", "/v1/sprites/upd", json={"url_settings": {"auth": "public"}})
    assert response.status_code == 200
    assert response.json()["url_settings"] == {"auth": "public"}
    assert response.json()["labels"] == ["a"]  # omitted fields are left alone
    assert api("PUT", "/v1/sprites/upd", json={"labels": ["b", "c"]}).json()["labels"] == ["b", "c"]
    bad = api("PUT", "/v1/sprites/upd", json={"url_settings": {"auth": "everyone"}})
    assert bad.status_code == 400 and "errors" in bad.json()


# --- exec ----------------------------------------------------------------------------------


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
    assert result["status"] == "ok" and result["summary"] == "HEARTBEAT_OK"
    assert result["result"]["payloads"] == [{"text": "HEARTBEAT_OK"}]
    for meta in (result["meta"], result["result"]["meta"]):
        assert meta["agentMeta"]["costUsd"] == 0.0012
        assert meta["durationMs"] >= 50


def test_it_applies_heartbeat_behaviour_overrides(emu):
    api = Api(emu.url)
    api.create("hb2")
    response = requests.post(f"{emu.url}/_emulator/sprites/hb2/behavior", timeout=5,
                             json={"heartbeat_exit_code": 1, "heartbeat_cost_usd": 0.5})
    assert response.status_code == 200
    code, out, err = api.run("hb2", "openclaw", "agent", "--json")
    assert code == 1 and b"failed" in err
    assert json.loads(out)["meta"]["agentMeta"]["costUsd"] == 0.5
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


# --- the state machine and the meter ----------------------------------------------------------


def test_it_moves_from_running_to_warm_to_cold():
    with start_emulator(idle_seconds=0.4, cold_seconds=0.4, exec_seconds=0.05) as emu:
        api = Api(emu.url)
        api.create("vm")
        assert api.status("vm") == "cold"
        api.run("vm", "openclaw", "agent", "--json")
        assert api.status("vm") == "running"  # the idle tail
        sprite = api("GET", "/v1/sprites/vm").json()
        assert sprite["last_running_at"] is not None
        time.sleep(0.5)
        assert api.status("vm") == "warm"
        assert api("GET", "/v1/sprites/vm").json()["last_warming_at"] is not None
        time.sleep(0.4)
        assert api.status("vm") == "cold"


def test_it_is_running_while_an_exec_runs(emu):
    api = Api(emu.url)
    api.create("busy")
    worker = run_in_thread(emu, "busy", "sleep", "0.6")
    time.sleep(0.45)  # past the idle window: only the running exec keeps it up
    assert api.status("busy") == "running"
    worker.join()


def test_it_meters_exec_time_plus_the_idle_tail(emu):
    api = Api(emu.url)
    api.create("m1")
    emu.set_behavior("m1", heartbeat_seconds=0.2)
    api.run("m1", "openclaw", "agent", "--json")
    meter = requests.get(f"{emu.url}/_emulator/meter", timeout=5).json()
    entry = meter["sprites"]["m1"]
    assert entry["running_seconds_final"] == pytest.approx(0.2 + 0.3, abs=0.06)
    assert entry["running_seconds"] <= entry["running_seconds_final"]
    assert meter["total_running_seconds_final"] == pytest.approx(entry["running_seconds_final"])
    time.sleep(0.35)
    settled = emu.meter()["sprites"]["m1"]
    assert settled["running_seconds"] == pytest.approx(settled["running_seconds_final"], abs=1e-6)
    assert settled["status"] == "warm"


def test_it_never_counts_overlapping_activity_twice(emu):
    api = Api(emu.url)
    api.create("m2")
    workers = [run_in_thread(emu, "m2", "sleep", "0.3") for _ in range(3)]
    for worker in workers:
        worker.join()
    final = emu.meter()["sprites"]["m2"]["running_seconds_final"]
    assert final == pytest.approx(0.3 + 0.3, abs=0.08)  # not 3 x 0.3 + 0.3


def test_it_keeps_the_meter_of_a_deleted_sprite(emu):
    api = Api(emu.url)
    api.create("m3")
    api.run("m3", "sleep", "0.1")
    api("DELETE", "/v1/sprites/m3")
    entry = emu.meter()["sprites"]["m3"]
    assert entry["status"] == "deleted"
    assert 0.09 < entry["running_seconds"] < 0.3  # the unspent idle tail is not billed


# --- services ----------------------------------------------------------------------------------


def test_it_puts_starts_and_stops_services(emu):
    api = Api(emu.url)
    api.create("svc")
    body = {"cmd": "/usr/local/bin/openclaw", "args": ["gateway", "run"], "needs": [], "http_port": 8080,
            "env": {"OPENCLAW_GATEWAY_TOKEN": "secret-token"}, "dir": "/home/sprite"}
    put = api("PUT", "/v1/sprites/svc/services/gateway", params={"duration": "1s"}, json=body)
    assert put.status_code == 200
    assert put.headers["Content-Type"] == "application/x-ndjson"
    events = ndjson(put)
    assert [e["type"] for e in events] == ["started", "stdout", "complete"]
    assert all(isinstance(e["timestamp"], int) for e in events)
    assert api.status("svc") == "running"  # starting a service wakes the sprite

    listed = api("GET", "/v1/sprites/svc/services")
    assert "secret-token" not in listed.text  # env values never come back
    service = listed.json()[0]
    assert service["name"] == "gateway" and service["http_port"] == 8080
    assert service["state"]["status"] == "running" and service["state"]["pid"]
    assert api("GET", "/v1/sprites/svc/services/gateway").json()["state"]["status"] == "running"
    assert api("GET", "/v1/sprites/svc/services/nope").status_code == 404

    clash = api("PUT", "/v1/sprites/svc/services/other", json={"cmd": "x", "http_port": 9000})
    assert clash.status_code == 409
    assert api("PUT", "/v1/sprites/svc/services/other", json={"args": []}).status_code == 400

    stop = api("POST", "/v1/sprites/svc/services/gateway/stop")
    assert [e["type"] for e in ndjson(stop)] == ["stopping", "stopped"]
    assert api("GET", "/v1/sprites/svc/services/gateway").json()["state"]["status"] == "stopped"
    again = api("POST", "/v1/sprites/svc/services/gateway/stop")
    assert again.status_code == 409 and again.json() == {"error": "service not running"}

    start = api("POST", "/v1/sprites/svc/services/gateway/start", params={"duration": "0s"})
    assert [e["type"] for e in ndjson(start)] == ["started", "stdout", "complete"]
    assert api("DELETE", "/v1/sprites/svc/services/gateway").status_code == 204
    assert api("DELETE", "/v1/sprites/svc/services/gateway").status_code == 404


def test_it_never_holds_a_service_stream_longer_than_asked(emu):
    api = Api(emu.url)
    api.create("quick")
    started = time.monotonic()
    api("PUT", "/v1/sprites/quick/services/s", params={"duration": "5s"}, json={"cmd": "x"})
    assert time.monotonic() - started < 1
    assert api("PUT", "/v1/sprites/quick/services/s", params={"duration": "soon"},
               json={"cmd": "x"}).status_code == 400


def test_it_fails_the_gateway_on_request(emu):
    api = Api(emu.url)
    api.create("broken")
    emu.set_behavior("broken", gateway_fails=True)
    events = ndjson(api("PUT", "/v1/sprites/broken/services/gateway", json={"cmd": "openclaw", "http_port": 8080}))
    assert events[-1]["type"] == "error"
    assert [e["exit_code"] for e in events if e["type"] == "exit"] == [78]
    state = api("GET", "/v1/sprites/broken/services/gateway").json()["state"]
    assert state["status"] == "failed" and "78" in state["error"]


# --- the sprite URL and OpenClaw commands --------------------------------------------------


def test_it_serves_health_on_the_sprite_url(emu):
    api = Api(emu.url)
    url = api.create("web")["url"]
    down = requests.get(f"{url}/healthz", timeout=5)  # no auth needed
    assert down.status_code == 503
    assert api.status("web") == "running"  # any request to the URL wakes the sprite
    assert api.run("web", "openclaw", "health", "--json")[0] == 1
    api("PUT", "/v1/sprites/web/services/gateway", params={"duration": "0s"},
        json={"cmd": "openclaw", "args": ["gateway"], "http_port": 18789})
    for path in ("healthz", "startupz", "readyz"):
        up = requests.get(f"{url}/{path}", timeout=5)
        assert up.status_code == 200 and up.json() == {"ok": True}
    assert api.run("web", "openclaw", "health", "--json")[0] == 0
    assert api.run("web", "bash", "-c", "curl -fsS http://localhost:18789/startupz")[0] == 0


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
    assert code == 1 and err == b"unknown requestId\n"
    missing = requests.post(f"{emu.url}/_emulator/sprites/ghost/pairing-request", timeout=5)
    assert missing.status_code == 404


def test_it_mints_single_use_dashboard_links(emu):
    api = Api(emu.url)
    url = api.create("dash")["url"]
    first = json.loads(api.run("dash", "openclaw", "dashboard", "--json")[1])
    second = json.loads(api.run("dash", "openclaw", "dashboard", "--json")[1])
    assert first["browserUrl"].startswith(f"{url}/#token=")
    assert first["browserUrl"] != second["browserUrl"]
    assert first["expiresAtMs"] == pytest.approx(time.time() * 1000 + 600_000, abs=5_000)


def test_it_runs_the_setup_script(emu):
    api = Api(emu.url)
    api.create("fresh")
    code, out, _ = api.run("fresh", "bash", "-c", "curl -fsSL https://openclaw.ai/install.sh | bash -s -- --no-onboard")
    assert code == 0 and out
    assert emu.sprite("fresh").openclaw_installed is True


# --- checkpoints, files, policy ----------------------------------------------------------


def test_it_checkpoints_and_restores_files(emu):
    api = Api(emu.url)
    api.create("cp")
    api("PUT", "/v1/sprites/cp/fs/write", params={"path": "/home/sprite/a.txt"}, data=b"golden")
    api("PUT", "/v1/sprites/cp/services/gateway", params={"duration": "0s"}, json={"cmd": "openclaw", "http_port": 8080})

    created = api("POST", "/v1/sprites/cp/checkpoint", json={"comment": "golden"})
    assert created.headers["Content-Type"] == "application/x-ndjson"
    events = ndjson(created)
    assert events[-1] == {"type": "complete", "data": "Checkpoint v1 created successfully",
                          "time": events[-1]["time"]}
    assert {"type": "info", "data": "  ID: v1"} in [{k: e[k] for k in ("type", "data")} for e in events]

    listing = api("GET", "/v1/sprites/cp/checkpoints").json()
    assert [c["id"] for c in listing] == ["Current", "v1", "v0"]
    assert listing[1]["comment"] == "golden" and listing[1]["is_auto"] is False
    assert api("GET", "/v1/sprites/cp/checkpoints/v1").json()["id"] == "v1"
    missing = api("GET", "/v1/sprites/cp/checkpoints/v9")
    assert missing.status_code == 404 and missing.json() == {"error": "checkpoint not found"}

    api("PUT", "/v1/sprites/cp/fs/write", params={"path": "/home/sprite/a.txt"}, data=b"changed")
    api("PUT", "/v1/sprites/cp/fs/write", params={"path": "/home/sprite/b.txt"}, data=b"new")
    restored = api("POST", "/v1/sprites/cp/checkpoints/v1/restore")
    assert ndjson(restored)[-1]["data"] == "Restore from v1 complete"
    assert api("GET", "/v1/sprites/cp/fs/read", params={"path": "/home/sprite/a.txt"}).content == b"golden"
    assert api("GET", "/v1/sprites/cp/fs/read", params={"path": "/home/sprite/b.txt"}).status_code == 404
    service = api("GET", "/v1/sprites/cp/services/gateway").json()
    assert service["state"]["status"] == "stopped"  # comes back from its definition
    assert api("POST", "/v1/sprites/cp/checkpoints/v7/restore").status_code == 404


def test_it_writes_reads_lists_and_deletes_files(emu):
    api = Api(emu.url)
    api.create("files")
    write = api("PUT", "/v1/sprites/files/fs/write",
                params={"path": "config/openclaw.json", "workingDir": "/home/sprite/.openclaw",
                        "mode": "0600", "mkdirParents": "true"},
                data=b'{"gateway":{}}', headers={"Content-Type": "application/octet-stream"})
    assert write.status_code == 200
    assert write.json() == {"path": "/home/sprite/.openclaw/config/openclaw.json", "size": 14}
    read = api("GET", "/v1/sprites/files/fs/read", params={"path": "/home/sprite/.openclaw/config/openclaw.json"})
    assert read.content == b'{"gateway":{}}'
    listing = api("GET", "/v1/sprites/files/fs/list", params={"path": "/home/sprite/.openclaw/config"}).json()
    assert listing["count"] == 1 and listing["entries"][0]["mode"] == "0600"
    assert api("DELETE", "/v1/sprites/files/fs/delete", params={"path": "/home/sprite/.openclaw"}).status_code == 400
    deleted = api("DELETE", "/v1/sprites/files/fs/delete",
                  params={"path": "/home/sprite/.openclaw", "recursive": "true"})
    assert deleted.status_code == 200
    absent = api("GET", "/v1/sprites/files/fs/read", params={"path": "/home/sprite/.openclaw/config/openclaw.json"})
    assert absent.status_code == 404 and absent.json()["error"]


def test_it_sets_and_validates_the_network_policy(emu):
    api = Api(emu.url)
    api.create("net")
    assert api("GET", "/v1/sprites/net/policy/network").json() == {"rules": []}
    rules = [{"domain": "api.anthropic.com", "action": "allow"}, {"include": "defaults"},
             {"domain": "*", "action": "deny"}]
    response = api("POST", "/v1/sprites/net/policy/network", json={"rules": rules})
    assert response.status_code == 204
    assert api("GET", "/v1/sprites/net/policy/network").json() == {"rules": rules}
    for bad in [{"rules": [{"domain": "x.com", "action": "maybe"}]}, {"rules": [{"include": "all"}]},
                {"rules": "nope"}, {}]:
        response = api("POST", "/v1/sprites/net/policy/network", json=bad)
        assert response.status_code == 400 and response.json() == {"error": "invalid policy"}


# --- faults and robustness ---------------------------------------------------------------


def test_it_rate_limits_with_retry_after(emu):
    api = Api(emu.url)
    emu.set_faults(rate_limit_rate=1.0, retry_after=2)
    response = api("POST", "/v1/sprites", json={"name": "limited"})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.json()["error"] == "sprite_creation_rate_limited"
    assert response.json()["retry_after_seconds"] == 2
    assert api("GET", "/v1/sprites").status_code == 429
    assert requests.get(f"{emu.url}/_emulator/state", timeout=5).status_code == 200  # control is exempt
    emu.set_faults(rate_limit_rate=0)
    assert api("GET", "/v1/sprites").status_code == 200


def test_it_injects_server_errors(emu):
    api = Api(emu.url)
    faults = requests.post(f"{emu.url}/_emulator/faults", json={"fault_rate": 1.0}, timeout=5).json()
    assert faults["fault_rate"] == 1.0 and faults["fault_status"] == 503
    response = api("GET", "/v1/sprites")
    assert response.status_code == 503 and response.json()["error"]
    assert requests.post(f"{emu.url}/_emulator/faults", json={"fault_rate": 2}, timeout=5).status_code == 400


def test_it_drops_connections(emu):
    api = Api(emu.url)
    emu.set_faults(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        api("GET", "/v1/sprites")
    emu.set_faults(drop_rate=0.0)
    assert api("GET", "/v1/sprites").status_code == 200  # the pool recovers


def test_it_adds_latency_and_slow_answers(emu):
    api = Api(emu.url)
    emu.set_faults(latency_ms=100)
    started = time.monotonic()
    api("GET", "/v1/sprites")
    assert time.monotonic() - started >= 0.1
    emu.set_faults(latency_ms=0, slow_rate=1.0, slow_ms=2000)
    with pytest.raises(requests.Timeout):
        api("GET", "/v1/sprites", timeout=0.3)


def test_it_answers_json_for_unknown_paths_and_bad_json(emu):
    api = Api(emu.url)
    for path in ("/nope", "/v1/nope", "/_emulator/nope"):
        response = api("GET", path)
        assert response.status_code == 404 and response.json() == {"error": "not found"}
    bad = api("POST", "/v1/sprites", data=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and "error" in bad.json()


def test_it_resets(emu):
    api = Api(emu.url)
    api.create("temp")
    emu.set_faults(latency_ms=5)
    assert requests.post(f"{emu.url}/_emulator/reset", timeout=5).json() == {"ok": True}
    state = requests.get(f"{emu.url}/_emulator/state", timeout=5).json()
    assert state["sprites"] == 0 and state["faults"]["latency_ms"] == 0
    assert emu.meter()["sprites"] == {}


def test_it_serves_many_concurrent_keep_alive_clients(emu):
    emu.set_faults(latency_ms=20)
    api = Api(emu.url)
    for i in range(8):
        api.create(f"load-{i}")
    errors = []

    def client(n):
        session = Api(emu.url)
        for i in range(15):
            response = session("GET", f"/v1/sprites/load-{(n + i) % 8}")
            if response.status_code != 200:
                errors.append(response.status_code)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(64)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert time.monotonic() - started < 5  # 960 calls x 20 ms, in parallel
