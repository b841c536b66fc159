"""`manage.py bench_usage`: the ledger against the emulator's meter over a simulated day of a
fleet with heartbeats and random user sessions (issue 13: every running second has a cause).

Time is compressed: the emulator's clock is moved forward a sample at a time and Django's
clock is set to the same instant (time-machine; both then run on in real time, as a turn's
wall time is real), so a day runs in minutes. Every
`HEARTBEAT_INTERVAL_MINUTES` the real sweep runs (it samples the VM states first, then wakes
every sprite through the emulator and bills the turns); in between, the real sampler
(`sync_vm_states`, as `manage.py sample_usage`) reads the states every `--sample-seconds`.
User sessions are simulated through the sprite URL (the emulator's session control), each
starting at a random moment and lasting a random time; none starts in the last hour, so every
one has ended and been sampled when the day closes. Prints the fleet's and the worst sprite's
ledger vs meter difference.
"""

import random
import time
import uuid
from datetime import datetime
from decimal import Decimal

import time_machine
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Sum
from django.test import override_settings

from devtools.bench import require_scratch_database
from heartbeat.models import HeartbeatRun
from heartbeat.sweep import run_sweep
from sprites import services
from sprites.models import UsageRecord, UserSprite


class Command(BaseCommand):
    help = ("Benchmark user-session billing: a simulated day of N sprites with heartbeats and random user "
            "sessions through the sprite URL, in compressed time; prints the ledger's active seconds against "
            "the emulator's meter, fleet-wide and for the worst sprite.")

    def add_arguments(self, parser):
        parser.add_argument("--sprites", type=int, default=1000)
        parser.add_argument("--hours", type=float, default=24.0)
        parser.add_argument("--sample-seconds", type=int, default=60, help="Sampling period (USAGE_SAMPLE_SECONDS).")
        parser.add_argument("--sessions-per-day", type=float, default=3.0, help="Mean user sessions per sprite a day.")
        parser.add_argument("--session-minutes", type=float, default=20.0, help="Mean session length (exponential).")
        parser.add_argument("--seed", type=int, default=13)
        parser.add_argument("--yes-wipe", action="store_true")

    def handle(self, *args, **options):
        n, step = options["sprites"], options["sample_seconds"]
        if n < 1 or step < 1 or options["hours"] <= 1:
            raise CommandError("--sprites and --sample-seconds must be at least 1, --hours more than 1.")
        require_scratch_database(yes_wipe=options["yes_wipe"])
        if others := UserSprite.objects.exclude(status=UserSprite.Status.DESTROYED).count():
            raise CommandError(f"The database holds {others:,} sprite(s) this benchmark did not make: its sweeps would "
                               "wake them too. Run it on an empty scratch database (make bench makes one).")
        from sprites_emulator.testing import start_emulator

        emulator = start_emulator(exec_seconds=0.0, idle_seconds=settings.SPRITE_IDLE_SECONDS, cold_seconds=3600,
                                  setup_seconds=0)
        tag = uuid.uuid4().hex[:6]
        names = [f"bench-{tag}-{i:05d}" for i in range(n)]
        try:
            self._create(emulator, names, tag)
            with override_settings(SPRITES_API_URL=emulator.url, SPRITES_API_TOKEN="bench-token",
                                   SPRITE_NAME_PREFIX=f"bench-{tag}-", SPRITE_POOL_SIZE=0,
                                   HEARTBEAT_CONCURRENCY=64, SPRITES_POOL_CONNECTIONS=64):
                started = time.monotonic()
                counts = self._simulate(emulator, names, options)
                wall = time.monotonic() - started
            self._report(emulator, names, tag, counts, wall, options)
        finally:
            emulator.stop()
            self._clean(tag)

    def _create(self, emulator, names, tag):
        for name in names:
            emulator.create_sprite(name)
        User = get_user_model()
        users = User.objects.bulk_create([User(username=name) for name in names], batch_size=1000)
        if users[0].pk is None:
            users = list(User.objects.filter(username__startswith=f"bench-{tag}-").order_by("username"))
        UserSprite.objects.bulk_create([UserSprite(user=u, sprite_name=name, status=UserSprite.Status.SLEEPING)
                                        for u, name in zip(users, names, strict=True)], batch_size=1000)

    def _simulate(self, emulator, names, options) -> dict:
        rng, step = random.Random(options["seed"]), options["sample_seconds"]
        steps = int(options["hours"] * 3600 // step)
        last_start = steps - int(3600 // step)  # no session starts in the last hour
        p_start = options["sessions_per_day"] * step / 86400
        interval = settings.HEARTBEAT_INTERVAL_MINUTES * 60
        counts = {"sweeps": 0, "samples": 0, "sessions": 0, "session_seconds": 0.0}
        self._runs = []
        now = self._advance(emulator, 0)
        first_window = now.timestamp() // interval
        with time_machine.travel(now, tick=True) as clock:  # both clocks run, and jump together
            for i in range(steps):
                starts = sorted((rng.uniform(0, step), name) for name in names if i < last_start and rng.random() < p_start)
                moved = 0.0
                for offset, name in starts:  # each session begins at its own moment in the window
                    now = self._advance(emulator, offset - moved)
                    moved = offset
                    length = rng.expovariate(1 / (options["session_minutes"] * 60))
                    emulator.simulate_session(name, length)
                    counts["sessions"] += 1
                    counts["session_seconds"] += length
                now = self._advance(emulator, step - moved)
                clock.move_to(now)
                if now.timestamp() // interval != first_window:
                    first_window = now.timestamp() // interval
                    self._runs.append(run_sweep(trigger="command").pk)  # samples, then wakes and bills
                    counts["sweeps"] += 1
                else:
                    services.sync_vm_states()
                counts["samples"] += 1
                if i % 60 == 0:
                    self.stdout.write(f"  {i * step / 3600:5.1f} h simulated", ending="\r")
            for _ in range(3):  # the last tails end; sample them asleep
                now = self._advance(emulator, step)
                clock.move_to(now)
                services.sync_vm_states()
        return counts

    @staticmethod
    def _advance(emulator, seconds: float) -> datetime:
        return datetime.fromisoformat(emulator.advance_clock(max(seconds, 0))["now"].replace("Z", "+00:00"))

    def _report(self, emulator, names, tag, counts, wall, options):
        meter = emulator.meter()["sprites"]
        rows = (UsageRecord.objects.filter(sprite__sprite_name__startswith=f"bench-{tag}-", kind="active")
                .values_list("sprite__sprite_name", "cause").annotate(s=Sum("seconds")))
        ledger: dict[str, Decimal] = {}
        by_cause: dict[str, Decimal] = {}
        for name, cause, seconds in rows:
            ledger[name] = ledger.get(name, Decimal("0")) + seconds
            by_cause[cause] = by_cause.get(cause, Decimal("0")) + seconds
        truth = {name: Decimal(str(meter[name]["running_seconds_final"])) for name in names}
        total_l, total_t = sum(ledger.values(), Decimal("0")), sum(truth.values(), Decimal("0"))
        fleet = (total_l - total_t) / total_t * 100
        diffs = sorted(((ledger.get(name, Decimal("0")) - t) / t * 100, name) for name, t in truth.items() if t)
        worst = max(diffs, key=lambda d: abs(d[0]))
        lines = [
            f"{len(names)} sprites, {options['hours']:g} h simulated in {wall:.1f} s: {counts['sweeps']} sweeps, "
            f"{counts['samples']} samples every {options['sample_seconds']} s, {counts['sessions']} user sessions "
            f"({counts['session_seconds'] / 3600:.1f} h)",
            "ledger by cause    " + ", ".join(f"{c} {s / 3600:.1f} h" for c, s in sorted(by_cause.items())),
            f"ledger active      {total_l:14.3f} s",
            f"emulator meter     {total_t:14.3f} s  (running_seconds_final)",
            f"fleet difference   {fleet:+9.3f} %   target within 1%  {'ok' if abs(fleet) <= 1 else 'MISSED'}",
            f"worst sprite       {worst[0]:+9.3f} %   target within 2%  {'ok' if abs(worst[0]) <= 2 else 'MISSED'}"
            f"  ({worst[1]}; median |diff| {abs(sorted(abs(d) for d, _ in diffs)[len(diffs) // 2]):.3f} %)",
        ]
        for line in lines:
            self.stdout.write(line)

    def _clean(self, tag):
        sprites = UserSprite.objects.filter(sprite_name__startswith=f"bench-{tag}-")
        HeartbeatRun.objects.filter(pk__in=getattr(self, "_runs", [])).delete()  # and their wakes
        for relation in UserSprite._meta.related_objects:
            model = relation.related_model
            model.objects.filter(**{f"{relation.field.name}__in": sprites})._raw_delete(model.objects.db)
        sprites._raw_delete(UserSprite.objects.db)
        get_user_model().objects.filter(username__startswith=f"bench-{tag}-").delete()
