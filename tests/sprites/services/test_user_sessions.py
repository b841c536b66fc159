"""User sessions billed from samples of the VM states (cause `user`), on the emulator over
real HTTP with its clock moved forward, and the estimation rules on their own."""

import socket
import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.db.models import Sum

from sprites import billing, services
from sprites.billing.sessions import Observation, running_intervals, uncaused_seconds
from sprites.client import get_client
from sprites.models import UsageRecord, UserSprite, VMSample
from sprites.services.sampling import bill_user_sessions
from sprites_emulator.testing import start_emulator
from tests.conftest import make_sprite

pytestmark = pytest.mark.django_db
UTC = dt_timezone.utc
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
IDLE = timedelta(seconds=30)


@pytest.fixture
def real_idle_emulator(settings):
    """The emulator with the real idle window (30 s) and `SPRITE_IDLE_SECONDS` to match."""
    settings.SPRITE_IDLE_SECONDS = 30
    with start_emulator(idle_seconds=30, cold_seconds=300, exec_seconds=0.01, setup_seconds=0) as handle:
        settings.SPRITES_API_URL = handle.url
        yield handle


def online_sprite(emulator, name="claw-alice"):
    emulator.create_sprite(name)
    get_client().put_service(name, "openclaw-gateway", cmd="openclaw", args=["gateway"], http_port=18789,
                             duration="0s")
    return make_sprite(name, status=UserSprite.Status.ONLINE, sprite_id=f"sprite-{name}")


def sample(emulator, advance: float = 0) -> datetime:
    """Move the emulator's clock, then read the states (one sample) at the same instant."""
    now = datetime.fromisoformat(emulator.advance_clock(advance)["now"].replace("Z", "+00:00"))
    with time_machine.travel(now, tick=False):
        services.sync_vm_states()
    return now


def open_url_session(emulator, name) -> socket.socket:
    """The user's browser opens a WebSocket to its gateway through the sprite URL."""
    host, port = emulator.url.removeprefix("http://").rsplit(":", 1)
    conn = socket.create_connection((host, int(port)))
    conn.sendall(f"GET /_sprite/{name}/ HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\n\r\n".encode())
    assert conn.recv(100).startswith(b"HTTP/1.1 101")
    return conn


def user_seconds(sprite) -> Decimal:
    return UsageRecord.objects.filter(sprite=sprite, cause="user").aggregate(s=Sum("seconds"))["s"] or Decimal("0")


def metered(emulator, name) -> float:
    return emulator.meter()["sprites"][name]["running_seconds"]


def close(conn, emulator, name):
    """The browser hangs up; wait (real time) until the emulator has noticed."""
    conn.close()
    for _ in range(200):
        if emulator.activities(name) == 0:
            return
        time.sleep(0.01)
    raise AssertionError("the emulator never noticed the hang-up")


def test_it_bills_a_ten_minute_session_through_the_sprite_url_as_user_within_one_percent(real_idle_emulator):
    emulator = real_idle_emulator
    sprite = online_sprite(emulator)
    sample(emulator, advance=400)  # the set-up's wake is long over: the first sample sees it cold
    before = metered(emulator, sprite.sprite_name)
    sample(emulator, advance=10)
    emulator.advance_clock(3.7)  # the session starts between two samples
    conn = open_url_session(emulator, sprite.sprite_name)
    for _ in range(60):  # 10 minutes, sampled every 10 s
        sample(emulator, advance=10)
    close(conn, emulator, sprite.sprite_name)
    for _ in range(6):  # the idle tail, then asleep
        sample(emulator, advance=10)

    truth = metered(emulator, sprite.sprite_name) - before
    assert truth == pytest.approx(630, abs=5)  # 10 minutes + the 30 s idle window (+ the real time the test takes)
    billed = float(user_seconds(sprite))
    assert abs(billed - truth) <= 0.01 * truth, (billed, truth)
    assert set(UsageRecord.objects.filter(sprite=sprite).values_list("cause", flat=True)) == {"user"}

    rows = UsageRecord.objects.count()
    sample(emulator)  # a re-read of the same states
    sample(emulator, advance=120)  # and later ones, asleep
    assert UsageRecord.objects.count() == rows
    sprite.refresh_from_db()  # the cached totals are the ledger's sums (summed here: SQLite's SUM is a float)
    assert sprite.total_runtime_seconds == sum(r.seconds for r in UsageRecord.objects.filter(sprite=sprite))


@pytest.mark.parametrize("phase", [0.5, 17, 33, 59.5])
def test_it_stays_within_half_a_sample_of_the_meter_when_sampling_every_minute(real_idle_emulator, phase):
    emulator = real_idle_emulator
    sprite = online_sprite(emulator)
    sample(emulator, advance=400)
    before = metered(emulator, sprite.sprite_name)
    emulator.advance_clock(phase)
    conn = open_url_session(emulator, sprite.sprite_name)
    sample(emulator, advance=60 - phase)  # samples every 60 s: at 0, 60, 120, ...
    for _ in range(10):
        sample(emulator, advance=60)
    close(conn, emulator, sprite.sprite_name)
    sample(emulator, advance=60)
    sample(emulator, advance=60)
    truth = metered(emulator, sprite.sprite_name) - before
    assert abs(float(user_seconds(sprite)) - truth) <= 30 + 0.5  # the stated bound: half a sample


def test_a_re_read_of_the_same_window_bills_nothing_more(real_idle_emulator):
    emulator = real_idle_emulator
    sprite = online_sprite(emulator)
    sample(emulator, advance=400)
    emulator.simulate_session(sprite.sprite_name, 300)
    now = datetime.fromisoformat(emulator.advance_clock(120)["now"].replace("Z", "+00:00"))
    infos = list(get_client().list_sprites(prefix="claw-"))
    previous = VMSample.objects.values("observed_at", "running", "warmed_at").get(sprite=sprite)
    assert bill_user_sessions(infos, now) > 0
    # A second sampler that read the same states from the same previous sample, after the
    # first one wrote: the window's key is taken.
    VMSample.objects.filter(sprite=sprite).update(**previous)
    assert bill_user_sessions(infos, now) == 0
    assert UsageRecord.objects.filter(cause="user").count() == 1


def test_it_leaves_a_sprite_whose_heartbeat_lease_is_held_for_the_next_sample(real_idle_emulator):
    emulator = real_idle_emulator
    sprite = online_sprite(emulator)
    sample(emulator, advance=400)
    emulator.simulate_session(sprite.sprite_name, 120)
    now = sample(emulator, advance=0)
    so_far = user_seconds(sprite)
    UserSprite.objects.filter(pk=sprite.pk).update(heartbeat_lease_until=now + timedelta(minutes=5))
    sample(emulator, advance=60)
    assert user_seconds(sprite) == so_far
    UserSprite.objects.filter(pk=sprite.pk).update(heartbeat_lease_until=None)
    sample(emulator, advance=180)
    assert float(user_seconds(sprite)) == pytest.approx(150, abs=1)


# --- the estimation on its own ----------------------------------------------------------------

def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_heartbeats_idle_tail_stays_the_heartbeats():
    heartbeat = [(at(10), at(42))]  # a 2 s turn + the 30 s tail, billed by the heartbeat
    intervals = running_intervals(Observation(at(0), False), Observation(at(60), False, warmed_at=at(42)),
                                  caused=heartbeat, idle=IDLE)
    assert intervals == [(at(10), at(42))]
    assert uncaused_seconds(intervals, heartbeat) == 0


def test_a_session_that_begins_in_a_heartbeats_tail_pays_only_beyond_it():
    heartbeat = [(at(10), at(42))]
    # Running at 60 with no warming since: the heartbeat woke it, the user kept it up.
    intervals = running_intervals(Observation(at(0), False), Observation(at(60), True), caused=heartbeat, idle=IDLE)
    assert intervals == [(at(10), at(60))]
    assert uncaused_seconds(intervals, heartbeat) == 17  # 60 - 42, less the 1 s clock tolerance


def test_an_unknown_start_is_the_middle_of_the_window_and_the_end_is_last_warming_at():
    assert running_intervals(Observation(at(0), False), Observation(at(60), True), caused=[], idle=IDLE) == [
        (at(30), at(60))]
    # Running, then warm at 95 (the session ended at 65): exact.
    assert running_intervals(Observation(at(60), True), Observation(at(120), False, warmed_at=at(95)),
                             caused=[], idle=IDLE) == [(at(60), at(95))]
    # A short visit inside one window: started in (0, 50 - 30], ended at 50.
    assert running_intervals(Observation(at(0), False), Observation(at(60), False, warmed_at=at(50)),
                             caused=[], idle=IDLE) == [(at(10), at(50))]
    # Asleep throughout (an old last_warming_at): nothing.
    assert running_intervals(Observation(at(0), False), Observation(at(60), False, warmed_at=at(-5)),
                             caused=[], idle=IDLE) == []


def test_the_user_row_has_its_own_key_per_sprite_and_window():
    row = billing.user_session(sprite_id=7, window_start=T0, started_at=at(30), ended_at=at(60), seconds=30)
    assert row.key == "active:7:user:2026-03-02T10:00:00+00:00"
    assert row.cause == "user" and row.kind == "active"
    assert row.cost_usd == Decimal("0.00150000")  # 30 s × $0.18/h


def test_the_sample_usage_command_samples_once_and_bills(real_idle_emulator, capsys):
    from django.core.management import call_command

    emulator = real_idle_emulator
    sprite = online_sprite(emulator)
    sample(emulator, advance=400)
    emulator.simulate_session(sprite.sprite_name, 90)
    now = datetime.fromisoformat(emulator.advance_clock(200)["now"].replace("Z", "+00:00"))
    with time_machine.travel(now, tick=False):
        call_command("sample_usage")
    assert "sampled 1 sprite(s)" in capsys.readouterr().out
    assert user_seconds(sprite) > 0


def test_the_sample_usage_command_fails_clearly_when_the_api_is_down(real_idle_emulator):
    from django.core.management import CommandError, call_command

    real_idle_emulator.set_faults(fault_rate=1.0)
    with pytest.raises(CommandError, match="Could not read the VM states"):
        call_command("sample_usage")
