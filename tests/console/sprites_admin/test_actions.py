"""The changelist's actions on real emulator sprites: stop, start, refresh, rotate, heartbeat
now and destroy (confirmed first), failures counted, none offered to view-only staff."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from sprites import services
from sprites.models import LifecycleEvent, UserSprite

from .conftest import CHANGELIST, make_sprite


@pytest.fixture
def online(emulator, alice):
    """alice's sprite, provisioned for real on the emulator, gateway running."""
    sprite, _ = services.provision_sprite(user=alice)
    sprite.refresh_from_db()
    assert sprite.status == "online"
    return sprite


def run_action(client, action, sprites, **extra):
    data = {"action": action, "_selected_action": [s.pk for s in sprites], "index": "0", **extra}
    return client.post(CHANGELIST, data, follow=True)


def test_it_stops_and_starts_selected_sprites_through_the_services(admin_client, online, staff, emulator):
    stopped = run_action(admin_client, "stop", [online]).content.decode()
    online.refresh_from_db()
    assert "Stopped 1 sprite." in stopped
    assert online.status == "stopped"
    assert LifecycleEvent.objects.filter(sprite=online, action="stop", actor=staff, actor_kind="staff").exists()

    started = run_action(admin_client, "start", [online]).content.decode()
    online.refresh_from_db()
    assert "Started 1 sprite." in started
    assert online.status == "online"


def test_it_counts_the_sprites_an_action_failed_on(admin_client, online, bob):
    ghost = UserSprite.objects.create(user=bob, sprite_name="claw-ghost", sprite_id="sp-ghost", status="online")

    html = run_action(admin_client, "stop", [online, ghost]).content.decode()

    assert "Stopped 1 sprite." in html
    assert "1 failed: claw-ghost:" in html
    online.refresh_from_db()
    assert online.status == "stopped"


def test_it_refreshes_rotates_and_runs_a_heartbeat_now(admin_client, online):
    old_token = online.gateway_token

    assert "Refreshed 1 sprite." in run_action(admin_client, "refresh", [online]).content.decode()
    assert "Rotated the gateway token of 1 sprite." in run_action(admin_client, "rotate_token", [online]).content.decode()
    heartbeat = run_action(admin_client, "heartbeat_now", [online]).content.decode()

    online.refresh_from_db()
    assert online.vm_state in ("running", "warm", "cold")
    assert online.gateway_token and online.gateway_token != old_token
    assert online.gateway_token not in heartbeat
    assert "Heartbeat for 1 sprite: woke 1, skipped 0, failed 0." in heartbeat
    from heartbeat.models import HeartbeatRun

    assert HeartbeatRun.objects.get().trigger == "staff"


def test_it_asks_for_confirmation_before_destroying(admin_client, online, emulator):
    confirm = run_action(admin_client, "destroy", [online])

    online.refresh_from_db()
    assert online.status == "online"
    assert "Yes, destroy 1 sprite" in confirm.content.decode()
    assert online.sprite_name in confirm.content.decode()

    done = run_action(admin_client, "destroy", [online], post="yes").content.decode()

    online.refresh_from_db()
    assert "Destroyed 1 sprite." in done
    assert online.status == "destroyed"
    assert not emulator.exists(online.sprite_name)


def test_it_offers_no_actions_to_staff_who_may_only_view(client, alice):
    helper = get_user_model().objects.create_user("helper", "h@example.com", "pw-123456789", is_staff=True)
    helper.user_permissions.add(Permission.objects.get(codename="view_usersprite"))
    sprite = make_sprite("claw-alice", user=alice)
    client.force_login(helper)

    html = client.get(CHANGELIST).content.decode()
    response = run_action(client, "stop", [sprite])

    assert 'name="action"' not in html
    sprite.refresh_from_db()
    assert sprite.status == "online"
    assert response.status_code == 200
