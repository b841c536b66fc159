import fcntl
import hashlib
import os
import sys
import tempfile
import time
import uuid

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from heartbeat.config import TICK_BUDGET, TICK_SECONDS
from heartbeat.ping import ping
from heartbeat.plan import capacity_plan
from heartbeat.sweep import run_sweep
from sprites import services
from sprites.models import UserSprite


def lock_path() -> str:
    """One lock per host and database: two projects on one host do not block each other."""
    db = settings.DATABASES["default"]
    tag = hashlib.sha256(f"{db.get('HOST', '')}:{db.get('PORT', '')}:{db.get('NAME', '')}".encode()).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"clawdirector-heartbeat-{tag}.lock")


class Command(BaseCommand):
    help = (
        "Run one heartbeat sweep. " + UserSprite.DUE_RULE + " In each due sprite it runs "
        "HEARTBEAT_COMMAND (one OpenClaw agent turn, at most HEARTBEAT_TIMEOUT_SECONDS), "
        "HEARTBEAT_CONCURRENCY at a time, then bills the wake, accrues storage for every live "
        "sprite by the whole hour and tops up the warm pool. Meant to run every "
        "HEARTBEAT_INTERVAL_MINUTES (django-crontab: HEARTBEAT_SCHEDULE). Prints a summary "
        "line; exits 1 if any sprite failed, 0 if another sweep already runs on this host. "
        "A whole sweep pings HEARTBEAT_PING_URL (or its fail URL) when one is set."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true",
                            help="List what would be woken; wake nothing, bill nothing.")
        parser.add_argument("--sprite", action="append", metavar="UUID_OR_NAME", default=[],
                            help="Only this sprite (its public id or sprite name); repeatable. "
                                 "Skips storage accrual and pool top-up.")
        parser.add_argument("--force", action="store_true",
                            help="With --sprite: wake it even if it had a heartbeat this window.")
        parser.add_argument("--concurrency", type=int, metavar="N",
                            help="Sprites woken at once (default HEARTBEAT_CONCURRENCY).")
        parser.add_argument("--budget", type=float, metavar="SECONDS",
                            help="The tick's time budget: start no wake after it (the ones in flight "
                                 "finish). For cron every minute: --budget 50. Default: until nothing is due.")
        parser.add_argument("--loop", action="store_true",
                            help=f"Run as a long-lived worker: a tick every {TICK_SECONDS}s, each with a "
                                 f"{TICK_BUDGET}s budget (or --budget), until stopped.")
        parser.add_argument("--plan", action="store_true",
                            help="Print the capacity plan (the largest fleet the running cap carries at "
                                 "the interval, from the measured occupancy of a wake) and exit.")
        parser.add_argument("--cap", type=int, metavar="N", help="With --plan: what if the running cap were N.")
        parser.add_argument("--interval", type=float, metavar="MINUTES",
                            help="With --plan: what if the interval were this long.")
        parser.add_argument("--turn", type=float, metavar="SECONDS",
                            help="With --plan: what if a turn took this long.")

    def handle(self, *args, **options):
        if options["plan"]:
            plan = capacity_plan(cap=options["cap"], interval_minutes=options["interval"],
                                 turn_seconds=options["turn"], read_org=services.read_org)
            for line in plan.lines():
                self.stdout.write(self.style.WARNING(line) if line.startswith("WARNING") else line)
            return
        if options["budget"] is not None and options["budget"] <= 0:
            raise CommandError("--budget must be positive.")
        if options["loop"]:
            if options["sprite"] or options["dry_run"]:
                raise CommandError("--loop runs the whole fleet's ticks; it takes no --sprite or --dry-run.")
            self._loop(options)
            return
        self._once(options)

    def _loop(self, options):
        """A tick every TICK_SECONDS, on the minute, until stopped; a failed tick does not stop it."""
        options = {**options, "budget": options["budget"] or TICK_BUDGET}
        while True:
            try:
                self._once(options)
            except SystemExit:
                pass  # some sprite failed: reported already
            except CommandError as exc:
                self.stderr.write(str(exc))
            time.sleep(TICK_SECONDS - time.time() % TICK_SECONDS)

    def _once(self, options):
        if options["concurrency"] is not None and options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1.")
        if options["force"] and not options["sprite"]:
            raise CommandError("--force needs --sprite: a forced sweep of the whole fleet would bill twice per window.")
        sprite_ids = self._resolve(options["sprite"]) if options["sprite"] else None
        # Only a whole scheduled sweep tells the dead man's switch anything.
        full = not options["dry_run"] and sprite_ids is None
        try:
            run = self._sweep(sprite_ids, options)
        except BaseException:
            if full:
                ping(ok=False)
            raise
        if run is None:  # another sweep runs on this host: it will ping
            return
        if full:
            ping(ok=not run.failed)

        summary = run.summary()
        if run.failed:
            self.stdout.write(self.style.ERROR(summary))
            if options["verbosity"] == 1:  # at 2 each failure was printed already
                self.stdout.write(run.error_summary)
            raise SystemExit(1)
        self.stdout.write(self.style.SUCCESS(summary))

    def _sweep(self, sprite_ids, options):
        """The sweep under the per-host lock; None if another one holds it."""
        lock = open(lock_path(), "a")  # noqa: SIM115 - held for the whole sweep
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.stdout.write("Another heartbeat sweep is already running on this host; nothing to do.")
                return None
            # django-crontab runs jobs as `manage.py crontab run <hash>`.
            trigger = "cron" if sys.argv[1:2] == ["crontab"] else "command"
            try:
                run = run_sweep(
                    trigger=trigger, dry_run=options["dry_run"], sprite_ids=sprite_ids,
                    force=options["force"], concurrency=options["concurrency"], budget=options["budget"],
                    stdout=self.stdout, verbosity=options["verbosity"],
                )
            except ImproperlyConfigured as exc:
                raise CommandError(f"Heartbeat misconfigured: {exc}") from exc
        finally:
            lock.close()  # releases the flock
        return run

    def _resolve(self, refs: list[str]) -> list[int]:
        ids = []
        for ref in refs:
            try:
                query = {"public_id": uuid.UUID(ref)}
            except ValueError:
                query = {"sprite_name": ref}
            pk = UserSprite.objects.filter(**query).values_list("pk", flat=True).first()
            if pk is None:
                raise CommandError(f"No sprite {ref!r} (give its public id or its sprite name).")
            ids.append(pk)
        return ids
