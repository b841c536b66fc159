"""Reading sprites through the API: the list (the caller's own, paginated), one sprite to its
owner only, JSON 404s for malformed ids and paths, and the status from the database or
refreshed from Sprites."""

import uuid

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sprites.models import UserSprite

from .conftest import assert_error, client_for, url


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
