"""The sprites: create, get, list, update, delete, names and the bearer token."""

import pytest
import requests

from sprites_emulator.testing import start_emulator

from .conftest import Api


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
