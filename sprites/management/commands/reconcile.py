"""Reconcile the provider's inventory with the database."""

from django.core.management.base import BaseCommand

from sprites.models import ReconcileRun
from sprites.services import persist_api_calls
from sprites.services.reconcile import reconcile


class Command(BaseCommand):
    help = (
        "List every sprite the API token sees whose name starts with SPRITE_NAME_PREFIX (all pages), "
        "diff against user_sprites and print each difference: orphans (no row: adopted into the pool "
        "when provably a finished pool sprite of ours, else destroyed once older than "
        "RECONCILE_ORPHAN_GRACE_SECONDS, their storage billed), zombies (row destroyed, sprite alive: "
        "destroyed), ghosts (live row, no sprite: marked error) and stuck set-ups (resumed, or failed "
        "after RECONCILE_MAX_RESUMES). A dry run unless --apply. Exits 1 when the Sprites API failed "
        "mid-way."
    )

    def add_arguments(self, parser):
        parser.add_argument("--apply", action="store_true", help="Act on the differences (default: list them).")
        parser.add_argument("--keep-orphans", action="store_true",
                            help="With --apply, list orphans and zombies but destroy none.")

    def handle(self, *args, apply=False, keep_orphans=False, verbosity=1, **options):
        try:
            run = reconcile(apply=apply, trigger=ReconcileRun.Trigger.COMMAND, destroy_orphans=not keep_orphans)
        finally:
            persist_api_calls()  # for /metrics: this process ends here
        for diff in run.differences:
            money = "".join([f", saves ${diff['saved_usd']}" if diff["saved_usd"] != "0" else "",
                             f", cost ${diff['cost_usd']}" if diff["cost_usd"] != "0" else ""])
            self.stdout.write(f"{diff['kind']}: {diff['sprite']}: {diff['action']}: {diff['detail']}{money}")
        self.stdout.write(f"Listed {run.provider_count} sprite(s) at the provider, {run.row_count} live row(s): "
                          f"{run.summary()}." + ("" if apply else " Run with --apply to act."))
        if run.error:
            self.stderr.write(run.error)
            raise SystemExit(1)
