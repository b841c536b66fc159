"""The read-only history admins (ledger, lifecycle events, heartbeat runs and turns) filtered
by sprite, and the summary's heartbeat capacity."""

from datetime import timedelta

from django.contrib.auth import get_user_model

from sprites.models import LifecycleEvent, UsageRecord

from .conftest import CHANGELIST, NOW, bill, make_sprite


def test_it_keeps_the_history_read_only_and_filters_it_by_sprite(admin_client, alice, bob):
    mine = make_sprite("claw-alice", user=alice)
    other = make_sprite("claw-bob", user=bob)
    bill(mine, NOW - timedelta(hours=1), "0.11")
    bill(other, NOW - timedelta(hours=1), "0.99")
    LifecycleEvent.objects.create(sprite=mine, actor_kind="user", action="start")
    LifecycleEvent.objects.create(sprite=other, actor_kind="user", action="stop")

    ledger = admin_client.get("/admin/sprites/usagerecord/", {"sprite": mine.pk}).content.decode()
    events = admin_client.get("/admin/sprites/lifecycleevent/", {"sprite": mine.pk}).content.decode()

    assert "0.11" in ledger and "0.99" not in ledger
    assert '<td class="field-action">start</td>' in events
    assert '<td class="field-action">stop</td>' not in events
    record = UsageRecord.objects.filter(sprite=mine).get()
    assert admin_client.get("/admin/sprites/usagerecord/add/").status_code == 403
    assert admin_client.post(f"/admin/sprites/usagerecord/{record.pk}/change/", {}).status_code == 403
    assert admin_client.post(f"/admin/sprites/usagerecord/{record.pk}/delete/", {"post": "yes"}).status_code == 403
    assert UsageRecord.objects.count() == 2


def test_it_lists_heartbeat_runs_and_turns_by_sprite(admin_client, alice, bob):
    from heartbeat.models import HeartbeatRun, HeartbeatWake

    mine = make_sprite("claw-alice", user=alice)
    other = make_sprite("claw-bob", user=bob)
    run1 = HeartbeatRun.objects.create(started_at=NOW - timedelta(hours=1), host="host-one")
    run2 = HeartbeatRun.objects.create(started_at=NOW - timedelta(minutes=15), host="host-two")
    HeartbeatWake.objects.create(run=run1, sprite=mine, started_at=run1.started_at, outcome="ok")
    HeartbeatWake.objects.create(run=run2, sprite=other, started_at=run2.started_at, outcome="failed", error="<i>x</i>")

    runs = admin_client.get("/admin/heartbeat/heartbeatrun/", {"sprite": mine.pk}).content.decode()
    wakes = admin_client.get("/admin/heartbeat/heartbeatwake/", {"sprite": other.pk}).content.decode()

    assert "host-one" in runs and "host-two" not in runs
    assert "Failed" in wakes and "&lt;i&gt;x&lt;/i&gt;" in wakes
    assert admin_client.get("/admin/heartbeat/heartbeatrun/add/").status_code == 403


def test_the_summary_shows_the_heartbeat_capacity_and_warns_past_90_percent(admin_client, alice, settings):
    from heartbeat.models import HeartbeatRun

    settings.SPRITE_IDLE_SECONDS = 30
    make_sprite("claw-alice", user=alice, status="online")
    make_sprite("claw-bob", user=get_user_model().objects.create(username="bob2"), status="sleeping")
    html = admin_client.get(CHANGELIST).content.decode()
    assert "Heartbeat capacity" in html and "cap unknown" in html
    HeartbeatRun.objects.create(running_limit=1)  # what the last tick read from the org block
    settings.HEARTBEAT_INTERVAL_MINUTES = 2  # 1 slot × 120 s ÷ (60 s assumed turn + 30 s) = 1 sprite
    html = admin_client.get(CHANGELIST).content.decode()
    assert 'data-fleet="capacity">2 / 1<' in html
    assert "larger than the running cap carries" in html
