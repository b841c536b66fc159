"""The heartbeat's settings, read and checked once per sweep."""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from sprites import openclaw

# A tick (cron every minute, the cron endpoint, `heartbeat --loop`) starts wakes for this long,
# then lets the ones in flight finish: inside a minute, so ticks do not pile up.
TICK_SECONDS = 60
TICK_BUDGET = 50


@dataclass(frozen=True)
class Config:
    command: str
    timeout: int
    exec_timeout: float
    concurrency: int
    interval: timedelta
    lease: timedelta


def load_config(*, concurrency: int | None = None) -> Config:
    """The heartbeat settings, checked. Raises ImproperlyConfigured with a plain message."""
    timeout = settings.HEARTBEAT_TIMEOUT_SECONDS
    interval = settings.HEARTBEAT_INTERVAL_MINUTES
    concurrency = settings.HEARTBEAT_CONCURRENCY if concurrency is None else concurrency
    if not isinstance(timeout, int) or timeout < 1:
        raise ImproperlyConfigured("HEARTBEAT_TIMEOUT_SECONDS must be a whole number of seconds ≥ 1.")
    if not isinstance(interval, int) or interval < 1:
        raise ImproperlyConfigured("HEARTBEAT_INTERVAL_MINUTES must be a whole number of minutes ≥ 1.")
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ImproperlyConfigured("The heartbeat concurrency must be a whole number ≥ 1.")
    try:
        command = openclaw.heartbeat_command(timeout=timeout)
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from exc
    # The command bounds itself (`timeout {timeout}`); the HTTP read waits a little longer so
    # the command's own exit code, not our socket, reports a timeout when it can.
    exec_timeout = timeout + min(30, max(1, timeout // 5))
    return Config(
        command=command,
        timeout=timeout,
        exec_timeout=exec_timeout,
        concurrency=concurrency,
        interval=timedelta(minutes=interval),
        # Outlives the turn and the write that records it; a sweep killed outright leaves
        # leases that expire well inside the next window.
        lease=timedelta(seconds=3 * exec_timeout + 60),
    )
