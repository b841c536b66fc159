"""The soak (issue 14): a fleet that heals, under a faulty provider, window after window."""

import logging
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from unittest import mock

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count
from django.test import override_settings
from django.utils import timezone

from devtools.bench import delete_sprites, require_scratch_database
from devtools.soak_report import Report
from heartbeat.models import HeartbeatRun, HeartbeatWake
from heartbeat.sweep import run_sweep
from sprites.models import ReconcileRun, UserSprite
from sprites.models.schedule import window_start

GATEWAY = "openclaw-gateway"
WAKE_FAULTS = ("gateway_crash_on_wake", "gateway_corrupt_on_wake")
KILLED_CONCURRENCY = 8  # the sweeper killed mid-run: few in flight, as a real one would lose
RECOVERY_WINDOWS = 2  # after the faulty windows, faults off: what is still broken then?


class Command(BaseCommand):
    help = (
        "Soak a fleet that heals against an in-process Sprites emulator: N assigned sprites (and a "
        "few orphans) through W heartbeat windows of HEARTBEAT_INTERVAL_MINUTES, the clock jumped "
        "window to window (time-machine), with a share of Sprites calls failing (5xx, 429, dropped "
        "connections) and a share of wakes breaking the gateway (crashed, or its config corrupt); a sweeper started as a separate "
        "process is killed mid-run in the first window. Then two windows without faults. Prints, per "
        "window, who was woken, who was late and why; the ledger against the emulator's meter; every "
        "broken gateway healed or alerted; orphans left. Deletes what it made. Refuses to run unless "
        "the database name starts with 'bench' or 'test', or --yes-wipe is given."
    )

    def add_arguments(self, parser):
        parser.add_argument("--sprites", type=int, default=1000)
        parser.add_argument("--windows", type=int, default=8, help="Faulty windows (8 × 15 min = 2 h).")
        parser.add_argument("--fail-rate", type=float, default=0.2, help="Share of Sprites calls failing.")
        parser.add_argument("--broken-rate", type=float, default=0.02, help="Share of wakes breaking the gateway.")
        parser.add_argument("--orphans", type=int, default=10)
        parser.add_argument("--concurrency", type=int, default=16,
                            help="Sweep threads. The emulator runs in this process: with 64 threads the turns' "
                                 "wall times include waits for the GIL its meter never sees (+1.3 %% at 64, "
                                 "+0.5 %% at 16); the heartbeat's own speed is bench_heartbeat's subject.")
        parser.add_argument("--exec-seconds", type=float, default=0.2)
        parser.add_argument("--latency-ms", type=float, default=5.0)
        parser.add_argument("--idle-seconds", type=int, default=5,
                            help="Idle tail (the real one is ~30 s; the ledger bills the client's wall time, so "
                                 "its round trip weighs more on a short tail: docs/cost-model.md).")
        parser.add_argument("--seed", type=int, default=14)
        parser.add_argument("--no-kill", action="store_true", help="Do not start and kill a second sweeper.")
        parser.add_argument("--yes-wipe", action="store_true")

    def handle(self, *args, **options):
        if options["sprites"] < 1 or options["windows"] < 1 or options["concurrency"] < 1:
            raise CommandError("--sprites, --windows and --concurrency must be at least 1.")
        if not (0 <= options["fail_rate"] < 1 and 0 <= options["broken_rate"] <= 1):
            raise CommandError("--fail-rate must be in [0, 1) and --broken-rate in [0, 1].")
        require_scratch_database(yes_wipe=options["yes_wipe"])
        from sprites_emulator.testing import start_emulator

        emulator = start_emulator(latency_ms=options["latency_ms"], exec_seconds=options["exec_seconds"],
                                  idle_seconds=options["idle_seconds"], cold_seconds=3600,
                                  seed=options["seed"])
        tag = uuid.uuid4().hex[:6]
        soak = Soak(self, emulator, prefix=f"soak{tag}-", options=options)
        # The injected faults make every retry a WARNING line: only errors (alerts) are shown.
        quiet = {name: logging.getLogger(name).level for name in ("sprites", "heartbeat")}
        try:
            for name in quiet:
                logging.getLogger(name).setLevel(logging.ERROR)
            # Users' own sessions are not sampled here: the soak jumps Django's clock 15 minutes a
            # window (time-machine) while the VM timestamps the sampler reads are the emulator's
            # real ones, so every read would look like a session across the jump. Their billing
            # is bench_usage's subject (the emulator's own clock, moved in step).
            with override_settings(**soak.settings()), \
                    mock.patch("sprites.services.sampling.bill_user_sessions", return_value=Decimal(0)):
                soak.run()
        finally:
            emulator.stop()
            soak.clean()
            for name, level in quiet.items():
                logging.getLogger(name).setLevel(level)


class Soak:
    def __init__(self, command, emulator, *, prefix: str, options: dict):
        self.say = command.stdout.write
        self.emulator, self.prefix, self.options = emulator, prefix, options
        self.rng = random.Random(options["seed"])
        self.names: list[str] = []
        self.first_run = (HeartbeatRun.objects.order_by("-pk").values_list("pk", flat=True).first() or 0)
        self.first_reconcile = (ReconcileRun.objects.order_by("-pk").values_list("pk", flat=True).first() or 0)
        self.report = Report(prefix=prefix, say=self.say, emulator=emulator)
        self.ids: dict[int, str] = {}

    def settings(self) -> dict:
        return dict(
            SPRITES_API_URL=self.emulator.url, SPRITES_API_TOKEN="soak-token", SPRITE_IDLE_SECONDS=self.options["idle_seconds"],
            SPRITE_NAME_PREFIX=self.prefix, SPRITE_POOL_SIZE=0, GATEWAY_VERIFY=True,
            GATEWAY_VERIFY_WAIT_SECONDS=2.0, RECONCILE_EVERY_MINUTES=60, RECONCILE_DESTROY_ON_SCHEDULE=True,
            RECONCILE_ORPHAN_GRACE_SECONDS=3600, HEAL_PER_SWEEP=max(50, self.options["sprites"] // 10),
            SPRITES_POOL_CONNECTIONS=max(settings.SPRITES_POOL_CONNECTIONS, self.options["concurrency"]),
            SPRITES_BACKOFF_SECONDS=0.05,
        )

    def run(self) -> None:
        import time_machine  # a development dependency, like the devtools themselves

        self._make_fleet()
        o = self.options
        interval = timedelta(minutes=settings.HEARTBEAT_INTERVAL_MINUTES)
        first = window_start(timezone.now(), interval) + interval
        self.say(f"{o['sprites']} sprites, {o['orphans']} orphans, {o['windows']} windows of {interval}, "
                 f"{o['fail_rate']:.0%} of Sprites calls failing, {o['broken_rate']:.0%} of wakes breaking the "
                 f"gateway, concurrency {o['concurrency']}")
        started = time.monotonic()
        for w in range(o["windows"] + RECOVERY_WINDOWS):
            faulty = w < o["windows"]
            self._faults(on=faulty)
            if w == o["windows"]:
                self.report.disarm()  # faults off: no new breakage, only what is broken heals
            at = first + w * interval + timedelta(seconds=5)
            with time_machine.travel(at, tick=True):
                armed = self._arm() if faulty else set()
                dead = self._kill_a_sweeper(at) if w == 0 and not o["no_kill"] else set()
                run = run_sweep(trigger="command", concurrency=o["concurrency"])
            self.report.window(w, run, armed=armed, dead=dead, faulty=faulty, ids=self.ids)
        self.report.finish(names=self.names, orphans=self.options["orphans"], wall=time.monotonic() - started)

    def _make_fleet(self) -> None:
        n, emulator = self.options["sprites"], self.emulator
        self.names = [f"{self.prefix}{i:05d}" for i in range(n)]
        for name in self.names:
            emulator.create_sprite(name)
            emulator.run_service(name, GATEWAY, env={"OPENCLAW_GATEWAY_TOKEN": f"soak-token-{name}"})
        User = get_user_model()
        users = User.objects.bulk_create([User(username=name) for name in self.names], batch_size=1000)
        if users[0].pk is None:
            users = list(User.objects.filter(username__startswith=self.prefix).order_by("username"))
        UserSprite.objects.bulk_create(
            [UserSprite(user=user, sprite_name=name, sprite_id=name, status=UserSprite.Status.SLEEPING,
                        sprite_url=f"{emulator.url}/_sprite/{name}", gateway_token=f"soak-token-{name}")
             for user, name in zip(users, self.names, strict=True)], batch_size=1000)
        self.ids = dict(UserSprite.objects.filter(sprite_name__in=self.names).values_list("pk", "sprite_name"))
        for i in range(self.options["orphans"]):
            emulator.make_orphan(f"{self.prefix}orphan-{i:03d}", age_seconds=4 * 3600)

    def _faults(self, *, on: bool) -> None:
        rate = self.options["fail_rate"] if on else 0.0
        # 20% = half answered 5xx, a quarter 429 (Retry-After 50 ms), a quarter dropped.
        self.emulator.set_faults(fault_rate=rate / 2, rate_limit_rate=rate / 4, drop_rate=rate / 4,
                                 retry_after=0.05, fault_status=503)

    def _arm(self) -> set[str]:
        """This window's broken gateways: the next wake of each crashes the gateway (half of
        them: a restart cures it) or corrupts its config (the other half: only a restore of a
        known-good checkpoint does, or, with none, a person)."""
        k = round(len(self.names) * self.options["broken_rate"])
        armed = self.rng.sample(self.names, k)
        for i, name in enumerate(armed):
            self.emulator.set_behavior(name, **{WAKE_FAULTS[i % 2]: True})
        return set(armed)

    def _kill_a_sweeper(self, at: datetime) -> set[int]:
        """A second sweeper, a separate process on the same clock, killed (SIGKILL) as soon as
        it holds leases: what it claimed stays leased until the lease ends, in the next window."""
        env = {**os.environ, "SPRITES_API_URL": self.emulator.url, "SPRITES_API_TOKEN": "soak-token",
               "SPRITE_NAME_PREFIX": self.prefix, "SPRITE_POOL_SIZE": "0", "HEARTBEAT_CONCURRENCY":
               str(KILLED_CONCURRENCY), "RECONCILE_EVERY_MINUTES": "0", "GATEWAY_VERIFY": "1",
               "SPRITE_IDLE_SECONDS": str(self.options["idle_seconds"]), "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE",
                                                                                   "clawdirector.settings")}
        script = ("import sys, datetime, time_machine, django; "
                  f"time_machine.travel(datetime.datetime.fromisoformat({at.isoformat()!r}), tick=True).start(); "
                  "django.setup(); from django.core.management import call_command; call_command('heartbeat')")
        process = subprocess.Popen([sys.executable, "-c", script], cwd=settings.BASE_DIR, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        leased = UserSprite.objects.filter(sprite_name__in=self.names, heartbeat_lease_until__isnull=False)
        deadline = time.monotonic() + 60
        while not leased.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # a few turns in flight
        process.send_signal(signal.SIGKILL)
        process.wait()
        dead = set(leased.values_list("pk", flat=True))
        self.say(f"  killed a sweeper (pid {process.pid}) holding {len(dead)} lease(s)")
        return dead

    def clean(self) -> None:
        """Delete exactly what the soak made (raw deletes: the ledger refuses ordinary ones)."""
        sprites = UserSprite.objects.filter(sprite_name__startswith=self.prefix)
        HeartbeatWake.objects.filter(sprite__in=sprites).delete()
        HeartbeatRun.objects.filter(pk__gt=self.first_run).annotate(n=Count("wakes")).filter(n=0).delete()
        ReconcileRun.objects.filter(pk__gt=self.first_reconcile).delete()
        delete_sprites(sprites)
        get_user_model().objects.filter(username__startswith=self.prefix).delete()

