"""Render time of the operator console with a large fleet.

Wipes the sprites, their ledger and history, creates --sprites sprites (default 10,000) with
--days days of ledger rows each (one storage and one active row per day), then renders the
sprites changelist with the Django test client --runs times, and prints the median server
time and the query count: for the default order, sorted by cost this month (the costliest
sort: a ledger sum for every sprite), and for the live endpoint. The last line is JSON.

It refuses to run unless the database name starts with `bench` or `test`, or --yes-wipe.
"""

import json
import random
import statistics
import time
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from devtools.bench import delete_sprites, require_scratch_database
from sprites import billing
from sprites.models import UserSprite

USER_PREFIX = "bench-admin-user-"
STATUSES = [  # a plausible fleet: mostly asleep, a few broken
    ("sleeping", 60),
    ("online", 15),
    ("stopped", 10),
    ("error", 5),
    ("provisioning", 3),
    ("ready", 5),
    ("destroyed", 2),
]
BATCH = 15_000  # ledger rows per record_usage call


class Command(BaseCommand):
    help = (
        "Benchmark the sprites changelist: wipe sprites and their ledger, create a fleet with a "
        "month of ledger rows, render the page N times, print median server time and queries. "
        "Runs only on a database named bench*/test* unless --yes-wipe."
    )

    def add_arguments(self, parser):
        parser.add_argument("--sprites", type=int, default=10_000)
        parser.add_argument("--days", type=int, default=30, help="days of ledger rows per sprite")
        parser.add_argument(
            "--rows-per-day",
            type=int,
            default=2,
            help="ledger rows per sprite and day, half storage, half active (production writes ~120: "
            "24 hourly storage rows and one per heartbeat turn; 2 keeps the set-up under a minute)",
        )
        parser.add_argument("--runs", type=int, default=10)
        parser.add_argument("--yes-wipe", action="store_true", help="allow wiping any database")

    def handle(self, *args, sprites, days, rows_per_day, runs, yes_wipe, **options):
        require_scratch_database(yes_wipe=yes_wipe)  # it wipes every sprite and its ledger
        if sprites < 1 or runs < 1 or days < 0 or rows_per_day < 2:
            raise CommandError("--sprites and --runs must be at least 1, --days at least 0, --rows-per-day at least 2.")

        started = time.perf_counter()
        self.wipe()
        ledger_rows = self.create_fleet(sprites, days, rows_per_day // 2)
        self.stdout.write(
            f"fleet: {sprites:,} sprites, {ledger_rows:,} ledger rows in {time.perf_counter() - started:.1f} s"
        )

        try:
            results = self.measure_all(runs)
        finally:
            self.wipe()  # the next benchmark on this database must not sweep a fleet it did not make
        self.stdout.write(json.dumps({"sprites": sprites, "ledger_rows": ledger_rows, "results": results}))

    def measure_all(self, runs) -> dict:
        admin, _ = get_user_model().objects.get_or_create(
            username="bench-admin", defaults={"is_staff": True, "is_superuser": True, "email": "bench@example.com"}
        )
        client = Client()
        client.force_login(admin)
        ids = ",".join(map(str, UserSprite.objects.order_by("-created_at").values_list("pk", flat=True)[:50]))
        results = {}
        # The test client's host and plain http must pass whatever the deployment settings.
        with override_settings(ALLOWED_HOSTS=["testserver"], SECURE_SSL_REDIRECT=False, DEBUG=False):
            for label, url in [
                ("changelist", "/admin/sprites/usersprite/"),
                ("changelist sorted by cost this month", "/admin/sprites/usersprite/?o=-7"),
                ("live endpoint (50 rows)", f"/admin/sprites/usersprite/live/?ids={ids}"),
            ]:
                results[label] = self.measure(client, url, runs)
                r = results[label]
                self.stdout.write(
                    f"{label}: median {r['median_ms']:.1f} ms (min {r['min_ms']:.1f}, max {r['max_ms']:.1f}) "
                    f"over {runs} runs, {r['queries']} queries"
                )
        return results

    def measure(self, client, url, runs) -> dict:
        client.get(url)  # warm caches (templates, connection)
        times, queries = [], 0
        for _ in range(runs):
            with CaptureQueriesContext(connection) as captured:
                t0 = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - t0) * 1000)
            if response.status_code != 200:
                raise CommandError(f"{url} answered {response.status_code}")
            queries = len(captured)
        return {
            "median_ms": round(statistics.median(times), 1),
            "min_ms": round(min(times), 1),
            "max_ms": round(max(times), 1),
            "queries": queries,
        }

    def wipe(self):
        from django.apps import apps

        with transaction.atomic():
            for label in ("heartbeat.HeartbeatWake", "heartbeat.HeartbeatRun"):
                try:
                    apps.get_model(label).objects.all().delete()
                except LookupError:
                    pass
            # Raw deletes of every sprite and each row pointing at one (the ledger, roll-ups,
            # events, and whatever an earlier benchmark left): a scratch database only.
            delete_sprites(UserSprite.objects.all())
            get_user_model().objects.filter(username__startswith=USER_PREFIX).delete()

    def create_fleet(self, count: int, days: int, pairs: int) -> int:
        rng = random.Random(42)
        now = timezone.now()
        User = get_user_model()
        statuses = rng.choices([s for s, _ in STATUSES], weights=[w for _, w in STATUSES], k=count)
        users = User.objects.bulk_create(
            [
                User(username=f"{USER_PREFIX}{i}", email=f"user{i}@bench.example.com", password="!")
                for i, status in enumerate(statuses)
                if status not in ("ready", "provisioning")
            ],
            batch_size=2000,
        )
        if connection.vendor != "postgresql":  # only PostgreSQL returns ids from bulk_create
            users = list(User.objects.filter(username__startswith=USER_PREFIX).order_by("pk"))
        user_iter = iter(users)
        sprites = []
        for i, status in enumerate(statuses):
            has_user = status not in ("ready", "provisioning")
            sprites.append(
                UserSprite(
                    sprite_name=f"claw-bench-{i:05d}",
                    user=next(user_iter) if has_user else None,
                    status=status,
                    vm_state=rng.choice(["cold", "cold", "warm", "running"]),
                    last_heartbeat=now - timedelta(minutes=rng.randint(1, 40)) if has_user else None,
                    assigned_at=now - timedelta(days=days, hours=rng.randint(0, 48)) if has_user else None,
                    last_error="Sprites API unavailable (503)" if status == "error" else "",
                )
            )
        UserSprite.objects.bulk_create(sprites, batch_size=2000)
        ids = list(UserSprite.objects.filter(sprite_name__startswith="claw-bench-").values_list("pk", flat=True))
        UserSprite.objects.filter(pk__in=ids).update(created_at=now - timedelta(days=days + 2))

        rows = 0
        slot = timedelta(days=1) / pairs
        chunk = max(1, BATCH // max(1, days * 2 * pairs))
        for start in range(0, len(ids), chunk):
            usages = []
            for pk in ids[start : start + chunk]:
                for d in range(days):
                    for p in range(pairs):
                        at = now - timedelta(days=d + 1) + p * slot
                        # ~96 two-minute turns a day, spread over the day's active rows.
                        seconds = billing.round_seconds(Decimal(rng.randint(80, 110) * 150) / pairs)
                        usages.append(billing.storage_hour(sprite_id=pk, hour=at))
                        usages.append(billing.active(sprite_id=pk, cause="heartbeat", tag="bench", started_at=at,
                                                     ended_at=at + timedelta(seconds=float(seconds))))
            rows += len(billing.record_usage(usages))
        return rows
