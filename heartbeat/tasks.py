"""The console's "Run a heartbeat now", as a task: the worker runs the sweep, not the request."""

from django_tasks import task

from .sweep import run_sweep


@task()
def run_heartbeat_now(sprite_ids: list[int], actor_pk: int | None = None, batch: str = "") -> dict:
    """One forced sweep of these sprites (trigger `staff`); its run record is the outcome's
    detail. `actor_pk` and `batch` are for the console's progress page."""
    run = run_sweep(trigger="staff", sprite_ids=sprite_ids, force=True)
    return {"run": run.pk, "woke": run.woke, "skipped": run.skipped, "failed": run.failed}
