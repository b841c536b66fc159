"""What this process counted for `/metrics`, moved into the database (`sprites.models.counters`),
and the one check of the Sprites API that `/readyz` makes."""

import logging

from sprites.client import SpritesError, get_client
from sprites.client.tally import calls_in_context, error_kind, tally
from sprites.models import Counter
from sprites.models.counters import labels_key

logger = logging.getLogger(__name__)


def persist_api_calls() -> None:
    """Add the Sprites API calls and errors this process made since the last time to the
    database's counters. Called after each web request that made some, after each batch the
    sweep writes, and when a background set-up ends. Never raises: a count lost to a database
    error only makes the figure a little low."""
    if not tally:
        return
    calls, errors = tally.drain()
    increments = {("sprites_api_calls", labels_key(endpoint=endpoint)): n for endpoint, n in calls.items()}
    increments.update({
        ("sprites_api_errors", labels_key(endpoint=endpoint, kind=kind)): n for (endpoint, kind), n in errors.items()
    })
    try:
        Counter.objects.add(increments)
    except Exception as exc:  # noqa: BLE001 - metrics never break the work they count
        logger.warning("Could not record %d Sprites API call counts (%s)", sum(calls.values()), type(exc).__name__)


def count_calls_here():
    """Start counting the Sprites API calls of the current context (a request); returns the
    token `calls_made_here` and `stop_counting` take."""
    return calls_in_context.set(0)


def calls_made_here() -> int:
    return calls_in_context.get()


def stop_counting(token) -> None:
    calls_in_context.reset(token)


def sprites_api_problem(*, timeout: float = 3.0) -> str:
    """Empty when the Sprites API answers an authenticated call; else the kind of failure
    (`auth_failed`, `timeout`, `connection_error`, `server_error`, …): a word, safe to show
    anyone, never the upstream's message."""
    try:
        get_client().ping(timeout=timeout)
    except SpritesError as exc:
        return error_kind(exc)
    return ""


# The task worker (django-tasks) is a long-lived process with no web request to flush after:
# flush after each task it finishes. Connected only where django-tasks is installed.
def _after_task(**kwargs) -> None:
    persist_api_calls()


try:
    from django_tasks.signals import task_finished
except ImportError:  # pragma: no cover - a deployment without the task worker
    pass
else:
    task_finished.connect(_after_task, dispatch_uid="sprites.services.metrics.after_task")
