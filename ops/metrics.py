"""`/metrics`: the fleet in Prometheus' text format, read from the database at scrape time.

Nothing is counted in this process's memory: every figure is a query (a handful per scrape,
whatever the fleet's size), so any worker on any host answers the same, and a restart resets
nothing. Counters that have no row of their own elsewhere (Sprites API calls and errors, the
wake histograms) are kept in `sprites.models.Counter` by the code that does the work.

Every metric is documented in docs/operations.md ("Metrics").
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from heartbeat.models import HeartbeatRun
from heartbeat.record import LATENESS_SECONDS_BUCKETS, WAKE_SECONDS_BUCKETS
from sprites import selectors
from sprites.models import Counter, UserSprite

PREFIX = "clawdirector_"


class FleetCollector(Collector):
    def collect(self):
        now = timezone.now()
        yield from self._sprites()
        yield from self._costs(now)
        yield from self._runs(now)
        counters = defaultdict(list)
        for name, labels, value in Counter.objects.values_list("name", "labels", "value"):
            counters[name].append((Counter.parse_labels(labels), value))
        yield from self._wakes(counters)
        yield from self._api(counters)

    # -- the fleet

    def _sprites(self):
        by_state = GaugeMetricFamily(
            PREFIX + "sprites", "Sprite rows by ClawDirector status and the VM state Sprites last reported "
            "(vm_state empty: never read). Pool sprites are status=ready.", labels=["status", "vm_state"])
        rows = UserSprite.objects.order_by().values("status", "vm_state").annotate(n=Count("pk"))
        for row in rows:
            by_state.add_metric([row["status"], row["vm_state"] or ""], row["n"])
        yield by_state
        ready = UserSprite.objects.filter(user__isnull=True, status=UserSprite.Status.READY).count()
        yield GaugeMetricFamily(PREFIX + "pool_ready", "Pool sprites ready to be claimed.", value=ready)
        yield GaugeMetricFamily(PREFIX + "pool_target", "SPRITE_POOL_SIZE: what the heartbeat tops the pool up to.",
                                value=settings.SPRITE_POOL_SIZE)

    def _costs(self, now):
        summary = selectors.fleet_summary(now=now)
        yield GaugeMetricFamily(
            PREFIX + "fleet_cost_month_usd", "Cost of every ledger row started this calendar month (UTC), USD.",
            value=float(summary["cost_month_usd"]))
        yield GaugeMetricFamily(
            PREFIX + "fleet_cost_projected_month_usd",
            "Sum of every live sprite's projected monthly cost (as the console's band), USD.",
            value=float(summary["projected_monthly_usd"]))
        yield CounterMetricFamily(
            PREFIX + "fleet_cost_usd", "Every ledger row ever (compute, storage, model spend), USD.",
            value=float(summary["cost_to_date_usd"]))

    # -- the heartbeat

    def _runs(self, now):
        interval = timedelta(minutes=settings.HEARTBEAT_INTERVAL_MINUTES)
        stale = now - 2 * interval  # an unfinished run this old was killed
        aborted = Q(error_summary__startswith="sweep aborted") | Q(finished_at__isnull=True, started_at__lt=stale)
        finished_ok = Q(finished_at__isnull=False) & ~Q(error_summary__startswith="sweep aborted")
        rows = (
            HeartbeatRun.objects.filter(dry_run=False).order_by().values("trigger")
            .annotate(
                ok=Count("pk", filter=finished_ok & Q(failed=0)),
                failed=Count("pk", filter=finished_ok & Q(failed__gt=0)),
                aborted=Count("pk", filter=aborted),
                running=Count("pk", filter=Q(finished_at__isnull=True, started_at__gte=stale)),
            )
        )
        runs = CounterMetricFamily(
            PREFIX + "heartbeat_runs", "Heartbeat sweeps by trigger and outcome: ok (every woken sprite completed), "
            "failed (at least one did not), aborted (the sweep crashed or was killed). Dry runs excluded.",
            labels=["trigger", "outcome"])
        running = 0
        for row in rows:
            for outcome in ("ok", "failed", "aborted"):
                runs.add_metric([row["trigger"], outcome], row[outcome])
            running += row["running"]
        yield runs
        yield GaugeMetricFamily(PREFIX + "heartbeat_runs_in_progress", "Sweeps started and not finished.",
                                value=running)
        last = (
            HeartbeatRun.objects.filter(dry_run=False).exclude(trigger=HeartbeatRun.Trigger.STAFF)
            .order_by("-started_at").values("started_at", "finished_at").first()
        )
        if last is not None:
            yield GaugeMetricFamily(
                PREFIX + "heartbeat_last_run_start_timestamp_seconds",
                "When the newest scheduled sweep started (Unix time). Alert on time() minus this.",
                value=last["started_at"].timestamp())
            if last["finished_at"] is not None:
                yield GaugeMetricFamily(
                    PREFIX + "heartbeat_last_run_duration_seconds", "How long the newest scheduled sweep took.",
                    value=(last["finished_at"] - last["started_at"]).total_seconds())
        yield GaugeMetricFamily(PREFIX + "heartbeat_interval_seconds", "HEARTBEAT_INTERVAL_MINUTES, in seconds.",
                                value=interval.total_seconds())

    def _wakes(self, counters):
        durations = _histogram(
            PREFIX + "heartbeat_wake_duration_seconds",
            "Wall time of each recorded heartbeat turn, by outcome (ok, failed, timeout).",
            counters, "heartbeat_wake_duration_seconds", WAKE_SECONDS_BUCKETS, ["outcome"])
        yield durations
        wakes = CounterMetricFamily(PREFIX + "heartbeat_wakes", "Recorded heartbeat turns by outcome "
                                    "(ok, failed, timeout).", labels=["outcome"])
        for labels, value in sorted(counters.get("heartbeat_wake_duration_seconds_count", []),
                                    key=lambda item: item[0].get("outcome", "")):
            wakes.add_metric([labels.get("outcome", "")], value)
        yield wakes
        yield _histogram(
            PREFIX + "heartbeat_wake_lateness_seconds",
            "How long after its window opened each scheduled heartbeat turn started (forced turns excluded).",
            counters, "heartbeat_wake_lateness_seconds", LATENESS_SECONDS_BUCKETS, [])

    # -- the Sprites API

    def _api(self, counters):
        calls = CounterMetricFamily(PREFIX + "sprites_api_calls", "HTTP calls to the Sprites API by endpoint "
                                    "(every attempt, retries included).", labels=["endpoint"])
        for labels, value in sorted(counters.get("sprites_api_calls", []), key=lambda item: item[0]["endpoint"]):
            calls.add_metric([labels["endpoint"]], value)
        yield calls
        errors = CounterMetricFamily(
            PREFIX + "sprites_api_errors", "Failed Sprites API calls by endpoint and kind (timeout, connection_error, "
            "server_error, rate_limited, concurrent_sprite_limit_exceeded: the running cap, "
            "sprite_creation_rate_limited, auth_failed, not_found, conflict, bad_request, exec_stream).",
            labels=["endpoint", "kind"])
        for labels, value in sorted(counters.get("sprites_api_errors", []),
                                    key=lambda item: (item[0]["endpoint"], item[0]["kind"])):
            errors.add_metric([labels["endpoint"], labels["kind"]], value)
        yield errors


def _histogram(name, documentation, counters, stored, bounds, label_names) -> HistogramMetricFamily:
    """A Prometheus histogram from the stored per-bucket rows (not cumulative) and `_sum`/`_count`."""
    family = HistogramMetricFamily(name, documentation, labels=label_names)
    per_series: dict[tuple, dict[str, float]] = defaultdict(dict)
    for labels, value in counters.get(stored + "_bucket", []):
        key = tuple(labels.get(n, "") for n in label_names)
        per_series[key][labels["le"]] = per_series[key].get(labels["le"], 0) + value
    sums = {tuple(labels.get(n, "") for n in label_names): value for labels, value in counters.get(stored + "_sum", [])}
    for key in sorted(per_series):
        running, buckets = 0.0, []
        for bound in [*bounds, float("inf")]:
            le = "+Inf" if bound == float("inf") else repr(float(bound))
            running += per_series[key].get(le, 0)
            buckets.append((le, running))
        family.add_metric(list(key), buckets, sums.get(key, 0.0))
    return family
