"""Monotonic counts kept in the database, for `/metrics`.

A Prometheus counter in process memory is right for one long-lived process only. ClawDirector
runs as several gunicorn workers, on one host or many, plus a `heartbeat` process every
interval that exits when its sweep is done: their in-memory counters would be split across
workers, reset at every restart and lost with every sweep. So what must be counted (Sprites API
calls and errors, the heartbeat's wake durations and lateness) is added here, in a few batched
statements, and `/metrics` reads the totals at scrape time: the same figures whichever worker
or host answers the scrape.

A row is one series: a metric name and its labels (a JSON object, keys sorted). Histograms store
one row per bucket (not cumulative; the reader accumulates) plus `_sum` and `_count`.
"""

import json

from django.db import connection, models

Increments = dict[tuple[str, str], float]


def labels_key(**labels: str) -> str:
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))


def observe(increments: Increments, name: str, value: float, buckets: tuple[float, ...], **labels: str) -> None:
    """Add one observation of histogram `name` to `increments` (its bucket, `_sum`, `_count`)."""
    le = next((b for b in buckets if value <= b), float("inf"))
    for key, amount in (
        ((name + "_bucket", labels_key(**labels, le=_le(le))), 1),
        ((name + "_sum", labels_key(**labels)), value),
        ((name + "_count", labels_key(**labels)), 1),
    ):
        increments[key] = increments.get(key, 0) + amount


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


class CounterQuerySet(models.QuerySet):
    def add(self, increments: Increments) -> None:
        """Add each amount to its series in one statement (an upsert; PostgreSQL and SQLite).

        Rows are written in key order, so two transactions adding to the same series lock them
        in the same order and cannot deadlock each other."""
        rows = sorted((key, amount) for key, amount in increments.items() if amount)
        if not rows:
            return
        table = connection.ops.quote_name(Counter._meta.db_table)
        values = ", ".join(["(%s, %s, %s)"] * len(rows))
        params = [p for (name, labels), amount in rows for p in (name, labels, float(amount))]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (name, labels, value) VALUES {values} "
                f"ON CONFLICT (name, labels) DO UPDATE SET value = {table}.value + EXCLUDED.value",
                params,
            )

    def series(self, name: str) -> list[tuple[dict, float]]:
        return [(json.loads(labels), value) for labels, value in self.filter(name=name).values_list("labels", "value")]


class Counter(models.Model):
    name = models.CharField(max_length=100)
    labels = models.CharField(max_length=300, blank=True, default="{}")
    value = models.FloatField(default=0)

    objects = CounterQuerySet.as_manager()

    class Meta:
        db_table = "metric_counters"
        constraints = [models.UniqueConstraint(fields=["name", "labels"], name="metric_counter_series")]

    def __str__(self) -> str:
        return f"{self.name}{self.labels} = {self.value:g}"

    @staticmethod
    def parse_labels(labels: str) -> dict[str, str]:
        return json.loads(labels or "{}")
