"""`manage.py sample_usage`: read every sprite's VM state once (the list API, 50 per call) and
bill the running time nothing ClawDirector caused as cause `user` (sprites.services.sampling).
Run it every minute (a systemd timer, cron, or `--loop`); the heartbeat's sweep samples too.
Idempotent: a re-read of the same states bills nothing more."""

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sprites import services
from sprites.client import SpritesError


class Command(BaseCommand):
    help = ("Sample every sprite's VM state once and bill user-session time (cause `user`); "
            "with --loop, every USAGE_SAMPLE_SECONDS until stopped.")

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="Sample every USAGE_SAMPLE_SECONDS until stopped.")

    def handle(self, *args, loop=False, **options):
        while True:
            started = time.monotonic()
            try:
                synced = services.sync_vm_states()
            except SpritesError as exc:
                if not loop:
                    raise CommandError(f"Could not read the VM states: {exc}") from exc
                self.stderr.write(f"Could not read the VM states: {exc}")
            else:
                if options["verbosity"] >= 1:
                    self.stdout.write(f"sampled {synced} sprite(s)")
            if not loop:
                return
            time.sleep(max(settings.USAGE_SAMPLE_SECONDS - (time.monotonic() - started), 1))
