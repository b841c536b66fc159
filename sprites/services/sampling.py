"""Billing the user's own sessions from samples of the VM states (cause `user`).

Every read of the fleet's VM states (`sync_vm_states`: the heartbeat's sweep and tick, and
`manage.py sample_usage` every minute) is a sample. For each assigned sprite it is compared
with the previous one (`VMSample`), and the running time between them that no ledger row
ClawDirector wrote explains is billed as `user` (sprites.billing.sessions), keyed by sprite
and the window's start, so a re-read never bills twice.

Overlapping samplers (several hosts, a sweep and a tick) lock each sprite's sample row with
SKIP LOCKED: a sprite is billed by whoever holds its row, the others leave it alone, and the
winner's observation becomes the next window's start. A sprite whose heartbeat lease is
held (a turn may be running, its row not written yet) is left for the next sample, which
then covers both windows.
"""

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from sprites import billing
from sprites.billing.sessions import Observation, running_intervals, uncaused_seconds
from sprites.client import Sprite as SpriteInfo
from sprites.models import UsageRecord, UserSprite, VMSample

# A longer gap between samples (an outage of the sampler) is not guessed across: the window
# is dropped and billing resumes from the new observation (under-bills, never invents).
MAX_GAP = timedelta(hours=1)
CHUNK = 1000


def bill_user_sessions(infos: list[SpriteInfo], now: datetime | None = None) -> Decimal:
    """Bill the user time since the previous sample of every assigned sprite in `infos`
    (one list API pass); returns the USD billed."""
    now = now or timezone.now()
    by_name = {info.name: info for info in infos}
    names = list(by_name)
    billed = Decimal("0")
    for i in range(0, len(names), CHUNK):
        billed += _bill_chunk({n: by_name[n] for n in names[i:i + CHUNK]}, now)
    return billed


def _bill_chunk(infos: dict[str, SpriteInfo], now: datetime) -> Decimal:
    rows = (UserSprite.objects.assigned().exclude(status=UserSprite.Status.PROVISIONING)
            .filter(sprite_name__in=list(infos)).values_list("pk", "sprite_name", "heartbeat_lease_until"))
    observed = {pk: _observe(infos[name], now) for pk, name, lease in rows if lease is None or lease <= now}
    if not observed:
        return Decimal("0")
    with transaction.atomic():
        samples = VMSample.objects.filter(sprite_id__in=list(observed))
        if connection.features.has_select_for_update_skip_locked:
            samples = samples.select_for_update(skip_locked=True)
        previous = {s.sprite_id: s for s in samples}
        fresh = [pk for pk in observed if pk not in previous]
        usages = _usages(previous, observed, now)
        written = billing.record_usage(usages)
        # Every observation shares `now`: one UPDATE for the time, one more for the few whose state moved.
        VMSample.objects.filter(pk__in=[s.pk for s in previous.values()]).update(observed_at=now)
        moved = [s for pk, s in previous.items()
                 if (s.running, s.warmed_at) != (observed[pk].running, observed[pk].warmed_at)]
        for sample in moved:
            sample.running, sample.warmed_at = observed[sample.sprite_id].running, observed[sample.sprite_id].warmed_at
        VMSample.objects.bulk_update(moved, ["running", "warmed_at"], batch_size=CHUNK)
        VMSample.objects.bulk_create(
            [VMSample(sprite_id=pk, observed_at=now, running=observed[pk].running, warmed_at=observed[pk].warmed_at)
             for pk in fresh], ignore_conflicts=True)
    return sum((u.cost_usd for u in written), Decimal("0"))


def _observe(info: SpriteInfo, now: datetime) -> Observation:
    return Observation(at=now, running=info.status == UserSprite.VMState.RUNNING, warmed_at=info.last_warming_at)


def _usages(previous: dict[int, VMSample], observed: dict[int, Observation], now: datetime) -> list[billing.Usage]:
    windows = {pk: s for pk, s in previous.items() if now - MAX_GAP <= s.observed_at < now}
    if not windows:
        return []
    caused: dict[int, list] = {pk: [] for pk in windows}
    since = min(s.observed_at for s in windows.values())
    # A caused row that reaches into a window started at most MAX_GAP before it (a heartbeat
    # turn is bounded by HEARTBEAT_TIMEOUT_SECONDS): the (sprite, started_at) index bounds the scan.
    rows = (UsageRecord.objects.filter(sprite_id__in=list(windows), kind=UsageRecord.Kind.ACTIVE,
                                       started_at__gte=since - MAX_GAP, started_at__lte=now, ended_at__gt=since)
            .exclude(cause=UsageRecord.Cause.USER).values_list("sprite_id", "started_at", "ended_at"))
    for pk, started, ended in rows:
        caused[pk].append((started, ended))
    idle = timedelta(seconds=settings.SPRITE_IDLE_SECONDS)
    usages = []
    for pk, sample in windows.items():
        prev = Observation(at=sample.observed_at, running=sample.running, warmed_at=sample.warmed_at)
        intervals = running_intervals(prev, observed[pk], caused=caused[pk], idle=idle)
        seconds = uncaused_seconds(intervals, caused[pk])
        if seconds >= 0.001:
            usages.append(billing.user_session(
                sprite_id=pk, window_start=prev.at, started_at=intervals[0][0], ended_at=intervals[-1][1],
                seconds=seconds, detail={"window_end": now.isoformat()},
            ))
    return usages
