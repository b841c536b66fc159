"""/readyz's `tasks` check: the task queue's oldest due task, failing when nothing takes them."""

from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from ops import health
from tests.conftest import API
from tests.ops.test_health import recent_sweep


@pytest.fixture
def sprites_api():
    health.forget()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{API}/sprites", json={"sprites": [], "has_more": False})
        yield rsps
    health.forget()


def test_readyz_reports_the_task_queue_and_fails_when_nothing_takes_its_tasks(client, db, sprites_api, settings):
    from django_tasks_db.models import DBTaskResult

    recent_sweep()
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "setup"]}}
    from sprites.models import UserSprite
    from sprites.services.tasks import enqueue_setup

    enqueue_setup(UserSprite.objects.create(sprite_name="claw-waits", status="provisioning").pk, for_user=True)
    assert client.get("/readyz").json()["checks"]["tasks"]["ok"] is True
    DBTaskResult.objects.update(enqueued_at=timezone.now() - timedelta(minutes=6))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["tasks"] == {
        "ok": False, "detail": "1 waiting, oldest 360 s (limit 300): is a worker running?"}
