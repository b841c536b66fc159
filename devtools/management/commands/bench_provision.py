"""Benchmark: provisioning a user from the warm pool, against the emulator with a set latency."""

import logging
import statistics
import time
import uuid

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings

from devtools.bench import delete_bench_rows, require_scratch_database
from sprites.models import UserSprite

TARGET_SECONDS = 1.5


class Command(BaseCommand):
    help = (
        "Start the Sprites emulator in-process with --latency-ms per API call, set up --users pool "
        "sprites, then provision that many users one after another from the pool and print the "
        "end-to-end time per provision (median, p90, max) and the Sprites API calls each made. "
        "Target: under 1.5 s at 50 ms per call. Runs only on a scratch database (bench*/test*)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--users", type=int, default=20)
        parser.add_argument("--latency-ms", type=float, default=50.0)
        parser.add_argument("--yes-wipe", action="store_true", help="allow any database name")

    def handle(self, *args, users, latency_ms, yes_wipe, **options):
        if users < 1 or latency_ms < 0:
            raise CommandError("--users must be at least 1 and --latency-ms not negative.")
        require_scratch_database(yes_wipe=yes_wipe)
        from sprites import services
        from sprites_emulator.testing import start_emulator

        logging.getLogger("sprites.services.provisioning").setLevel(logging.WARNING)  # one line per set-up is noise here
        tag = uuid.uuid4().hex[:6]
        User = get_user_model()
        with start_emulator(latency_ms=latency_ms, setup_seconds=0, idle_seconds=30) as emulator, override_settings(
            SPRITES_API_URL=emulator.url, SPRITES_API_TOKEN="bench", SPRITE_NAME_PREFIX=f"bench-{tag}-",
            # The pool is set up inline here (its set-up speed is bench_signups' subject).
            TASKS={"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend", "QUEUES": ["default", "setup"]}},
        ):
            before = set(UserSprite.objects.values_list("pk", flat=True))
            try:
                t0 = time.perf_counter()
                created = services.fill_pool(target=users)
                setup = (time.perf_counter() - t0) / max(created, 1)

                timings, per_call = [], []
                for i in range(users):
                    user = User.objects.create_user(f"bench-{tag}-{i:04d}")
                    calls_before = emulator.counters()["requests"]
                    t0 = time.perf_counter()
                    sprite, outcome = services.provision_sprite(user=user)
                    timings.append(time.perf_counter() - t0)
                    per_call.append(emulator.counters()["requests"] - calls_before)
                    if outcome != "ready":
                        raise CommandError(f"provision {i} came back {outcome!r}, not from the pool")
            finally:
                delete_bench_rows(before, tag)

        timings.sort()
        median = statistics.median(timings)
        p90 = timings[min(len(timings) - 1, int(len(timings) * 0.9))]
        w = self.stdout.write
        w(f"provision from the warm pool, emulator latency {latency_ms:g} ms per call, {users} users")
        w(f"  pool set-up       {setup:.3f} s per sprite (not on the user's path)")
        w(f"  provision median  {median:.3f} s   p90 {p90:.3f} s   max {timings[-1]:.3f} s")
        w(f"  Sprites API calls {statistics.mean(per_call):.1f} per provision "
          f"(floor from latency alone: {statistics.mean(per_call) * latency_ms / 1000:.3f} s)")
        verdict = "OK" if median < TARGET_SECONDS else "MISSED"
        w(f"  target            < {TARGET_SECONDS} s median: {verdict} ({median / TARGET_SECONDS:.0%} of target)")
