"""The console's bulk actions and "Run a heartbeat now" queue tasks and answer at once; a page
per click shows each task's progress and outcome."""

import re

import pytest

from sprites import services
from sprites.models import UserSprite

CHANGELIST = "/admin/sprites/usersprite/"


@pytest.fixture
def online(emulator, alice):
    sprite, _ = services.provision_sprite(user=alice)  # the immediate backend: online now
    sprite.refresh_from_db()
    assert sprite.status == "online"
    return sprite


def run_action(client, action, sprites):
    data = {"action": action, "_selected_action": [s.pk for s in sprites], "index": "0"}
    return client.post(CHANGELIST, data, follow=True).content.decode()


def progress_url(html: str) -> str:
    return re.search(r'href="(/admin/sprites/usersprite/tasks/[0-9a-f]+/)"', html).group(1)


def test_it_queues_a_bulk_action_and_shows_its_progress_and_outcome(admin_client, online, bob, task_queue):
    ghost = UserSprite.objects.create(user=bob, sprite_name="claw-ghost", sprite_id="sp-ghost", status="online")

    html = run_action(admin_client, "stop", [online, ghost])
    assert "Stopped: 2 sprites queued." in html
    online.refresh_from_db()
    assert online.status == "online"  # nothing ran in the request
    page = admin_client.get(progress_url(html)).content.decode()
    assert "0 done, 0 failed, 0 running, 2 waiting" in page and 'http-equiv="refresh"' in page

    assert task_queue.run() == 2
    page = admin_client.get(progress_url(html)).content.decode()
    assert "1 done, 1 failed, 0 running, 0 waiting" in page and 'http-equiv="refresh"' not in page
    assert "claw-ghost:" in page  # the failure's own message
    online.refresh_from_db()
    assert online.status == "stopped"


def test_it_queues_a_heartbeat_now(admin_client, online, task_queue):
    html = run_action(admin_client, "heartbeat_now", [online])
    assert "Heartbeat for 1 sprite queued." in html
    from heartbeat.models import HeartbeatRun

    assert not HeartbeatRun.objects.exists()
    assert task_queue.run() == 1
    page = admin_client.get(progress_url(html)).content.decode()
    assert "woke 1, skipped 0, failed 0" in page
    assert HeartbeatRun.objects.get().trigger == "staff"


def test_it_shows_no_batch_that_does_not_exist(admin_client, task_queue):
    assert admin_client.get(f"{CHANGELIST}tasks/0123abcd/").status_code == 404
