"""The Sprites client against `responses`: request shape, retries, errors, parsing."""


import pytest
import requests
import responses
from responses import matchers

from sprites.client import (
    SpriteNotFound,
    SpritesAuthFailed,
    SpritesBadRequest,
    SpritesConflict,
    SpritesRateLimited,
    SpritesUnavailable,
    parse_exec_body,
    parse_exec_frames,
)
from sprites.client import http as sprites_client

from .conftest import API

SPRITE = {
    "id": "sprite-0b6b5a8e-1111-2222-3333-444455556666",
    "name": "claw-abc",
    "status": "cold",
    "url": "https://claw-abc-x1y2.sprites.app",
    "organization": "acme",
    "url_settings": {"auth": "sprite"},
    "created_at": "2026-11-24T10:00:00Z",
    "updated_at": "2026-11-24T10:00:00Z",
    "version": None,
    "environment_version": None,
    "some_future_field": {"ignored": True},
}


@responses.activate
def test_it_creates_a_sprite_with_bearer_auth_and_parses_it(api):
    responses.post(
        f"{API}/sprites",
        json=SPRITE,
        status=201,
        match=[
            matchers.header_matcher({"Authorization": "Bearer org/1/2/secret-token"}),
            matchers.json_params_matcher(
                {"name": "claw-abc", "url_settings": {"auth": "sprite"}, "wait_for_capacity": True}
            ),
        ],
    )
    sprite = api.create_sprite("claw-abc")
    assert sprite.name == "claw-abc"
    assert sprite.id.startswith("sprite-")
    assert sprite.status == "cold"
    assert sprite.created_at.year == 2026
    assert sprite.last_running_at is None  # missing optional field tolerated


@responses.activate
def test_it_sends_timeouts_on_every_call(api, monkeypatch):
    seen = []
    original = api.session.request

    def spy(*args, **kwargs):
        seen.append(kwargs.get("timeout"))
        return original(*args, **kwargs)

    monkeypatch.setattr(api.session, "request", spy)
    responses.get(f"{API}/sprites/claw-abc", json=SPRITE)
    api.get_sprite("claw-abc")
    assert seen == [(api.connect_timeout, api.read_timeout)]


@responses.activate
def test_it_does_not_retry_a_create_on_5xx(api, sleeps):
    responses.post(f"{API}/sprites", json={"error": "boom"}, status=502)
    with pytest.raises(SpritesUnavailable):
        api.create_sprite("claw-abc")
    assert len(responses.calls) == 1


@responses.activate
def test_it_retries_idempotent_calls_on_5xx_then_succeeds(api, sleeps):
    responses.get(f"{API}/sprites/claw-abc", json={"error": "busy"}, status=503)
    responses.get(f"{API}/sprites/claw-abc", json=SPRITE)
    assert api.get_sprite("claw-abc").name == "claw-abc"
    assert len(responses.calls) == 2
    assert len(sleeps) == 1


@responses.activate
def test_it_gives_up_after_the_retry_budget(api, sleeps):
    responses.get(f"{API}/sprites/claw-abc", json={"error": "down"}, status=500)
    with pytest.raises(SpritesUnavailable) as excinfo:
        api.get_sprite("claw-abc")
    assert len(responses.calls) == 3  # one try + max_retries=2
    assert excinfo.value.status_code == 500
    assert not excinfo.value.permanent


@responses.activate
def test_it_retries_connection_errors(api, sleeps):
    responses.get(f"{API}/sprites/claw-abc", body=requests.ConnectionError("reset"))
    responses.get(f"{API}/sprites/claw-abc", json=SPRITE)
    assert api.get_sprite("claw-abc").name == "claw-abc"
    assert len(responses.calls) == 2


@responses.activate
def test_it_honours_retry_after_on_429(api, sleeps):
    responses.get(
        f"{API}/sprites/claw-abc",
        json={"error": "sprite_creation_rate_limited", "retry_after_seconds": 7},
        status=429,
        headers={"Retry-After": "3"},
    )
    responses.get(f"{API}/sprites/claw-abc", json=SPRITE)
    api.get_sprite("claw-abc")
    assert sleeps == [3.0]  # the header wins over the body


@responses.activate
def test_it_raises_rate_limited_with_retry_after(api, sleeps):
    responses.post(
        f"{API}/sprites",
        json={"error": "concurrent_sprite_limit_exceeded", "retry_after_seconds": 12},
        status=429,
    )
    with pytest.raises(SpritesRateLimited) as excinfo:
        api.create_sprite("claw-abc")
    assert excinfo.value.retry_after == 12
    assert excinfo.value.code == "concurrent_sprite_limit_exceeded"
    assert "retry after 12s" in str(excinfo.value)


@responses.activate
@pytest.mark.parametrize(
    "status,body,error",
    [
        (401, {"error": "authentication failed"}, SpritesAuthFailed),
        (403, {"error": "forbidden"}, SpritesAuthFailed),
        (404, {"error": "sprite not found"}, SpriteNotFound),
        (409, {"error": "A sprite named 'claw-abc' already exists."}, SpritesConflict),
        (400, {"errors": ["invalid sprite name format"]}, SpritesBadRequest),
    ],
)
def test_it_maps_4xx_to_permanent_errors_without_retrying(api, sleeps, status, body, error):
    responses.get(f"{API}/sprites/claw-abc", json=body, status=status)
    with pytest.raises(error) as excinfo:
        api.get_sprite("claw-abc")
    assert len(responses.calls) == 1
    assert excinfo.value.permanent
    assert excinfo.value.status_code == status


@responses.activate
def test_it_keeps_validation_messages_and_plain_text_errors(api, sleeps):
    responses.put(f"{API}/sprites/claw-abc", json={"errors": ["invalid sprite name format"]}, status=400)
    with pytest.raises(SpritesBadRequest, match="invalid sprite name format"):
        api.update_sprite("claw-abc", labels=["x"])
    responses.get(f"{API}/sprites/claw-abc/checkpoints/v9", body="Failed to get checkpoint: v9 not found", status=500)
    with pytest.raises(SpritesUnavailable, match="Failed to get checkpoint"):
        api.get_checkpoint("claw-abc", "v9")


@responses.activate
def test_it_never_puts_the_token_in_an_error_message(api, sleeps):
    responses.get(f"{API}/sprites/claw-abc", json={"error": "authentication failed"}, status=401)
    with pytest.raises(SpritesAuthFailed) as excinfo:
        api.get_sprite("claw-abc")
    assert "secret-token" not in str(excinfo.value)
    assert "secret-token" not in repr(api)


@responses.activate
def test_it_lists_every_page(api):
    responses.get(
        f"{API}/sprites",
        json={"sprites": [SPRITE | {"name": "a"}], "has_more": True, "next_continuation_token": "t1"},
        match=[matchers.query_param_matcher({"max_results": "50", "prefix": "claw-"})],
    )
    responses.get(
        f"{API}/sprites",
        json={"sprites": [SPRITE | {"name": "b"}], "has_more": False, "next_continuation_token": None},
        match=[matchers.query_param_matcher({"max_results": "50", "prefix": "claw-", "continuation_token": "t1"})],
    )
    assert [s.name for s in api.list_sprites(prefix="claw-")] == ["a", "b"]


@responses.activate
def test_it_treats_a_missing_sprite_on_delete_as_done(api):
    responses.delete(f"{API}/sprites/claw-abc", status=404, json={"error": "sprite not found"})
    api.delete_sprite("claw-abc")
    responses.delete(f"{API}/sprites/claw-abc", status=204)
    api.delete_sprite("claw-abc")


@responses.activate
def test_it_execs_with_repeated_cmd_params_and_parses_the_exit_frame(api):
    responses.post(
        f"{API}/sprites/claw-abc/exec",
        body=b"\x01hello\n\x03\x07",
        match=[matchers.query_string_matcher("cmd=bash&cmd=-c&cmd=echo+hello")],
    )
    result = api.exec("claw-abc", ["bash", "-c", "echo hello"])
    assert result.exit_code == 7
    assert result.stdout == b"hello\n"
    assert not result.ok


@responses.activate
def test_it_never_retries_exec(api, sleeps):
    responses.post(f"{API}/sprites/claw-abc/exec", status=503, json={"error": "busy"})
    with pytest.raises(SpritesUnavailable):
        api.exec("claw-abc", ["true"])
    assert len(responses.calls) == 1


def test_it_splits_chunked_exec_frames_into_streams():
    result = parse_exec_frames([b"\x01out1 ", b"\x02err\x03not-exit", b"\x01out2", b"\x03\x00"])
    assert result.stdout == b"out1 out2"
    assert result.stderr == b"err\x03not-exit"
    assert result.exit_code == 0


def test_it_rejects_an_exec_stream_without_exit_code():
    with pytest.raises(SpritesUnavailable):
        parse_exec_frames([b"\x01partial"])
    with pytest.raises(SpritesUnavailable):
        parse_exec_body(b"\x01partial")


@responses.activate
def test_it_defines_starts_and_stops_services(api):
    responses.put(
        f"{API}/sprites/claw-abc/services/gateway",
        body='{"type":"started","timestamp":1}\n{"type":"complete","timestamp":2}\n',
        match=[
            matchers.query_param_matcher({"duration": "1s"}),
            matchers.json_params_matcher(
                {"cmd": "/usr/bin/node", "args": ["gw.js"], "needs": [], "http_port": 8080, "env": {"A": "1"}}
            ),
        ],
    )
    responses.post(f"{API}/sprites/claw-abc/services/gateway/start", body='{"type":"started"}\n')
    responses.post(f"{API}/sprites/claw-abc/services/gateway/stop", status=409, json={"error": "service not running"})
    responses.get(
        f"{API}/sprites/claw-abc/services",
        json=[{"name": "gateway", "cmd": "/usr/bin/node", "http_port": 8080, "state": {"status": "running", "pid": 42}}],
    )
    events = api.put_service("claw-abc", "gateway", cmd="/usr/bin/node", args=["gw.js"], http_port=8080, env={"A": "1"})
    assert [e.type for e in events] == ["started", "complete"]
    assert api.start_service("claw-abc", "gateway")[0].type == "started"
    assert api.stop_service("claw-abc", "gateway") == []  # not running = already stopped
    [service] = api.list_services("claw-abc")
    assert (service.status, service.pid, service.http_port) == ("running", 42, 8080)


@responses.activate
def test_it_writes_and_reads_files(api):
    responses.put(
        f"{API}/sprites/claw-abc/fs/write",
        json={"ok": True},
        match=[
            matchers.query_param_matcher(
                {"path": "/home/sprite/a.json", "workingDir": "/", "mode": "0600", "mkdirParents": "true"}
            ),
        ],
    )
    responses.get(f"{API}/sprites/claw-abc/fs/read", body=b"{}")
    api.write_file("claw-abc", "/home/sprite/a.json", "{}", mode="0600")
    assert responses.calls[0].request.body == b"{}"
    assert api.read_file("claw-abc", "/home/sprite/a.json") == b"{}"


@responses.activate
def test_it_gets_and_sets_the_network_policy(api):
    rules = [{"domain": "api.anthropic.com", "action": "allow"}, {"domain": "*", "action": "deny"}]
    responses.post(
        f"{API}/sprites/claw-abc/policy/network", status=204, match=[matchers.json_params_matcher({"rules": rules})]
    )
    responses.get(f"{API}/sprites/claw-abc/policy/network", json={"rules": rules})
    api.set_network_policy("claw-abc", rules)
    assert api.get_network_policy("claw-abc") == rules


@responses.activate
def test_it_escapes_names_in_paths(api):
    responses.get(f"{API}/sprites/a%2Fb", status=404, json={"error": "sprite not found"})
    with pytest.raises(SpriteNotFound):
        api.get_sprite("a/b")


@responses.activate
def test_it_reports_invalid_json_as_unavailable(api):
    responses.get(f"{API}/sprites/claw-abc", body="<html>proxy error</html>", status=200)
    with pytest.raises(SpritesUnavailable, match="invalid JSON"):
        api.get_sprite("claw-abc")


def test_get_client_follows_settings(settings):
    settings.SPRITES_API_URL = "http://127.0.0.1:1"
    first = sprites_client.get_client()
    assert first is sprites_client.get_client()
    settings.SPRITES_API_URL = "http://127.0.0.1:2"
    assert sprites_client.get_client().base_url == "http://127.0.0.1:2"


@responses.activate
def test_it_does_not_sleep_through_a_long_retry_after(api, sleeps):
    responses.get(f"{API}/sprites/claw-abc", json={"error": "rate_limited"}, status=429, headers={"Retry-After": "30"})
    with pytest.raises(SpritesRateLimited) as excinfo:
        api.get_sprite("claw-abc")
    assert excinfo.value.retry_after == 30
    assert len(responses.calls) == 1 and sleeps == []
