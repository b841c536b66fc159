"""Bring your own key: the user's base URL and key stored encrypted and rendered, set by the
owner or staff through the API and never returned."""

import json

import pytest

from sprites import modelaccess, services

from .conftest import config_in, provisioned


def test_a_users_own_key_is_stored_encrypted_and_rendered(db, emulator, alice, settings):
    settings.MODEL_ACCESS = "byo"
    row = provisioned(alice)
    assert "models" not in config_in(emulator, row)  # no key set yet
    modelaccess.set_own_key(row, base_url="https://api.own.example/v1/", api_key="sk-users-own")
    services.rotate_gateway_token(sprite=row, actor=alice)
    provider = config_in(emulator, row)["models"]["providers"]["clawdirector"]
    assert provider == {**provider, "baseUrl": "https://api.own.example/v1", "apiKey": "sk-users-own"}
    with pytest.raises(ValueError):
        modelaccess.set_own_key(row, base_url="https://u:p@evil.example/", api_key="k")


# --- BYO through the API ------------------------------------------------------------------------


def test_the_owner_or_staff_set_the_key_through_the_api_and_it_is_never_returned(db, emulator, alice, bob, staff,
                                                                                     settings):
    from rest_framework.test import APIClient

    settings.MODEL_ACCESS = "byo"
    row = provisioned(alice)
    url = f"/api/sprites/{row.public_id}/model-key"
    body = {"base_url": "https://api.own.example/v1", "api_key": "sk-alices-own-key"}
    as_bob = APIClient()
    as_bob.force_authenticate(bob)
    assert as_bob.put(url, body, format="json").status_code == 404  # not his sprite
    as_alice = APIClient()
    as_alice.force_authenticate(alice)
    assert as_alice.put(url, {"base_url": "not a url", "api_key": "k"}, format="json").status_code == 400

    response = as_alice.put(url, body, format="json")
    assert response.status_code == 200, response.content
    assert b"sk-alices-own-key" not in response.content
    row.refresh_from_db()
    assert config_in(emulator, row)["models"]["providers"]["clawdirector"]["apiKey"] == "sk-alices-own-key"
    assert {"domain": "api.own.example", "action": "allow"} in emulator.network_policy(row.sprite_name)
    assert "sk-alices-own-key" not in json.dumps(list(row.events.values("detail")))

    as_staff = APIClient()
    as_staff.force_authenticate(staff)
    staff_set = as_staff.put(url, {"base_url": "https://api.other.example/v1", "api_key": "sk-set-by-staff"},
                             format="json")
    assert staff_set.status_code == 200 and b"sk-set-by-staff" not in staff_set.content
    assert "gateway_token" not in staff_set.json() and staff_set.json()["model_access"]["configured"] is True
    row.refresh_from_db()
    assert config_in(emulator, row)["models"]["providers"]["clawdirector"]["apiKey"] == "sk-set-by-staff"

    settings.MODEL_ACCESS = "litellm"
    refused = as_alice.put(url, body, format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "model_access_not_byo"
