"""Top up the warm pool."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sprites.models import UserSprite
from sprites.services import fill_pool, persist_api_calls


class Command(BaseCommand):
    help = (
        "Top the warm pool up to SPRITE_POOL_SIZE (or --target) set-up, checkpointed sprites "
        "waiting for a user: queues set-ups stuck in 'provisioning' again, then reserves the "
        "missing rows and queues one set-up task each, and returns; `manage.py worker` runs them, "
        "SPRITE_SETUP_CONCURRENCY at once (each takes minutes against the real API). Safe to run "
        "while another fill runs. Exits 1 when a set-up it can already see failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--target", type=int, help="Pool size to reach (default SPRITE_POOL_SIZE).")

    def handle(self, *args, target=None, **options):
        if target is not None and target < 0:
            raise CommandError("--target must be 0 or more.")
        target = settings.SPRITE_POOL_SIZE if target is None else target
        before = set(UserSprite.objects.filter(user__isnull=True).values_list("pk", flat=True))
        try:
            queued = fill_pool(target=target)
        except ValueError as exc:  # a bad SPRITE_NAME_PREFIX: configuration, not a failure
            raise CommandError(str(exc)) from exc
        finally:
            persist_api_calls()  # for /metrics: this process ends here
        failed = UserSprite.objects.filter(user__isnull=True).exclude(pk__in=before).exclude(
            status=UserSprite.Status.READY
        )
        ready = UserSprite.objects.filter(user__isnull=True, status=UserSprite.Status.READY).count()
        for row in failed:
            self.stderr.write(f"{row.sprite_name}: {row.status}: {row.last_error}")
        self.stdout.write(f"Queued {queued} set-up(s); {ready} ready of target {target}.")
        if failed:
            raise SystemExit(1)
