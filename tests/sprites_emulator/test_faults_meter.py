"""Sleep and wake, the running-time meter, injected faults and robustness."""

import threading
import time

import pytest
import requests

from sprites_emulator.testing import start_emulator

from .conftest import Api, run_in_thread


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
