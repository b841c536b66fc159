"""Benchmark: a burst of sign-ups with an empty warm pool, set up by the task worker."""

import logging
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.test.utils import override_settings

from devtools.bench import delete_bench_rows, require_scratch_database
from sprites.models import UserSprite

TARGET_EFFICIENCY = 0.80
DB_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "setup"]}}


class Command(BaseCommand):
    help = (
        "Start the Sprites emulator in-process with a set-up script of --setup-seconds, empty the warm "
        "pool, then let --users users provision at once (each gets 202 and a queued set-up) while "
        "a `manage.py worker --processes <parallel>` (the production worker, its own processes) set "
        "them up, then refill the pool to --pool. Prints the time until every user's sprite is "
        "online and the pool is back at target, beside the bound users × setup ÷ parallel. Target: "
        "≥ 80% of the bound. Database queue: runs only on a scratch PostgreSQL database (bench*/test*)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--users", type=int, default=50)
        parser.add_argument("--setup-seconds", type=float, default=5.0)
        parser.add_argument("--parallel", type=int, default=4)
        parser.add_argument("--pool", type=int, default=2, help="warm pool target to get back to")
        parser.add_argument("--timeout", type=float, default=900.0)
        parser.add_argument("--yes-wipe", action="store_true", help="allow any database name")

    def handle(self, *args, users, setup_seconds, parallel, pool, timeout, yes_wipe, **options):
        if users < 1 or parallel < 1 or pool < 0 or setup_seconds < 0:
            raise CommandError("--users and --parallel must be at least 1, --pool and --setup-seconds not negative.")
        require_scratch_database(yes_wipe=yes_wipe)
        if connection.vendor != "postgresql":
            raise CommandError("bench_signups needs PostgreSQL (the queue's row locks and leases): make bench.")
        from django_tasks_db.models import DBTaskResult

        from sprites import services
        from sprites_emulator.testing import start_emulator

        for noisy in ("django_tasks", "django_tasks_db", "sprites.services.provisioning"):
            logging.getLogger(noisy).setLevel(logging.WARNING)  # a line per task is noise here
        tag = uuid.uuid4().hex[:6]
        if UserSprite.objects.filter(user__isnull=True).exclude(status=UserSprite.Status.DESTROYED).exists():
            raise CommandError("The warm pool is not empty on this database: this benchmark starts from none.")
        before = set(UserSprite.objects.values_list("pk", flat=True))
        tasks_before = set(DBTaskResult.objects.values_list("pk", flat=True))
        with start_emulator(setup_seconds=setup_seconds, exec_seconds=0.05, idle_seconds=30) as emulator, \
                override_settings(SPRITES_API_URL=emulator.url, SPRITES_API_TOKEN="bench", TASKS=DB_TASKS,
                                  SPRITE_NAME_PREFIX=f"bench-{tag}-", SPRITE_POOL_SIZE=pool,
                                  SPRITE_SETUP_CONCURRENCY=parallel, TASK_REAP_SECONDS=2.0):
            people = [get_user_model().objects.create_user(f"bench-{tag}-{i:04d}") for i in range(users)]
            workers = start_workers(emulator.url, parallel)
            try:
                answers, online_after = self.burst(people, services)
                t0 = min(start for start, _ in answers.values())
                services.fill_pool()  # what the next heartbeat sweep does: queued after the users
                wall = wait_until_done(people, online_after, t0, pool=pool, timeout=timeout)
                failed = UserSprite.objects.filter(user__in=people).exclude(status=UserSprite.Status.ONLINE).count()
            finally:
                stop(workers)
                delete_bench_rows(before, tag)
                DBTaskResult.objects.exclude(pk__in=tasks_before).delete()
        self.report(answers, online_after, wall, failed, users=users, setup_seconds=setup_seconds,
                    parallel=parallel, pool=pool)

    def report(self, answers, online_after, wall, failed, *, users, setup_seconds, parallel, pool):
        bound = users * setup_seconds / parallel
        efficiency = bound / wall
        request_times = sorted(elapsed for _, elapsed in answers.values())
        waits = sorted(online_after.values())
        w = self.stdout.write
        w(f"{users} sign-ups at once, empty pool, set-up {setup_seconds:g} s in the emulator, {parallel} parallel set-ups")
        w(f"  provision requests   all answered 202 (median {statistics.median(request_times) * 1000:.0f} ms, "
          f"max {request_times[-1] * 1000:.0f} ms); failed set-ups {failed}")
        w(f"  sprite online after  median {statistics.median(waits):.1f} s   max {waits[-1]:.1f} s")
        w(f"  all online + pool {pool}/{pool}  {wall:.1f} s   ({users + pool} set-ups)")
        w(f"  bound {users} × {setup_seconds:g} s ÷ {parallel}  {bound:.1f} s")
        verdict = "OK" if efficiency >= TARGET_EFFICIENCY else "MISSED"
        w(f"  efficiency           {efficiency:.1%} of the bound (target ≥ {TARGET_EFFICIENCY:.0%}): {verdict}")

    def burst(self, people, services):
        """Every user provisions at once, each from its own thread (as concurrent requests)."""
        answers, online_after, lock = {}, {}, threading.Lock()
        barrier = threading.Barrier(len(people))

        def sign_up(user):
            try:
                barrier.wait()
                start = time.monotonic()
                sprite, outcome = services.provision_sprite(user=user)
                elapsed = time.monotonic() - start
                if outcome == "provisioning":  # else the pool was not empty: counted as unanswered
                    with lock:
                        answers[user.pk] = (start, elapsed)
            finally:
                connection.close()

        threads = [threading.Thread(target=sign_up, args=(u,)) for u in people]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if len(answers) != len(people):
            raise CommandError(f"only {len(answers)} of {len(people)} sign-ups were answered 202 (provisioning)")
        return answers, online_after


def start_workers(emulator_url: str, parallel: int) -> subprocess.Popen:
    """The production worker, as its own processes (`manage.py worker --processes N`)."""
    db = connection.settings_dict
    env = {**os.environ, "TASKS_BACKEND": DB_TASKS["default"]["BACKEND"], "SPRITES_API_URL": emulator_url,
           "SPRITES_API_TOKEN": "bench", "SPRITE_SETUP_CONCURRENCY": str(parallel),
           "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}
    return subprocess.Popen(
        [sys.executable, "-m", "django", "worker", "--processes", str(parallel), "--interval", "0.05",
         "--no-startup-delay", "--skip-checks", "-v", "0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


def stop(workers: subprocess.Popen) -> None:
    workers.send_signal(signal.SIGTERM)
    try:
        workers.wait(60)
    except subprocess.TimeoutExpired:
        workers.kill()


def wait_until_done(people, online_after: dict, t0: float, *, pool: int, timeout: float) -> float:
    """Poll until every user's sprite is online and the pool is back at `pool`; the seconds
    since `t0`. Fills `online_after` (user pk → seconds until their sprite was online)."""
    deadline = time.monotonic() + timeout
    while True:
        now = time.monotonic()
        online = UserSprite.objects.filter(user__in=people, status=UserSprite.Status.ONLINE)
        for pk in online.exclude(user__in=list(online_after)).values_list("user_id", flat=True):
            online_after[pk] = now - t0
        ready = UserSprite.objects.filter(user__isnull=True, status=UserSprite.Status.READY).count()
        if len(online_after) == len(people) and ready >= pool:
            return now - t0
        if now > deadline:
            raise CommandError(f"timed out: {len(online_after)}/{len(people)} online, pool {ready}/{pool}")
        time.sleep(0.1)
