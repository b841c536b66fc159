"""The DRF API, endpoint by endpoint: alice (owner) succeeds, bob gets 404, anonymous is
refused, bad ids and bodies get 4xx JSON. Sprites is the emulator over HTTP."""

import json
import uuid

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sprites import services
from sprites.api.throttles import SpriteActionThrottle, SpriteReadThrottle
from sprites.models import UserSprite

SPRITE_ACTIONS = ["start", "stop", "rotate-token", "dashboard-link"]


@pytest.fixture(autouse=True)
def _setup(db):
    cache.clear()  # throttle counters live in the cache (the database's, as in production)


def client_for(user=None, *, csrf=False) -> APIClient:
    client = APIClient(enforce_csrf_checks=csrf)
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def as_alice(alice):
    return client_for(alice)


@pytest.fixture
def as_bob(bob):
    return client_for(bob)


@pytest.fixture
def sprite(emulator, alice):
    """alice's online sprite, from the warm pool."""
    services.fill_pool(target=1)
    row, _ = services.provision_sprite(user=alice)
    return row


def url(sprite, action=""):
    return f"/api/sprites/{sprite.public_id}/" + (f"{action}" if action else "")


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == code
    return response.json()


# --- provision ------------------------------------------------------------------------------------


def test_it_provisions_from_the_pool_with_201_then_answers_200(emulator, as_alice, alice):
    services.fill_pool(target=1)
    first = as_alice.post("/api/sprites/provision")
    assert first.status_code == 201, first.content
    body = first.json()
    assert first["Location"] == f"http://testserver/api/sprites/{body['id']}"  # the sprite, now it exists
    assert body["status"] == "online"
    assert body["gateway_token"] and body["gateway_url"].startswith("http")
    assert body["gateway_ws_url"].startswith("ws")

    again = as_alice.post("/api/sprites/provision/")  # the slash is optional
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    assert UserSprite.objects.filter(user=alice).count() == 1


def test_it_answers_202_while_a_new_sprite_is_set_up(emulator, as_alice, task_queue):
    response = as_alice.post("/api/sprites/provision")
    assert response.status_code == 202
    assert response["Location"] == f"http://testserver/api/sprites/{response.json()['id']}/status"  # poll this
    assert response.json()["status"] == "provisioning"
    assert response.json()["gateway_token"] == ""
    assert task_queue.rows().get().status == "READY"  # the set-up waits for the worker

    assert task_queue.run() == 1
    body = as_alice.get(response["Location"]).json()
    assert body["status"] == "online" and body["gateway_token"]


def test_it_refuses_provisioning_to_anonymous(db):
    assert_error(client_for().post("/api/sprites/provision"), 401, "not_authenticated")


def test_it_rejects_a_malformed_provision_body(db, as_alice):
    assert_error(as_alice.post("/api/sprites/provision", data="{not json", content_type="application/json"),
                 400, "parse_error")
    body = assert_error(as_alice.post("/api/sprites/provision", data=[1, 2], format="json"), 400, "invalid")
    assert "errors" in body
    assert not UserSprite.objects.exists()


def test_it_answers_405_json_to_get_on_provision(db, as_alice):
    assert_error(as_alice.get("/api/sprites/provision"), 405, "method_not_allowed")


def test_it_requires_the_csrf_token_with_a_session(emulator, alice):
    services.fill_pool(target=1)
    client = client_for(csrf=True)
    client.login(username="alice", password="alice-password-1")
    assert_error(client.post("/api/sprites/provision"), 403, "csrf_failed")
    secret = "a" * 32  # the cookie a frontend reads, echoed in the X-CSRFToken header
    client.cookies["csrftoken"] = secret
    response = client.post("/api/sprites/provision", HTTP_X_CSRFTOKEN=secret)
    assert response.status_code == 201


def test_it_accepts_token_auth_without_csrf(emulator, alice):
    services.fill_pool(target=1)
    token = Token.objects.create(user=alice)
    client = APIClient(enforce_csrf_checks=True)
    response = client.post("/api/sprites/provision", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 201
    assert_error(APIClient().get("/api/sprites/", HTTP_AUTHORIZATION="Token wrong"), 401, "authentication_failed")


def test_it_answers_503_with_retry_after_when_sprites_is_down(emulator, as_alice, alice):
    services.fill_pool(target=1)
    emulator.set_faults(fault_rate=1.0)
    response = as_alice.post("/api/sprites/provision")
    body = assert_error(response, 503, "sprites_unavailable")
    assert int(response["Retry-After"]) > 0
    assert "sprites.test" not in body["detail"] and "127.0.0.1" not in body["detail"]
    # Compensated: the pool sprite is back in the pool, alice has none.
    assert not UserSprite.objects.filter(user=alice).exists()
    assert UserSprite.objects.filter(user__isnull=True, status="ready").count() == 1


def test_it_passes_a_rate_limit_retry_after_on(emulator, as_alice, sprite, settings):
    settings.SPRITES_MAX_RETRIES = 0  # the client would otherwise sleep the 7 s before retrying
    emulator.set_faults(rate_limit_rate=1.0, retry_after=7)
    response = as_alice.post(url(sprite, "start"))
    assert_error(response, 503, "sprites_unavailable")
    assert response["Retry-After"] == "7"


# --- list and detail --------------------------------------------------------------------------------


def test_it_lists_only_the_callers_sprites(sprite, as_alice, as_bob, staff):
    assert [s["id"] for s in as_alice.get("/api/sprites/").json()["results"]] == [str(sprite.public_id)]
    assert as_bob.get("/api/sprites/").json()["results"] == []
    assert client_for(staff).get("/api/sprites/").json()["results"] == []  # the admin is staff's tool
    assert "gateway_token" not in as_alice.get("/api/sprites/").json()["results"][0]
    assert_error(client_for().get("/api/sprites/"), 401, "not_authenticated")


@pytest.mark.parametrize("path", ["/api/sprites", "/api/sprites/"])
def test_it_lists_with_or_without_the_trailing_slash(sprite, as_alice, path):
    response = as_alice.get(path)
    assert response.status_code == 200, response.content
    assert [s["id"] for s in response.json()["results"]] == [str(sprite.public_id)]


def test_it_paginates_the_list(alice, as_alice, settings):
    from rest_framework.pagination import PageNumberPagination

    for n in range(3):  # destroyed sprites stay listed, so a user can have many rows
        UserSprite.objects.create(user=alice, sprite_name=f"claw-old-{n}", status=UserSprite.Status.DESTROYED)
    PageNumberPagination.page_size, before = 2, PageNumberPagination.page_size
    try:
        first = as_alice.get("/api/sprites").json()
        second = as_alice.get(first["next"]).json()
    finally:
        PageNumberPagination.page_size = before
    assert first["count"] == 3 and len(first["results"]) == 2 and first["previous"] is None
    assert len(second["results"]) == 1 and second["next"] is None
    assert [s["sprite_name"] for s in first["results"] + second["results"]] == ["claw-old-2", "claw-old-1", "claw-old-0"]


def test_it_answers_json_404_for_a_path_that_only_starts_like_the_list(db, as_alice):
    assert_error(as_alice.get("/api/spritesx"), 404, "not_found")


def test_it_shows_one_sprite_to_its_owner_only(sprite, as_alice, as_bob):
    assert as_alice.get(url(sprite)).json()["sprite_name"] == sprite.sprite_name
    assert as_alice.get(f"/api/sprites/{sprite.public_id}").status_code == 200
    assert_error(as_bob.get(url(sprite)), 404, "not_found")
    assert_error(client_for().get(url(sprite)), 401, "not_authenticated")


@pytest.mark.parametrize("bad", ["12", "not-a-uuid", "0b6b5a8e-1111-2222-3333-44445555666", "%20", "a.b"])
def test_it_answers_404_json_to_a_malformed_id(db, as_alice, bad):
    assert_error(as_alice.get(f"/api/sprites/{bad}/status"), 404, "not_found")
    assert_error(as_alice.post(f"/api/sprites/{bad}/start"), 404, "not_found")


def test_it_answers_404_json_to_an_unknown_path(db, as_alice):
    assert_error(as_alice.get(f"/api/sprites/{uuid.uuid4()}/nonsense"), 404, "not_found")
    assert_error(as_alice.get("/api/sprites/a/b/c/d/e"), 404, "not_found")


# --- status -----------------------------------------------------------------------------------------


def test_it_serves_the_status_from_the_database(sprite, emulator, django_assert_max_num_queries):
    session = APIClient()
    session.login(username="alice", password="alice-password-1")
    before = emulator.counters()["requests"]
    with django_assert_max_num_queries(5):  # session, user, sprite, the user's spend this month, its projection
        response = session.get(f"/api/sprites/{sprite.public_id}/status")  # the guide's exact path
    assert emulator.counters()["requests"] == before  # no Sprites call
    body = response.json()
    assert body["id"] == str(sprite.public_id)
    assert body["status"] == "online" and body["vm_state"] == "running"
    assert body["gateway_token"] == UserSprite.objects.get(pk=sprite.pk).gateway_token
    for key in ("last_heartbeat", "total_runtime_minutes", "total_runtime_hours", "cost_to_date_usd",
                "projected_monthly_cost_usd", "gateway_url", "gateway_ws_url", "last_error"):
        assert key in body
    assert float(body["cost_to_date_usd"]) > 0  # pool set-up and provisioning are billed


def test_it_serves_the_status_with_token_auth_in_few_queries(sprite, alice, django_assert_max_num_queries):
    token = Token.objects.create(user=alice)
    client = APIClient()
    with django_assert_max_num_queries(4):  # token + user, sprite, the user's spend this month, its projection
        response = client.get(url(sprite, "status"), HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200


def test_it_refreshes_the_status_from_sprites_on_request(sprite, as_alice, emulator):
    before = emulator.counters()["requests"]
    response = as_alice.get(url(sprite, "status") + "?refresh=1")
    assert response.status_code == 200
    assert emulator.counters()["requests"] == before + 1
    assert response.json()["vm_state_checked_at"]


def test_it_rejects_a_bad_refresh_value(sprite, as_alice):
    assert_error(as_alice.get(url(sprite, "status") + "?refresh=banana"), 400, "invalid")


def test_it_hides_the_status_from_others(sprite, as_bob):
    assert_error(as_bob.get(url(sprite, "status")), 404, "not_found")
    assert_error(client_for().get(url(sprite, "status")), 401, "not_authenticated")


# --- actions -----------------------------------------------------------------------------------------


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


# --- devices and dashboard links ---------------------------------------------------------------------


def test_it_lists_and_approves_pairing_requests(sprite, as_alice, emulator):
    request = emulator.add_pairing_request(sprite.sprite_name)
    listing = as_alice.get(url(sprite, "devices"))
    assert listing.status_code == 200
    assert [p["requestId"] for p in listing.json()["pending"]] == [request["requestId"]]

    approved = as_alice.post(f"/api/sprites/{sprite.public_id}/devices/{request['requestId']}/approve")
    assert approved.status_code == 200
    assert approved.json()["deviceId"] == request["deviceId"]
    assert as_alice.get(url(sprite, "devices")).json()["pending"] == []


def test_it_answers_404_for_an_unknown_pairing_request(sprite, as_alice):
    assert_error(as_alice.post(url(sprite, f"devices/{uuid.uuid4()}/approve")), 404, "pairing_request_not_found")


@pytest.mark.parametrize("bad", ["--latest", "a%20b", "x;id", "$(id)", "%3Bls"])
def test_it_answers_400_for_an_unsafe_request_id(sprite, as_alice, bad, emulator):
    before = emulator.counters()["execs"]
    assert_error(as_alice.post(url(sprite, f"devices/{bad}/approve")), 400, "invalid_request_id")
    assert emulator.counters()["execs"] == before


def test_it_hides_devices_from_others(sprite, as_bob, emulator):
    request = emulator.add_pairing_request(sprite.sprite_name)
    assert_error(as_bob.get(url(sprite, "devices")), 404, "not_found")
    assert_error(as_bob.post(url(sprite, f"devices/{request['requestId']}/approve")), 404, "not_found")
    assert_error(client_for().get(url(sprite, "devices")), 401, "not_authenticated")
    assert request["requestId"] in emulator.pending_request_ids(sprite.sprite_name)


def test_it_answers_409_for_devices_of_a_stopped_sprite(sprite, as_alice):
    as_alice.post(url(sprite, "stop"))
    assert_error(as_alice.get(url(sprite, "devices")), 409, "invalid_state")


def test_it_hands_out_a_dashboard_link(sprite, as_alice):
    response = as_alice.post(url(sprite, "dashboard-link"))
    assert response.status_code == 200
    assert response.json()["url"].startswith(sprite.sprite_url)
    assert response.json()["expires_at"]


def test_it_answers_a_cors_preflight_from_an_allowed_origin(db, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    response = APIClient().options(
        "/api/sprites/provision", HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST", HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )
    assert response["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "authorization" in response["Access-Control-Allow-Headers"]
    other = APIClient().options("/api/sprites/provision", HTTP_ORIGIN="https://evil.example",
                                HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert "Access-Control-Allow-Origin" not in other


@pytest.mark.parametrize("method", ["get", "post", "put", "delete"])
@pytest.mark.parametrize("path", ["/api/nope", "/api/sprites//stop", "/api/cron/nope/deeper"])
def test_it_answers_unknown_api_paths_with_json_404(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Not found."}


def test_it_answers_a_csrf_failure_under_api_with_json(rf):
    from sprites.api.errors import csrf_failure

    response = csrf_failure(rf.post("/api/anything"), reason="CSRF cookie not set.")
    assert response.status_code == 403
    assert json.loads(response.content)["code"] == "csrf_failed"
    assert b"<html" in csrf_failure(rf.post("/admin/login/"), reason="x").content.lower()


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
