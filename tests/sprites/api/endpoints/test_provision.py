"""POST /api/sprites/provision: 201 from the pool, 202 while a set-up runs, 200 after;
refused to anonymous, malformed bodies and GET; CSRF with a session, none with a token; 503
with Retry-After when Sprites is down or rate-limits, 429 when the org's running cap is full."""

from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sprites import services
from sprites.models import UserSprite

from .conftest import assert_error, client_for, url


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


def test_a_provision_when_the_running_cap_is_full_is_a_429_and_the_pool_sprite_goes_back(db, as_alice, alice,
                                                                                          settings):
    """Issue 10: the org's every running slot taken (a user's session holds the only one): a
    provision from the pool answers 429 with Retry-After and a clear JSON error, and loses nothing."""
    import time

    from sprites_emulator.testing import start_emulator

    with start_emulator(running_limit=1, idle_seconds=0.5, cold_seconds=2, exec_seconds=0.05, setup_seconds=0) as emu:
        settings.SPRITES_API_URL = emu.url
        services.fill_pool(target=1)
        deadline = time.monotonic() + 10
        while emu.running() and time.monotonic() < deadline:  # the pool sprite's idle window ends
            time.sleep(0.05)
        emu.create_sprite("claw-busy")
        emu.simulate_session("claw-busy", 600)
        response = as_alice.post("/api/sprites/provision")
        body = assert_error(response, 429, "running_cap_full")
        assert int(response["Retry-After"]) > 0 and "running" in body["detail"]
        assert not UserSprite.objects.filter(user=alice).exists()
        assert UserSprite.objects.filter(user__isnull=True, status="ready").count() == 1
        assert emu.cap()["peak_running"] <= 1
