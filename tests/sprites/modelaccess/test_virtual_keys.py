"""LiteLLM virtual keys: one per claimed sprite, minted with the user's budget on the proxy
double, rotated with the gateway token, revoked on destroy, kept through a failed
rotation; a proxy outage returns the sprite to the pool; staff's budget changes follow."""

from decimal import Decimal

import pytest

from sprites import modelaccess, services
from sprites.client import SpritesError
from sprites.models import ModelCredential, UserSprite

from .conftest import config_in, provisioned


def test_a_claimed_pool_sprite_gets_its_own_budgeted_key(db, emulator, proxy, alice):
    services.fill_pool(target=1)
    assert proxy.keys() == []  # pool sprites have none: minted when claimed
    row, _ = services.provision_sprite(user=alice)

    cred = modelaccess.active_credential(row)
    info = proxy.key_info(cred.api_key)
    assert info["max_budget"] == 5.0 and info["soft_budget"] == 4.0 and info["budget_duration"] == "30d"
    assert info["metadata"]["clawdirector_user"] == str(alice.pk)
    assert cred.key_id == info["token"] and cred.user == alice
    provider = config_in(emulator, row)["models"]["providers"]["clawdirector"]
    assert provider["apiKey"] == cred.api_key and provider["baseUrl"] == f"{proxy.url}/v1"
    assert emulator.network_policy(row.sprite_name)[-2] == {"domain": "127.0.0.1", "action": "allow"}
    # Stored encrypted: the column holds no plaintext.
    from django.db import connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM sprite_model_credentials")
        assert cred.api_key not in cursor.fetchone()[0]


def test_the_key_rotates_with_the_gateway_token_and_dies_with_the_sprite(db, emulator, proxy, alice, staff):
    row = provisioned(alice)
    old = modelaccess.active_credential(row).api_key

    services.rotate_gateway_token(sprite=row, actor=alice)
    new = modelaccess.active_credential(row).api_key
    assert new != old and proxy.key_info(old) is None and proxy.key_info(new)
    assert config_in(emulator, row)["models"]["providers"]["clawdirector"]["apiKey"] == new
    assert ModelCredential.objects.filter(sprite=row).count() == 2  # the old row kept, revoked

    services.destroy_sprite(sprite=row, actor=staff)
    assert proxy.keys() == [] and modelaccess.active_credential(row) is None


def test_a_failed_rotation_keeps_the_old_key_and_deletes_the_new_one(db, emulator, proxy, alice):
    row = provisioned(alice)
    old = modelaccess.active_credential(row).api_key
    emulator.stop()  # the Sprites API is gone: the restart fails
    with pytest.raises(SpritesError):
        services.rotate_gateway_token(sprite=row, actor=alice)
    assert modelaccess.active_credential(row).api_key == old and proxy.keys() == [old]


def test_a_proxy_outage_returns_the_claimed_sprite_to_the_pool(db, emulator, proxy, alice):
    services.fill_pool(target=1)
    proxy.stop()
    with pytest.raises(modelaccess.ModelAccessUnavailable):
        services.provision_sprite(user=alice)
    assert UserSprite.objects.filter(user__isnull=True, status="ready").count() == 1
    assert not ModelCredential.objects.exists()


def test_the_key_budget_is_the_users_monthly_budget_and_follows_staff_changes(db, emulator, proxy, alice, staff,
                                                                             settings):
    from sprites.services import budgets

    settings.SPRITE_MONTHLY_BUDGET_USD, settings.BUDGET_WARN_PERCENT = Decimal("30"), 80
    row = provisioned(alice)
    info = proxy.key_info(modelaccess.active_credential(row).api_key)
    assert (info["max_budget"], info["soft_budget"]) == (30.0, 24.0)  # one budget, not MODEL_BUDGET_USD

    budgets.set_budget(sprite=row, amount="50", actor=staff)
    info = proxy.key_info(modelaccess.active_credential(row).api_key)
    assert (info["max_budget"], info["soft_budget"]) == (50.0, 40.0)

    proxy.stop()  # the proxy is down: the budget is still set, the key keeps its old one, and it is said
    assert budgets.set_budget(sprite=row, amount="60", actor=staff).as_dict()["monthly_budget_usd"] == "60"
    assert row.events.filter(action="set_budget", outcome="failed", detail__contains="old budget").exists()


def test_without_a_money_budget_the_key_has_the_model_budget_of_settings(db, emulator, proxy, alice, settings):
    settings.SPRITE_MONTHLY_BUDGET_USD = None
    info = proxy.key_info(modelaccess.active_credential(provisioned(alice)).api_key)
    assert (info["max_budget"], info["soft_budget"]) == (5.0, 4.0)
