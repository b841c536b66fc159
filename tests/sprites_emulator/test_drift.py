"""The fleet's drift faults (issue 14): orphans, ghosts, gateways broken by a wake, restores
that fail, and deleting a checkpoint."""

import time
from datetime import datetime, timezone

from .conftest import Api, ndjson


def _gateway(api: Api, name: str, *, wait: float = 0.35) -> None:
    api("PUT", f"/v1/sprites/{name}/services/gw", params={"duration": "0s"},
        json={"cmd": "openclaw", "args": ["gateway"], "http_port": 8080})
    time.sleep(wait)  # past the idle window: the next activity is a wake


def test_it_makes_an_orphan_out_of_band_with_a_golden_checkpoint_and_an_age(emu):
    api = Api(emu.url)
    made = api("POST", "/_emulator/sprites/claw-orph/orphan",
               json={"labels": ["clawdirector"], "checkpoint_comment": "golden", "age_seconds": 7200})
    assert made.status_code == 201
    listing = api("GET", "/v1/sprites", params={"prefix": "claw-"}).json()["sprites"]
    assert [s["name"] for s in listing] == ["claw-orph"] and listing[0]["labels"] == ["clawdirector"]
    checkpoints = api("GET", "/v1/sprites/claw-orph/checkpoints").json()
    assert [(c["id"], c.get("comment")) for c in checkpoints[1:]] == [("v1", "golden"), ("v0", None)]
    created = datetime.fromisoformat(listing[0]["created_at"].replace("Z", "+00:00"))
    assert 7100 < (datetime.now(timezone.utc) - created).total_seconds() < 7300
    assert emu.counters()["requests"] == 2  # the orphan itself cost no counted API request


def test_it_deletes_a_sprite_behind_the_control_planes_back(emu):
    api = Api(emu.url)
    api.create("claw-ghost")
    assert api("POST", "/_emulator/sprites/claw-ghost/vanish").status_code == 204
    assert api("GET", "/v1/sprites/claw-ghost").status_code == 404


def test_it_crashes_the_gateway_on_the_next_wake_only(emu):
    api = Api(emu.url)
    api.create("crash")
    _gateway(api, "crash")
    emu.set_behavior("crash", gateway_crash_on_wake=True)
    assert api("GET", "/_sprite/crash/startupz").status_code == 503  # the visit woke it: crashed
    assert api("GET", "/_emulator/sprites/crash/behavior").json() == {}  # spent
    started = api("POST", "/v1/sprites/crash/services/gw/start", params={"duration": "0s"})
    assert started.status_code == 200
    assert api("GET", "/_sprite/crash/startupz").status_code == 200  # a restart cures a crash


def test_it_corrupts_the_config_so_only_a_restore_cures_it(emu):
    api = Api(emu.url)
    api.create("corrupt")
    _gateway(api, "corrupt", wait=0)
    ndjson(api("POST", "/v1/sprites/corrupt/checkpoint", json={"comment": "known good"}))
    time.sleep(0.35)
    emu.set_behavior("corrupt", gateway_corrupt_on_wake=True)
    assert api("GET", "/_sprite/corrupt/startupz").status_code == 503
    restart = ndjson(api("POST", "/v1/sprites/corrupt/services/gw/start", params={"duration": "0s"}))
    assert restart[-1]["type"] == "error"  # exits 78 again: the config is still broken
    assert ndjson(api("POST", "/v1/sprites/corrupt/checkpoints/v1/restore"))[-1]["type"] == "complete"
    assert ndjson(api("POST", "/v1/sprites/corrupt/services/gw/start", params={"duration": "0s"}))[-1]["type"] != "error"
    assert api("GET", "/_sprite/corrupt/startupz").status_code == 200


def test_it_fails_a_restore_and_changes_nothing(emu):
    api = Api(emu.url)
    api.create("nores")
    api("PUT", "/v1/sprites/nores/fs/write", params={"path": "/home/sprite/a"}, data=b"before")
    ndjson(api("POST", "/v1/sprites/nores/checkpoint"))
    api("PUT", "/v1/sprites/nores/fs/write", params={"path": "/home/sprite/a"}, data=b"after")
    emu.set_behavior("nores", restore_fails=True)
    events = ndjson(api("POST", "/v1/sprites/nores/checkpoints/v1/restore"))
    assert events[-1]["type"] == "error" and "restore failed" in events[-1]["error"]
    assert api("GET", "/v1/sprites/nores/fs/read", params={"path": "/home/sprite/a"}).content == b"after"


def test_it_deletes_a_checkpoint(emu):
    api = Api(emu.url)
    api.create("del")
    ndjson(api("POST", "/v1/sprites/del/checkpoint"))
    assert api("DELETE", "/v1/sprites/del/checkpoints/v1").status_code == 204
    assert [c["id"] for c in api("GET", "/v1/sprites/del/checkpoints").json()] == ["Current", "v0"]
    assert api("DELETE", "/v1/sprites/del/checkpoints/v1").status_code == 404
