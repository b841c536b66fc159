"""The sprite actions through the API (start, stop, rotate-token, dashboard-link): the status
follows, others get 404, bad bodies 4xx JSON, a destroyed sprite 409, throttles, and a
full running cap a 429 that bills nothing."""

import json

import pytest

from sprites import services
from sprites.api.throttles import SpriteActionThrottle, SpriteReadThrottle
from sprites.models import UserSprite

from .conftest import SPRITE_ACTIONS, assert_error, client_for, url


def test_it_stops_and_starts_and_the_status_follows(sprite, as_alice):
    stopped = as_alice.post(f"/api/sprites/{sprite.public_id}/stop")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    assert as_alice.get(url(sprite, "status")).json()["status"] == "stopped"
    started = as_alice.post(f"/api/sprites/{sprite.public_id}/start/")
    assert started.status_code == 200 and started.json()["status"] == "online"
    assert sprite.events.filter(action__in=["stop", "start"], actor_kind="user").count() == 2


def test_it_rotates_the_token(sprite, as_alice, emulator):
    old = UserSprite.objects.get(pk=sprite.pk).gateway_token
    response = as_alice.post(url(sprite, "rotate-token"))
    assert response.status_code == 200
    new = response.json()["gateway_token"]
    assert new != old
    assert emulator.service_env(sprite.sprite_name, "openclaw-gateway")["OPENCLAW_GATEWAY_TOKEN"] == new


@pytest.mark.parametrize("action", SPRITE_ACTIONS)
def test_it_hides_actions_from_others(sprite, as_bob, action):
    assert_error(as_bob.post(url(sprite, action)), 404, "not_found")
    assert_error(client_for().post(url(sprite, action)), 401, "not_authenticated")


@pytest.mark.parametrize("action", SPRITE_ACTIONS)
def test_it_rejects_a_malformed_action_body(sprite, as_alice, action):
    assert_error(as_alice.post(url(sprite, action), data="nope{", content_type="application/json"), 400,
                 "parse_error")


@pytest.mark.parametrize("action", SPRITE_ACTIONS)
def test_it_rejects_json_nested_past_the_recursion_limit(sprite, as_alice, action):
    assert_error(as_alice.post(url(sprite, action), data="[" * 100_000, content_type="application/json"), 400,
                 "parse_error")


def test_it_answers_413_json_to_a_body_over_the_upload_limit(sprite, as_alice, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    big = json.dumps({"x": "a" * 2000})
    assert_error(as_alice.post("/api/sprites/provision", data=big, content_type="application/json"), 413,
                 "request_too_large")
    assert_error(as_alice.post(url(sprite, "start"), data=big, content_type="application/json"), 413,
                 "request_too_large")


def test_it_answers_400_json_to_too_many_query_or_form_fields(sprite, as_alice, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    fields = "&".join(f"f{i}=1" for i in range(20))
    assert_error(as_alice.get(url(sprite, "status") + "?" + fields), 400, "parse_error")
    assert_error(as_alice.post(url(sprite, "stop"), data=fields, content_type="application/x-www-form-urlencoded"),
                 400, "parse_error")
    assert UserSprite.objects.get(pk=sprite.pk).status == "online"  # refused before acting


@pytest.mark.parametrize("action", ["start", "stop", "rotate-token"])
def test_it_answers_409_for_a_destroyed_sprite(sprite, as_alice, staff, action):
    services.destroy_sprite(sprite=sprite, actor=staff)
    assert_error(as_alice.post(url(sprite, action)), 409, "invalid_state")


def test_it_throttles_sprite_actions(sprite, as_alice, monkeypatch):
    monkeypatch.setattr(SpriteActionThrottle, "THROTTLE_RATES", {"sprite_actions": "2/minute"})
    assert as_alice.post(url(sprite, "stop")).status_code == 200
    assert as_alice.post(url(sprite, "stop")).status_code == 200
    response = as_alice.post(url(sprite, "stop"))
    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    assert as_alice.get(url(sprite, "status")).status_code == 200  # polling is not throttled


@pytest.mark.parametrize("path", ["devices", "status?refresh=1"])
def test_it_throttles_the_reads_that_run_work_in_the_sprite(sprite, as_alice, emulator, monkeypatch, path):
    monkeypatch.setattr(SpriteReadThrottle, "THROTTLE_RATES", {"sprite_reads": "2/minute"})
    assert as_alice.get(url(sprite, path)).status_code == 200
    assert as_alice.get(url(sprite, path)).status_code == 200
    assert_error(as_alice.get(url(sprite, path)), 429, "throttled")
    assert as_alice.get(url(sprite, "status")).status_code == 200  # from the database: not throttled
    assert as_alice.post(url(sprite, "stop")).status_code == 200  # the actions have their own budget


def test_a_start_when_the_running_cap_is_full_is_a_429_with_retry_after_not_billed(sprite, as_alice, monkeypatch):
    from sprites.client import SpritesCapacityExceeded, get_client
    from sprites.models import UsageRecord

    as_alice.post(f"/api/sprites/{sprite.public_id}/stop")
    client = get_client()

    def full(*args, **kwargs):
        raise SpritesCapacityExceeded("every slot taken", retry_after=12.5, status_code=429,
                                      code="concurrent_sprite_limit_exceeded", limit=10, current_count=10)

    monkeypatch.setattr(client, "start_service", full)
    billed = UsageRecord.objects.filter(sprite=sprite).count()
    response = as_alice.post(url(sprite, "start"))
    assert response.status_code == 429
    assert response["Retry-After"] == "13"
    assert response.json()["code"] == "running_cap_full" and response.json()["retry_after_seconds"] == 13
    assert UsageRecord.objects.filter(sprite=sprite).count() == billed  # nothing ran, nothing billed
    row = UserSprite.objects.get(pk=sprite.pk)
    assert row.status == "stopped" and not row.last_error  # not an error of the sprite's
