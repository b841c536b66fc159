"""Checkpoints: create, list, get, restore."""

from .conftest import Api, ndjson


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
