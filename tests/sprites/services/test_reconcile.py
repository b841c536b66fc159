"""Reconciliation on the emulator, one test per rule: orphans adopted or destroyed (with their
storage billed), zombies destroyed, ghosts flagged (and provisioned again), stuck set-ups
resumed or failed; the command (dry run by default) and the scheduled run."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone

from sprites import billing, services
from sprites.client import SpritesClient
from sprites.models import LifecycleEvent, ReconcileRun, UsageRecord, UserSprite
from sprites.services.provisioning import GOLDEN_COMMENT
from sprites.services.reconcile import reconcile, reconcile_if_due
from tests.conftest import assert_ledger_consistent, make_sprite

Status = UserSprite.Status


def _pool_orphan(emulator, name="claw-adoptme", age=7200):
    return emulator.make_orphan(name, labels=["clawdirector"], checkpoint_comment=GOLDEN_COMMENT, age_seconds=age)


def test_it_lists_differences_without_acting_in_a_dry_run(db, emulator):
    _pool_orphan(emulator)
    emulator.make_orphan("claw-stranger", age_seconds=7200)
    run = reconcile(apply=False)
    assert not run.applied and run.provider_count == 2 and not run.error
    assert sorted((d["kind"], d["sprite"], d["action"]) for d in run.differences) == [
        ("orphan", "claw-adoptme", "adopt"), ("orphan", "claw-stranger", "destroy")]
    assert not UserSprite.objects.exists() and emulator.exists("claw-stranger")
    assert run.summary() == "2 orphan; dry run"


def test_it_adopts_a_provable_pool_orphan_and_a_user_can_claim_it(db, emulator, alice):
    _pool_orphan(emulator)
    billing.record_usage([billing.Usage(sprite_id=make_sprite("claw-old", user=None, status=Status.DESTROYED).pk,
                                        kind="active", cause="pool_setup", started_at=timezone.now(),
                                        ended_at=timezone.now(), cost_usd=Decimal("0.004"), key="t:setup")])
    emulator.create_sprite("claw-old")  # ...and a zombie beside it, so both sides are seen
    run = reconcile(apply=True)
    row = UserSprite.objects.get(sprite_name="claw-adoptme")
    assert row.status == Status.READY and row.is_pool and row.golden_checkpoint_id == "v1"
    assert (timezone.now() - row.created_at) > timedelta(hours=1, minutes=59)  # storage billed from the start
    event = LifecycleEvent.objects.get(sprite=row)
    assert event.action == "reconcile_adopt" and event.saved_usd == Decimal("0.004")
    assert run.saved_usd >= Decimal("0.004")

    sprite, how = services.provision_sprite(user=alice)
    assert (sprite.pk, how, sprite.status) == (row.pk, "ready", Status.ONLINE)


def test_it_destroys_an_unprovable_orphan_after_its_grace_and_bills_its_storage(db, emulator, settings):
    settings.RECONCILE_ORPHAN_GRACE_SECONDS = 3600
    emulator.make_orphan("claw-stranger", age_seconds=3 * 3600)
    emulator.make_orphan("claw-young", age_seconds=60)
    emulator.make_orphan("claw-nocheckpoint", labels=["clawdirector"], age_seconds=60)
    run = reconcile(apply=True)

    assert not emulator.exists("claw-stranger") and emulator.exists("claw-young")
    row = UserSprite.objects.get(sprite_name="claw-stranger")
    assert row.status == Status.DESTROYED and row.last_error.startswith("reconcile: orphan")
    rows = UsageRecord.objects.filter(sprite=row, kind="storage")
    assert rows.count() in (4, 5)  # 3 h old: its first, partial hour to the current one, whole
    cost = rows.aggregate(s=Sum("cost_usd"))["s"]
    assert cost == billing.storage_cost(rows.count())
    event = LifecycleEvent.objects.get(sprite=row, action="reconcile_destroy")
    assert event.cost_usd == cost and event.saved_usd == billing.round_cost(billing.storage_cost_per_hour() * 730)
    assert_ledger_consistent(row)
    waiting = {d["sprite"]: d["action"] for d in run.differences}
    assert waiting == {"claw-stranger": "destroy", "claw-young": "wait", "claw-nocheckpoint": "wait"}
    assert not UserSprite.objects.filter(sprite_name__in=["claw-young", "claw-nocheckpoint"]).exists()


def test_it_destroys_a_zombie_whose_row_was_destroyed(db, emulator):
    row = make_sprite("claw-zombie", status=Status.DESTROYED, destroyed_at=timezone.now() - timedelta(hours=2))
    emulator.create_sprite("claw-zombie")
    run = reconcile(apply=True)
    assert not emulator.exists("claw-zombie")
    assert [d["kind"] for d in run.differences] == ["zombie"]
    event = LifecycleEvent.objects.get(sprite=row, action="reconcile_destroy")
    assert event.cost_usd == UsageRecord.objects.filter(sprite=row).aggregate(s=Sum("cost_usd"))["s"] > 0


def test_it_flags_a_ghost_and_the_user_provisions_again(db, emulator, settings, alice):
    settings.SPRITE_POOL_SIZE = 1
    services.fill_pool()
    sprite, _ = services.provision_sprite(user=alice)
    emulator.vanish(sprite.sprite_name)
    healthy = make_sprite("claw-healthy", status=Status.SLEEPING, sprite_id="x")
    emulator.create_sprite("claw-healthy")

    run = reconcile(apply=True)
    sprite.refresh_from_db()
    assert sprite.status == Status.ERROR and sprite.sprite_id == "" and sprite.golden_checkpoint_id == ""
    assert "provider has no sprite" in sprite.last_error and sprite.last_error.startswith("reconcile: ghost")
    assert LifecycleEvent.objects.filter(sprite=sprite, action="reconcile_ghost", outcome="failed").exists()
    assert [(d["kind"], d["action"]) for d in run.differences] == [("ghost", "flag error")]
    healthy.refresh_from_db()
    assert healthy.status == Status.SLEEPING

    again, how = services.provision_sprite(user=alice)  # a full set-up (immediate task backend)
    again.refresh_from_db()
    assert (again.pk, how, again.status) == (sprite.pk, "provisioning", Status.ONLINE)
    assert emulator.exists(sprite.sprite_name) and again.sprite_id


def test_a_sprite_missing_from_the_listing_but_found_by_name_is_no_ghost(db, emulator, monkeypatch):
    row = make_sprite("claw-late", status=Status.SLEEPING, sprite_id="x")
    emulator.create_sprite("claw-late")
    listed = SpritesClient.list_sprites

    def without_it(self, **kwargs):  # as if it were created while the listing ran
        return [s for s in listed(self, **kwargs) if s.name != "claw-late"]

    monkeypatch.setattr(SpritesClient, "list_sprites", without_it)
    run = reconcile(apply=True)
    row.refresh_from_db()
    assert row.status == Status.SLEEPING and run.differences == []


def test_it_resumes_a_stuck_set_up_and_fails_one_resumed_too_often(db, emulator, settings, alice, bob):
    settings.RECONCILE_MAX_RESUMES = 2
    old = timezone.now() - timedelta(minutes=30)
    stuck = make_sprite("claw-stuck", user=alice, status=Status.PROVISIONING)
    hopeless = make_sprite("claw-hopeless", user=bob, status=Status.PROVISIONING)
    for _ in range(2):
        LifecycleEvent.objects.create(sprite=hopeless, action="resume_setup", actor_kind="system")
    UserSprite.objects.filter(pk__in=[stuck.pk, hopeless.pk]).update(updated_at=old)

    dry = reconcile(apply=False)
    assert sorted((d["sprite"], d["action"]) for d in dry.differences) == [
        ("claw-hopeless", "report"), ("claw-stuck", "report")]
    run = reconcile(apply=True)
    assert sorted((d["sprite"], d["action"]) for d in run.differences) == [
        ("claw-hopeless", "fail"), ("claw-stuck", "resume")]
    stuck.refresh_from_db()
    hopeless.refresh_from_db()
    assert stuck.status == Status.ONLINE  # the resumed set-up ran (immediate task backend)
    assert hopeless.status == Status.ERROR and "resumed 2 times" in hopeless.last_error
    assert LifecycleEvent.objects.filter(sprite=stuck, action="resume_setup", outcome="ok").count() == 1


def test_the_command_is_a_dry_run_unless_told_to_apply(db, emulator):
    emulator.make_orphan("claw-stranger", age_seconds=7200)
    out = StringIO()
    call_command("reconcile", stdout=out)
    assert "orphan: claw-stranger: destroy: not provably ours" in out.getvalue()
    assert "Run with --apply to act." in out.getvalue() and emulator.exists("claw-stranger")
    out = StringIO()
    call_command("reconcile", "--apply", "--keep-orphans", stdout=out)
    assert "claw-stranger: report" in out.getvalue() and emulator.exists("claw-stranger")
    call_command("reconcile", "--apply", stdout=StringIO())
    assert not emulator.exists("claw-stranger")
    assert ReconcileRun.objects.count() == 3


def test_the_command_exits_1_when_the_api_fails(db, emulator):
    emulator.set_faults(fault_rate=1.0)
    err = StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("reconcile", stdout=StringIO(), stderr=err)
    assert exit_.value.code == 1 and "Sprites API" in err.getvalue()
    assert ReconcileRun.objects.get().error


def test_the_scheduled_run_applies_safe_rules_at_most_once_an_interval(db, emulator, settings):
    settings.RECONCILE_EVERY_MINUTES = 60
    settings.RECONCILE_DESTROY_ON_SCHEDULE = False
    _pool_orphan(emulator)
    emulator.make_orphan("claw-stranger", age_seconds=7200)
    run = reconcile_if_due()
    assert run.trigger == "schedule" and run.applied
    assert UserSprite.objects.get(sprite_name="claw-adoptme").status == Status.READY
    assert emulator.exists("claw-stranger")  # destroying waits for a person (or the setting)
    assert reconcile_if_due() is None
    settings.RECONCILE_EVERY_MINUTES = 0
    ReconcileRun.objects.all().delete()
    assert reconcile_if_due() is None
