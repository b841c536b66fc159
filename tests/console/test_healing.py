"""The console's part of a fleet that heals: "reconcile now", the last reconciliation panel,
and each sprite's gateway health."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from sprites.models import ReconcileRun, UserSprite

CHANGELIST = "/admin/sprites/usersprite/"
RECONCILE = "/admin/sprites/usersprite/reconcile/"


def test_it_reconciles_now_and_shows_the_run_and_its_differences(client, staff, emulator):
    emulator.make_orphan("claw-stranger", age_seconds=7200)
    client.force_login(staff)
    assert "No reconciliation yet." in client.get(CHANGELIST).content.decode()

    response = client.post(RECONCILE, follow=True)
    html = response.content.decode()
    run = ReconcileRun.objects.get()
    assert run.trigger == "staff" and run.actor == staff and run.applied
    assert not emulator.exists("claw-stranger")
    assert "Reconciled: 1 orphan; applied." in html
    assert "Provider reconciliation" in html and "claw-stranger" in html and "not provably ours" in html
    assert UserSprite.objects.get(sprite_name="claw-stranger").status == "destroyed"


def test_it_reconciles_only_by_post_and_only_for_staff_who_may_operate(client, staff, emulator):
    client.force_login(staff)
    assert client.get(RECONCILE).status_code == 405
    helper = get_user_model().objects.create_user("helper", "h@example.com", "pw-123456789", is_staff=True)
    helper.user_permissions.add(Permission.objects.get(codename="view_usersprite"))
    client.force_login(helper)
    assert "Reconcile now" not in client.get(CHANGELIST).content.decode()
    assert client.post(RECONCILE).status_code == 403
    assert not ReconcileRun.objects.exists()


def test_it_lists_reconcile_runs_and_known_good_checkpoints_read_only(client, staff, emulator):
    from sprites.services.reconcile import reconcile

    emulator.make_orphan("claw-stranger", age_seconds=60)
    reconcile(apply=False)
    client.force_login(staff)
    html = client.get("/admin/sprites/reconcilerun/").content.decode()
    assert "1 orphan; dry run" in html
    assert client.get("/admin/sprites/knowngoodcheckpoint/").status_code == 200
    assert client.get("/admin/sprites/reconcilerun/add/").status_code == 403


def test_it_shows_each_sprites_gateway_health_and_the_alert_hook_logs_and_records(client, staff, alice, caplog):
    from django.utils import timezone

    from sprites.models import LifecycleEvent
    from sprites.services import alert
    from tests.conftest import make_sprite

    good = make_sprite("claw-good", user=alice, status="online", gateway_ok_at=timezone.now())
    bad = make_sprite("claw-bad", status="online", gateway_failed_at=timezone.now(), gateway_failures=3,
                      gateway_error="/startupz answered 503", heal_attempts=2)
    make_sprite("claw-new", status="online")
    with caplog.at_level("ERROR", logger="sprites.services.heal"):
        alert(bad, "gateway still failing after it was restarted and restored")
    assert "Sprite claw-bad needs a person" in caplog.text
    assert LifecycleEvent.objects.get(sprite=bad, action="heal_alert").outcome == "failed"

    client.force_login(staff)
    html = client.get(CHANGELIST).content.decode()
    assert "failing ×3, needs staff" in html and 'title="/startupz answered 503"' in html
    assert "not checked" in html and ">ok</span>" in html
    page = client.get(f"/admin/sprites/usersprite/{good.pk}/change/").content.decode()
    assert "Gateway health" in page and "consecutive gateway failures" in page.lower()
