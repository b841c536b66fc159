"""The gateway token reveal on the change page: by POST, to superusers only, logged; and the
change page's links to the sprite's history."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from sprites.models import LifecycleEvent

from .conftest import CHANGELIST, make_sprite


def test_it_reveals_the_token_to_a_superuser_by_post_and_logs_it(admin_client, staff, alice):
    sprite = make_sprite("claw-alice", user=alice, gateway_token="gw-secret-token-0123456789")
    url = f"{CHANGELIST}{sprite.pk}/reveal-token/"

    assert admin_client.get(url).status_code == 405
    assert not LifecycleEvent.objects.exists()

    response = admin_client.post(url)

    assert response.status_code == 200
    assert "gw-secret-token-0123456789" in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    event = LifecycleEvent.objects.get()
    assert (event.sprite_id, event.action, event.actor_id, event.actor_kind) == (sprite.pk, "reveal_token", staff.pk, "staff")
    assert "gw-secret" not in event.detail


def test_it_refuses_the_reveal_to_staff_who_are_not_superusers(client, alice):
    helper = get_user_model().objects.create_user("helper", "h@example.com", "pw-123456789", is_staff=True)
    helper.user_permissions.add(Permission.objects.get(codename="view_usersprite"))
    sprite = make_sprite("claw-alice", user=alice, gateway_token="gw-secret-token-0123456789")
    client.force_login(helper)

    change = client.get(f"{CHANGELIST}{sprite.pk}/change/").content.decode()
    response = client.post(f"{CHANGELIST}{sprite.pk}/reveal-token/")

    assert "Reveal" not in change and "sprite-secret" in change
    assert response.status_code == 403
    assert not LifecycleEvent.objects.exists()


def test_it_links_the_change_page_to_the_sprites_history(admin_client, alice):
    sprite = make_sprite("claw-alice", user=alice)
    LifecycleEvent.objects.create(sprite=sprite, actor_kind="user", action="start", detail="<b>started</b>")

    html = admin_client.get(f"{CHANGELIST}{sprite.pk}/change/").content.decode()

    assert f'href="/admin/sprites/lifecycleevent/?sprite={sprite.pk}"' in html
    assert f'href="/admin/sprites/usagerecord/?sprite={sprite.pk}"' in html
    assert f'href="/admin/heartbeat/heartbeatrun/?sprite={sprite.pk}"' in html
    assert "&lt;b&gt;started&lt;/b&gt;" in html
