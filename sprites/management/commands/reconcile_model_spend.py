"""`manage.py reconcile_model_spend`: each LiteLLM key's spend (`/key/info`) into the ledger as
adjustment rows (sprites.modelaccess.reconcile). Run it periodically (hourly is plenty), e.g.
beside the heartbeat in cron or a systemd timer; idempotent."""

from django.conf import settings
from django.core.management.base import BaseCommand

from sprites.modelaccess.reconcile import reconcile


class Command(BaseCommand):
    help = "Reconcile each LiteLLM key's spend (/key/info) with the ledger's llm rows (adjustment rows)."

    def handle(self, *args, **options):
        if settings.MODEL_ACCESS != "litellm":
            self.stdout.write("MODEL_ACCESS is not litellm: nothing to reconcile.")
            return
        booked = reconcile()
        total = sum((u.cost_usd for u in booked), start=0)
        self.stdout.write(f"{len(booked)} adjustment row(s), {total} USD in all.")
