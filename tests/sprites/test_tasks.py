"""Background work as tasks in the database: set-ups queued, retried, deduplicated, and run
again by another worker when theirs is killed (real `manage.py worker` processes)."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from sprites import services
from sprites.client import SpritesUnavailable, get_client
from sprites.models import UsageRecord, UserSprite
from sprites.services import provisioning
from sprites.services.tasks import enqueue_setup
from sprites.worker import oldest_waiting, reap_dead_tasks
from tests.conftest import assert_ledger_consistent

ROOT = Path(__file__).resolve().parents[2]
postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="advisory locks need PostgreSQL")


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def start_worker(emulator, *extra: str, processes: int = 1) -> subprocess.Popen:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings", "TASKS_BACKEND": "django_tasks_db.DatabaseBackend",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "SPRITES_API_URL": emulator.url, "SPRITES_API_TOKEN": "test-token",
        "TASK_REAP_SECONDS": "0.5", "SPRITE_SETUP_CONCURRENCY": "4",
        "CRON_SECRET": "cron-secret-for-tests-0123456789abcdef", "ALLOWED_HOSTS": "localhost",
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "worker", "--processes", str(processes), "--interval", "0.1", "--no-startup-delay", *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


@postgres_only
def test_it_finishes_a_set_up_on_another_worker_when_its_worker_is_killed(transactional_db, settings, alice, task_queue):
    from sprites_emulator.testing import start_emulator

    with start_emulator(idle_seconds=1, cold_seconds=2, exec_seconds=0.05, setup_seconds=3) as emulator:
        settings.SPRITES_API_URL = emulator.url
        sprite, outcome = services.provision_sprite(user=alice)
        assert outcome == "provisioning"
        first = start_worker(emulator)
        second = None
        try:
            # Killed in the middle of the set-up script (it takes 3 s in the emulator).
            try:
                wait_for(lambda: emulator.exists(sprite.sprite_name), 20, "the set-up to start")
            except AssertionError:
                first.kill()
                raise AssertionError(first.communicate()[0][-3000:]) from None
            time.sleep(0.5)
            assert task_queue.rows().get().status == "RUNNING"
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            killed_at = time.monotonic()

            second = start_worker(emulator)
            wait_for(lambda: UserSprite.objects.get(pk=sprite.pk).status == "online", 30, "the sprite to come up")
            recovered = time.monotonic() - killed_at
        finally:
            for proc in (first, second):
                if proc and proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(15)

        # Seconds, not the stuck-timeout: the worker's start, the reap, and a 3 s set-up.
        assert recovered < 20, recovered
        task = task_queue.rows().get()
        assert task.status == "SUCCESSFUL" and len(task.worker_ids) == 2  # claimed by both workers
        assert UserSprite.objects.filter(user=alice).count() == 1
        sprite.refresh_from_db()
        assert sprite.status == "online" and sprite.gateway_token
        assert [s.name for s in get_client().list_sprites()] == [sprite.sprite_name]  # none leaked
        # Billed once: the killed attempt wrote nothing; the finished one its set-up and start.
        rows = UsageRecord.objects.filter(sprite=sprite, kind="active")
        assert sorted(r.idempotency_key.split(":")[2] for r in rows) == ["provisioning", "setup"], \
            [r.idempotency_key for r in rows]
        assert_ledger_consistent(sprite)


def test_it_queues_one_set_up_per_sprite(db, task_queue):
    row = UserSprite.objects.create(sprite_name="claw-once", status="provisioning")
    assert enqueue_setup(row.pk, for_user=False) is True
    assert enqueue_setup(row.pk, for_user=False) is False
    assert task_queue.rows().count() == 1


def test_it_retries_a_transient_failure_with_backoff(db, emulator, alice, task_queue, monkeypatch, settings):
    settings.SPRITE_SETUP_RETRY_SECONDS = 30
    real_set_up, calls = provisioning.set_up, []

    def flaky(row):
        calls.append(row.pk)
        if len(calls) == 1:
            raise SpritesUnavailable("Sprites API unreachable")
        real_set_up(row)

    monkeypatch.setattr(provisioning, "set_up", flaky)
    sprite, _ = services.provision_sprite(user=alice)
    assert task_queue.run() == 1
    sprite.refresh_from_db()
    assert sprite.status == "provisioning" and "unreachable" in sprite.last_error  # not `error`: retried
    retry = task_queue.rows().get(status="READY")
    assert retry.args_kwargs["kwargs"]["attempt"] == 2
    assert timedelta(seconds=25) < retry.run_after - timezone.now() <= timedelta(seconds=30)
    assert task_queue.run() == 0  # not before its time

    task_queue.rows().filter(pk=retry.pk).update(run_after=timezone.now())
    assert task_queue.run() == 1
    sprite.refresh_from_db()
    assert sprite.status == "online"


def test_a_full_running_cap_is_waited_out_without_spending_an_attempt(db, alice, task_queue, settings):
    """Every running slot of the org taken (a user's session holds the only one): the set-up
    waits for a slot, after the API's Retry-After, and runs once one is free."""
    from sprites.models import LifecycleEvent
    from sprites_emulator.testing import start_emulator

    settings.SPRITE_SETUP_ATTEMPTS = 1  # a 429 counted as a failure would turn the sprite `error`
    with start_emulator(running_limit=1, idle_seconds=1, cold_seconds=2, exec_seconds=0.05, setup_seconds=0) as emu:
        settings.SPRITES_API_URL = emu.url
        emu.create_sprite("claw-busy")
        emu.simulate_session("claw-busy", 600)
        sprite, _ = services.provision_sprite(user=alice)
        assert task_queue.run() == 1
        sprite.refresh_from_db()
        assert sprite.status == "provisioning" and not sprite.last_error
        retry = task_queue.rows().get(status="READY")
        assert retry.args_kwargs["kwargs"]["attempt"] == 1 and retry.args_kwargs["kwargs"]["waiting_since"]
        assert timedelta(0) < retry.run_after - timezone.now() <= timedelta(seconds=60)  # Retry-After, 2-60 s
        assert "running slot" in task_queue.rows().get(status="SUCCESSFUL").return_value

        task_queue.rows().filter(pk=retry.pk).update(run_after=timezone.now())
        assert task_queue.run() == 1  # still full: waits again, one event in all
        assert task_queue.rows().get(status="READY").args_kwargs["kwargs"]["waiting_since"] == \
            retry.args_kwargs["kwargs"]["waiting_since"]
        emu.advance_clock(602)  # the session ends, and its idle window
        task_queue.rows().filter(status="READY").update(run_after=timezone.now())
        assert task_queue.run() == 1
        sprite.refresh_from_db()
        assert sprite.status == "online"
        assert LifecycleEvent.objects.filter(sprite=sprite, action="setup_waiting").count() == 1
        assert emu.cap()["peak_running"] <= 1


def test_a_running_cap_full_for_too_long_counts_as_a_failure(db, alice, task_queue, settings):
    from sprites_emulator.testing import start_emulator

    settings.SPRITE_SETUP_ATTEMPTS = 1
    settings.SPRITE_SETUP_SLOT_WAIT_SECONDS = 0
    with start_emulator(running_limit=1, idle_seconds=1, cold_seconds=2, exec_seconds=0.05, setup_seconds=0) as emu:
        settings.SPRITES_API_URL = emu.url
        emu.create_sprite("claw-busy")
        emu.simulate_session("claw-busy", 600)
        sprite, _ = services.provision_sprite(user=alice)
        task_queue.run()
        sprite.refresh_from_db()
        assert sprite.status == "error" and "running slot" in sprite.last_error


def test_it_gives_up_after_the_last_attempt(db, alice, task_queue, monkeypatch, settings):
    settings.SPRITE_SETUP_ATTEMPTS = 1
    monkeypatch.setattr(provisioning, "set_up", lambda row: (_ for _ in ()).throw(SpritesUnavailable("down")))
    sprite, _ = services.provision_sprite(user=alice)
    task_queue.run()
    sprite.refresh_from_db()
    assert sprite.status == "error" and not task_queue.rows().filter(status="READY").exists()


def test_it_sets_a_waiting_user_up_before_the_pool(db, emulator, alice, task_queue, settings):
    settings.SPRITE_POOL_SIZE = 2
    assert services.fill_pool() == 2
    sprite, _ = services.provision_sprite(user=alice)
    assert task_queue.run(max_tasks=1) == 1
    sprite.refresh_from_db()
    assert sprite.status == "online"
    assert UserSprite.objects.filter(user__isnull=True, status="provisioning").count() == 2
    task_queue.run()
    assert UserSprite.objects.filter(user__isnull=True, status="ready").count() == 2


def test_it_requeues_stuck_rows_only_without_a_live_task(db, task_queue):
    lost = UserSprite.objects.create(sprite_name="claw-lost", status="provisioning")
    busy = UserSprite.objects.create(sprite_name="claw-busy", status="provisioning")
    enqueue_setup(busy.pk, for_user=False)
    UserSprite.objects.update(updated_at=timezone.now() - timedelta(minutes=10))
    assert services.resume_stuck_provisioning() == 1
    queued = {r.args_kwargs["kwargs"]["sprite_pk"] for r in task_queue.rows()}
    assert queued == {lost.pk, busy.pk} and task_queue.rows().count() == 2


@postgres_only
def test_it_requeues_a_running_task_whose_worker_is_gone(db, task_queue):
    row = UserSprite.objects.create(sprite_name="claw-orphan", status="provisioning")
    enqueue_setup(row.pk, for_user=False)
    task_queue.rows().update(status="RUNNING", worker_ids=["gone"])  # claimed, and nobody holds it
    assert reap_dead_tasks() == 1
    assert task_queue.rows().get().status == "READY"


@postgres_only
def test_it_fails_a_task_that_killed_its_worker_too_often(db, task_queue, settings):
    settings.TASK_MAX_CLAIMS = 2
    row = UserSprite.objects.create(sprite_name="claw-poison", status="provisioning")
    enqueue_setup(row.pk, for_user=False)
    task_queue.rows().update(status="RUNNING", worker_ids=["a", "b"])
    assert reap_dead_tasks() == 1
    assert task_queue.rows().get().status == "FAILED"


def test_it_reports_the_oldest_waiting_task(db, task_queue):
    assert oldest_waiting() == {"waiting": 0, "oldest_seconds": 0.0}
    row = UserSprite.objects.create(sprite_name="claw-wait", status="provisioning")
    enqueue_setup(row.pk, for_user=False)
    task_queue.rows().update(enqueued_at=timezone.now() - timedelta(seconds=90))
    figures = oldest_waiting()
    assert figures["waiting"] == 1 and 89 <= figures["oldest_seconds"] <= 100


def test_the_hours_first_tick_deletes_finished_task_results_past_their_retention(db, emulator, task_queue, settings):
    import time_machine

    from heartbeat.sweep import run_sweep

    settings.TASK_RESULT_RETENTION_DAYS = 7
    sprites = {name: UserSprite.objects.create(sprite_name=f"claw-{name}", status="provisioning").pk
               for name in ("old", "recent", "waiting")}
    for pk in sprites.values():
        enqueue_setup(pk, for_user=False)
    with time_machine.travel("2026-03-02 12:00:30+00:00", tick=False):
        for name, days in (("old", 8), ("recent", 6)):
            task_queue.rows().filter(args_kwargs__kwargs__sprite_pk=sprites[name]).update(
                status="SUCCESSFUL", finished_at=timezone.now() - timedelta(days=days))
        assert "pruning task results: 1 deleted" in run_sweep().notes
    kept = set(task_queue.rows().values_list("args_kwargs__kwargs__sprite_pk", flat=True))
    assert sprites["old"] not in kept and {sprites["recent"], sprites["waiting"]} <= kept


def children_of(pid: int) -> set[int]:
    out = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


@postgres_only
def test_it_keeps_its_worker_processes_running_and_stops_them_on_sigterm(transactional_db):
    class NoEmulator:
        url = "http://127.0.0.1:9"

    supervisor = start_worker(NoEmulator, processes=2)
    try:
        wait_for(lambda: len(children_of(supervisor.pid)) == 2, 20, "its two worker processes")
        first = children_of(supervisor.pid)
        os.kill(min(first), signal.SIGKILL)
        wait_for(lambda: len(children_of(supervisor.pid) - first) == 1 and len(children_of(supervisor.pid)) == 2,
                 20, "a new worker process in place of the killed one")
        running = children_of(supervisor.pid)
    finally:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(20)
    assert supervisor.returncode == 0
    assert not any(os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split()[2] != "Z"
                   for pid in running)  # each finished and exited
