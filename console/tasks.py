"""The console's view of its queued work: one page per click of a bulk action (a batch), with
each task's state and outcome, refreshing itself until every task has finished."""

from django.http import Http404
from django.template.response import TemplateResponse
from django_tasks_db.models import DBTaskResult

from sprites.models import UserSprite

FINISHED = ("SUCCESSFUL", "FAILED")


def error_message(traceback: str) -> str:
    """The exception's own line of a task's traceback, without its class path."""
    last = (traceback or "").strip().splitlines()[-1:] or ["failed"]
    head, sep, message = last[0].partition(": ")
    return message if sep else head


def _outcome(row: DBTaskResult) -> str:
    if row.status == "FAILED":
        return error_message(row.traceback)
    value = row.return_value
    if isinstance(value, dict):  # a heartbeat
        return f"woke {value['woke']}, skipped {value['skipped']}, failed {value['failed']}"
    return "" if value is None else str(value)


def task_batch(model_admin):
    def view(request, batch: str):
        if not model_admin.has_view_permission(request):
            raise Http404
        rows = list(DBTaskResult.objects.filter(args_kwargs__kwargs__batch=batch).order_by("enqueued_at"))
        if not rows:
            raise Http404("No such batch.")
        names = dict(UserSprite.objects.filter(
            pk__in=[r.args_kwargs["kwargs"].get("sprite_pk") for r in rows]).values_list("pk", "sprite_name"))
        tasks = [{
            "what": kwargs.get("action") or "heartbeat",
            "sprite": names.get(kwargs.get("sprite_pk"), f"{len(kwargs.get('sprite_ids', []))} sprite(s)"),
            "status": row.status.lower(),
            "outcome": _outcome(row),
            "enqueued_at": row.enqueued_at,
            "finished_at": row.finished_at,
        } for row in rows for kwargs in [row.args_kwargs["kwargs"]]]
        counts = {s: sum(t["status"] == s for t in tasks) for s in ("ready", "running", "successful", "failed")}
        context = {
            **model_admin.admin_site.each_context(request),
            "title": "Queued work",
            "opts": model_admin.model._meta,
            "tasks": tasks,
            "counts": counts,
            "pending": counts["ready"] + counts["running"],
        }
        return TemplateResponse(request, "admin/sprites/usersprite/task_batch.html", context)

    return view
