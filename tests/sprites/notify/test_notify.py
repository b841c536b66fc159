"""The notifier: one row per event and period (the unique key), email to ADMINS (Django's
locmem outbox in tests), a signed webhook (mocked with `responses`), retries as tasks; and the
events: a sprite entering error, a failed sweep, a missed sweep, the capacity hook."""

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
import requests
import responses
from django.core import mail
from django.utils import timezone

from heartbeat.models import HeartbeatRun
from heartbeat.sweep import run_sweep
from ops import health
from sprites import notify
from sprites.client import SpritesError
from sprites.models import Notification, UserSprite
from sprites.notify import webhook
from sprites.services.events import fail
from tests.conftest import API, make_sprite
from tests.heartbeat.conftest import answer_exec, exec_body

pytestmark = pytest.mark.django_db
HOOK = "https://hooks.example.test/clawdirector?token=hook-url-secret"
SECRET = "webhook-signing-secret-0123456789"


@pytest.fixture(autouse=True)
def channels(settings):
    settings.ADMINS = [("ops@example.com", "ops@example.com")]
    settings.NOTIFY_WEBHOOK_URL = HOOK
    settings.NOTIFY_WEBHOOK_SECRET = SECRET
    settings.NOTIFY_RETRY_SECONDS = 0


@pytest.fixture
def hook():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(HOOK, status=204)
        yield rsps


def sent(rsps) -> list[dict]:
    return [json.loads(call.request.body) for call in rsps.calls if call.request.url == HOOK]


def test_it_sends_an_event_once_per_key_by_email_and_a_signed_webhook(hook):
    first = notify.capacity_warning(name="pool", detail="2 of 50 ready", at=timezone.now())
    again = notify.capacity_warning(name="pool", detail="1 of 50 ready", at=timezone.now())
    assert first is not None and again is None
    assert Notification.objects.count() == 1

    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ops@example.com"]
    assert mail.outbox[0].subject == "[ClawDirector] Capacity warning: pool"
    (call,) = hook.calls
    body, headers = call.request.body, call.request.headers
    expected = hmac.new(SECRET.encode(), headers["X-ClawDirector-Timestamp"].encode() + b"." + body,
                        hashlib.sha256).hexdigest()
    assert headers["X-ClawDirector-Signature"] == f"sha256={expected}"
    assert headers["X-ClawDirector-Event"] == "capacity"
    assert abs(int(headers["X-ClawDirector-Timestamp"]) - timezone.now().timestamp()) < 60
    payload = json.loads(body)
    assert payload["kind"] == "capacity" and payload["data"] == {"name": "pool", "detail": "2 of 50 ready"}
    first.refresh_from_db()
    assert first.email_sent_at and first.webhook_sent_at and first.attempts == 1 and not first.last_error


def test_a_new_period_is_a_new_notification(hook):
    now = timezone.now()
    notify.capacity_warning(name="tasks", detail="x", at=now)
    notify.capacity_warning(name="tasks", detail="x", at=now + timedelta(hours=1))
    assert Notification.objects.count() == 2


def test_it_retries_a_failed_webhook_as_a_task_without_mailing_twice(task_queue, settings):
    settings.NOTIFY_RETRY_SECONDS = 30
    with responses.RequestsMock() as rsps:
        rsps.post(HOOK, status=502)
        rsps.post(HOOK, status=200)
        note = notify.capacity_warning(name="sprites", detail="cap near")
        assert task_queue.run() == 1  # the first attempt: mail sent, webhook refused, a retry queued
        note.refresh_from_db()
        assert note.email_sent_at and note.webhook_sent_at is None
        assert note.last_error == "webhook: the receiver answered 502"
        retry = task_queue.rows().get(status="READY")
        assert retry.args_kwargs["kwargs"]["attempt"] == 2
        assert timedelta(seconds=25) < retry.run_after - timezone.now() <= timedelta(seconds=30)
        assert task_queue.run() == 0  # not before its time
        task_queue.rows().filter(pk=retry.pk).update(run_after=timezone.now())
        assert task_queue.run() == 1
    note.refresh_from_db()
    assert note.webhook_sent_at and note.attempts == 2 and note.last_error == ""
    assert len(mail.outbox) == 1


def test_it_gives_up_after_the_last_attempt_and_never_names_the_url(task_queue, settings):
    settings.NOTIFY_ATTEMPTS = 2
    with responses.RequestsMock() as rsps:
        rsps.post(HOOK, body=requests.ConnectionError("refused"))
        note = notify.capacity_warning(name="sprites", detail="cap near")
        task_queue.run()
        task_queue.run()
    note.refresh_from_db()
    assert note.attempts == 2 and note.webhook_sent_at is None
    assert note.last_error == "webhook: not delivered (ConnectionError)"
    failed = task_queue.rows().get(status="FAILED")
    assert "hook-url-secret" not in json.dumps(failed.traceback or "") + note.last_error


def test_a_webhook_that_answers_a_redirect_is_a_failure():
    with responses.RequestsMock() as rsps:
        rsps.post(HOOK, status=302, headers={"Location": "https://elsewhere.test/"})
        with pytest.raises(webhook.WebhookError):
            webhook.post({"x": 1}, event="test")


def test_a_sprite_entering_error_is_notified_once(hook):
    sprite = make_sprite("claw-broken", status=UserSprite.Status.PROVISIONING)
    fail(sprite, action="provision", actor=None, exc=SpritesError("boom"), started=0.0, to_error=True)
    fail(sprite, action="provision", actor=None, exc=SpritesError("boom again"), started=0.0, to_error=True)
    note = Notification.objects.get()
    assert note.kind == "sprite_error" and note.sprite == sprite
    assert "provision: boom" in note.body
    assert sent(hook)[0]["subject"] == "Sprite claw-broken is in error"


def test_a_failed_sweep_is_notified_once_an_hour(settings):
    make_sprite("claw-a", status=UserSprite.Status.ONLINE)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{API}/sprites", json={"sprites": [], "has_more": False, "next_continuation_token": None})
        rsps.post(HOOK, status=200)
        answer_exec(rsps, default=exec_body(b"nope", exit_code=1))
        first = run_sweep()
        UserSprite.objects.release_leases()  # a failed sprite waits for the next window otherwise
        second = run_sweep(force=True)
    assert first.failed == 1 and first.woke == 0 and second.failed == 1
    note = Notification.objects.get(kind="sweep_failed")
    assert note.data["run"] == first.pk and "claw-a" in note.body


def test_a_good_sweep_notifies_nothing(settings):
    make_sprite("claw-a", status=UserSprite.Status.ONLINE)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{API}/sprites", json={"sprites": [], "has_more": False, "next_continuation_token": None})
        answer_exec(rsps)
        assert run_sweep().woke == 1
    assert not Notification.objects.exists()


def test_a_missed_sweep_is_notified_once_per_gap_by_readyz(client, hook, settings):
    health.forget()
    settings.HEARTBEAT_INTERVAL_MINUTES = 15
    run = HeartbeatRun.objects.create(finished_at=timezone.now())
    HeartbeatRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(minutes=50))
    hook.get(f"{API}/sprites", json={"sprites": [], "has_more": False})
    assert client.get("/readyz").status_code == 503
    assert client.get("/readyz").status_code == 503
    note = Notification.objects.get(kind="sweep_missed")
    assert "last sweep started 50 min ago" in note.body
    health.forget()


def test_the_system_checks_refuse_an_unsigned_webhook_and_a_bad_threshold(settings):
    from clawdirector.checks import check_budgets_and_notifications

    assert check_budgets_and_notifications() == []
    settings.NOTIFY_WEBHOOK_SECRET = ""
    settings.BUDGET_WARN_PERCENT = 100
    assert [e.id for e in check_budgets_and_notifications()] == ["clawdirector.E008", "clawdirector.E009"]
