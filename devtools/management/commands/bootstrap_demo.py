"""Demo accounts for `make run` against the local emulator; refuses to touch a real API."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = (
        "Create (or reset) the demo staff account 'admin' and the demo user 'alice' with a DRF "
        "token, and fill the warm pool. Only runs when the app talks to the local emulator."
    )

    def handle(self, *args, **options):
        if not settings.SPRITES_USE_EMULATOR:
            raise CommandError("bootstrap_demo only runs against the local emulator (DEBUG on, no SPRITES_API_TOKEN).")
        User = get_user_model()
        password = secrets.token_urlsafe(9)
        admin, _ = User.objects.get_or_create(username="admin", defaults={"email": "admin@example.com"})
        admin.is_staff = admin.is_superuser = True
        admin.set_password(password)
        admin.save()
        alice, _ = User.objects.get_or_create(username="alice", defaults={"email": "alice@example.com"})
        alice_password = secrets.token_urlsafe(9)
        alice.set_password(alice_password)
        alice.save()
        token, _ = Token.objects.get_or_create(user=alice)

        from sprites.services import fill_pool

        queued = fill_pool()
        w = self.stdout.write
        w("")
        w("=" * 72)
        w(" EMULATOR MODE: no SPRITES_API_TOKEN is set, so ClawDirector talks to the local")
        w(f" Sprites emulator at {settings.SPRITES_API_URL} (nothing real is created or billed).")
        w("=" * 72)
        w(f" Admin:      sign in as  admin / {password}")
        w(f" Demo user:  alice / {alice_password}   API token: {token.key}")
        w(f" Warm pool:  {queued} set-up(s) queued for the task worker (target {settings.SPRITE_POOL_SIZE})")
        w("=" * 72)
