"""Devices and dashboard links through the API: pairing requests listed and approved, unknown
or unsafe request ids refused, hidden from others, 409 for a stopped sprite; a dashboard link."""

import uuid

import pytest

from .conftest import assert_error, client_for, url


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
