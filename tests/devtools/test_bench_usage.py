"""`bench_usage`: a short simulated day, the figures printed, and nothing left behind."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from heartbeat.models import HeartbeatRun
from sprites.models import UsageRecord, UserSprite, VMSample

pytestmark = pytest.mark.django_db


def test_it_plays_heartbeats_and_sessions_against_the_meter_and_deletes_what_it_made():
    out = StringIO()
    call_command("bench_usage", "--sprites", "6", "--hours", "1.6", "--sessions-per-day", "60",
                 "--yes-wipe", stdout=out)

    text = out.getvalue()
    assert "6 sprites, 1.6 h simulated" in text
    sessions = int(text.split(" user sessions")[0].rsplit(" ", 1)[1])
    assert sessions > 0
    causes = text.split("ledger by cause")[1].split("\n")[0]
    assert "heartbeat" in causes and "user" in causes
    fleet = float(text.split("fleet difference")[1].split("%")[0])
    assert abs(fleet) <= 5  # a short run: a few sessions, each within half a sample
    for label in ("ledger active", "emulator meter", "worst sprite"):
        assert label in text
    assert not UserSprite.objects.exists() and not UsageRecord.objects.exists() and not VMSample.objects.exists()
    assert not HeartbeatRun.objects.exists() and not get_user_model().objects.exists()


def test_it_refuses_a_database_holding_sprites_it_did_not_make():
    """Its sweeps would wake them too (a console benchmark's 10,000 sprites made it run for hours)."""
    from django.core.management.base import CommandError

    UserSprite.objects.create(sprite_name="someone-else", status="sleeping")
    with pytest.raises(CommandError, match=r"holds 1 sprite\(s\) this benchmark did not make"):
        call_command("bench_usage", "--sprites", "2", "--hours", "1.6", "--yes-wipe", stdout=StringIO())
