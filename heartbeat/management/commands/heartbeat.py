import fcntl
import hashlib
import os
import sys
import tempfile
import uuid

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from heartbeat.ping import ping
from heartbeat.sweep import run_sweep
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

    def handle(self, *args, **options):
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
                    force=options["force"], concurrency=options["concurrency"],
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
