"""Services, their NDJSON streams, and the gateway behind the sprite URL."""

import time

import requests

from .conftest import Api, ndjson


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
