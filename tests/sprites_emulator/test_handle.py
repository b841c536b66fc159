"""The typed test handle: what tests may read about the inside of a sprite, as copies."""

import pytest

from .conftest import Api


def test_it_reads_what_the_api_wrote(emu):
    api = Api(emu.url)
    emu.create_sprite("box")
    api("PUT", "/v1/sprites/box/fs/write", params={"path": "/etc/app.json", "mode": "0600"}, data=b"{}")
    api("PUT", "/v1/sprites/box/services/gateway", params={"duration": "0s"},
        json={"cmd": "openclaw", "http_port": 8080, "env": {"TOKEN": "t0"}})
    api("POST", "/v1/sprites/box/policy/network", json={"rules": [{"include": "defaults"}]})
    api("POST", "/v1/sprites/box/checkpoint")
    api.run("box", "bash", "-c", "clawdirector-setup")

    assert emu.exists("box") and not emu.exists("ghost")
    assert emu.file_text("box", "/etc/app.json") == "{}" and emu.file_mode("box", "/etc/app.json") == "0600"
    assert emu.file_text("box", "/etc/missing") is None and emu.file_mode("box", "/etc/missing") is None
    assert emu.service("box", "gateway").status == "running"
    assert emu.service("box", "gateway").http_port == 8080
    assert emu.service("box", "nope") is None
    assert emu.service_env("box", "gateway") == {"TOKEN": "t0"}
    assert emu.network_policy("box") == [{"include": "defaults"}]
    assert emu.checkpoint_ids("box") == ["v0", "v1"]
    assert emu.openclaw_installed("box")


def test_it_reads_the_pairing_store(emu):
    emu.create_sprite("pair")
    request = emu.add_pairing_request("pair")
    assert emu.pending_request_ids("pair") == {request["requestId"]}
    Api(emu.url).run("pair", "openclaw", "devices", "approve", request["requestId"])
    assert emu.pending_request_ids("pair") == set()
    assert emu.paired_device_ids("pair") == {request["deviceId"]}


def test_it_counts_requests_and_execs(emu):
    emu.create_sprite("count")  # direct: not a request
    assert emu.counters()["requests"] == 0
    Api(emu.url).run("count", "true")
    assert emu.counters()["requests"] == 1 and emu.counters()["execs"] == 1


def test_its_readings_are_copies(emu):
    emu.create_sprite("copy")
    Api(emu.url)("PUT", "/v1/sprites/copy/services/s", json={"cmd": "x", "env": {"A": "1"}})
    emu.service_env("copy", "s")["A"] = "changed"
    emu.network_policy("copy").append({"include": "defaults"})
    assert emu.service_env("copy", "s") == {"A": "1"} and emu.network_policy("copy") == []


def test_it_raises_key_error_for_a_missing_sprite(emu):
    for read in (emu.file_text, emu.file_mode):
        with pytest.raises(KeyError):
            read("ghost", "/x")
    with pytest.raises(KeyError):
        emu.service_env("ghost", "gateway")
    emu.create_sprite("bare")
    with pytest.raises(KeyError):
        emu.service_env("bare", "gateway")  # a sprite without that service
