"""`python manage.py sprites_emulator`: run the local Sprites API emulator in the foreground.

A development convenience over `python -m sprites_emulator` (same flags, plus `-v 2` for one
log line per request and a warning when binding a non-loopback address). The emulator itself
is a stdlib-only package outside the product and imports nothing from it."""

import ipaddress
import logging

from django.core.management.base import BaseCommand, CommandError

from sprites_emulator.server import add_arguments, describe, make_server, options_from, serve


class Command(BaseCommand):
    help = (
        "Run the local Sprites API emulator (docs/emulator.md): the /v1 REST API in memory, "
        "sprites that go running -> warm -> cold on their own, simulated exec (nothing runs on "
        "this host), injectable latency and faults, and an exact running-time meter at "
        "/_emulator/meter. Binds 127.0.0.1 unless --host says otherwise. Ctrl-C stops it; all "
        "state is lost."
    )
    # The emulator needs neither the database nor a production-ready configuration.
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        add_arguments(parser)

    def handle(self, *args, **options):
        host = options["host"]
        try:
            if not ipaddress.ip_address(host).is_loopback:
                self.stderr.write(self.style.WARNING(
                    f"Binding {host}: the control endpoints (/_emulator/*) need no token, so anyone "
                    "who can reach this port can reset or rig the emulator."))
        except ValueError:
            if host != "localhost":
                self.stderr.write(self.style.WARNING(f"Binding {host}, which may not be loopback."))
        if options["verbosity"] >= 2:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        try:
            server = make_server(host, options["port"], log_requests=options["verbosity"] >= 2,
                                 **options_from(options))
        except OSError as exc:
            raise CommandError(f"Cannot listen on {host}:{options['port']}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(describe(server))
        self.stdout.flush()
        serve(server)
