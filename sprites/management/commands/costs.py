"""`manage.py costs [--what-if interval=30 idle=15 pool=5 ...]`: the fleet's projected month
from the schedule (sprites.selectors.fleet_projection), and beside it the same projection
under another interval, idle tail, turn length, pool size or rate card."""

from django.core.management.base import BaseCommand, CommandError

from sprites import selectors
from sprites.billing.schedule import KEYS, Schedule, WhatIfError, parse_pairs

ROWS = [
    ("Heartbeat interval (min)", lambda p: p["schedule"]["interval_minutes"]),
    ("Idle tail (s)", lambda p: p["schedule"]["idle_seconds"]),
    ("Turn (s)", lambda p: p["schedule"]["turn_seconds"] or "measured"),
    ("Active rate ($/h)", lambda p: p["schedule"]["active_usd_per_hour"]),
    ("Storage ($/GB-h × GB)", lambda p: f'{p["schedule"]["storage_usd_per_gb_hour"]} × {p["schedule"]["storage_gb"]}'),
    ("Wakes / month / sprite", lambda p: p["wakes_per_month"]),
    ("Billed s / wake", lambda p: p["billed_seconds_per_wake"]),
    ("Users", lambda p: p["users"]),
    ("Pool sprites", lambda p: p["pool"]),
    ("Heartbeat compute", lambda p: f'${p["heartbeat_usd"]}'),
    ("User sessions", lambda p: f'${p["user_usd"]}'),
    ("Storage", lambda p: f'${p["storage_usd"]}'),
    ("Projected / month", lambda p: f'${p["total_usd"]}'),
    ("Per user / month", lambda p: "-" if p["per_user_usd"] is None else f'${p["per_user_usd"]}'),
]


class Command(BaseCommand):
    help = ("Print the fleet's projected monthly cost from the heartbeat schedule, with its breakdown; "
            "--what-if KEY=VALUE ... shows it under another schedule beside today's "
            f"(keys: {', '.join(KEYS)}, card=guide|published).")

    def add_arguments(self, parser):
        parser.add_argument("--what-if", nargs="+", default=None, metavar="KEY=VALUE",
                            help="e.g. --what-if interval=30 idle=15 pool=5 turn=90 rate=0.735")

    def handle(self, *args, what_if=None, **options):
        today = Schedule.current()
        columns = [("today", selectors.fleet_projection(schedule=today))]
        if what_if:
            try:
                schedule = today.what_if(parse_pairs(what_if))
            except WhatIfError as exc:
                raise CommandError(str(exc)) from exc
            columns.append(("what if", selectors.fleet_projection(schedule=schedule)))
        width = max(len(label) for label, _ in ROWS)
        self.stdout.write(f"{'':{width}}  " + "  ".join(f"{name:>14}" for name, _ in columns))
        for label, value in ROWS:
            self.stdout.write(f"{label:{width}}  " + "  ".join(f"{value(p)!s:>14}" for _, p in columns))
