"""The console's part of a fleet that heals (issue 14): "reconcile now" and the last
reconciliation on the sprites page, wired in `UserSpriteAdmin.get_urls()`.

- `reconcile/` (POST): queues `reconcile_fleet` (every rule applied, as the staff member who
  clicked) and goes back to the changelist with a message; on the immediate backend (tests) the
  run is done by then and the message says what it found.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import reverse

from sprites.models import ReconcileRun
from sprites.services.tasks import reconcile_fleet

DIFFERENCES_SHOWN = 20


def last_reconciliation() -> dict:
    """The last run and its first differences, for the panel (one query)."""
    run = ReconcileRun.objects.select_related("actor").first()
    if run is None:
        return {"run": None}
    return {"run": run, "differences": run.differences[:DIFFERENCES_SHOWN],
            "more": max(len(run.differences) - DIFFERENCES_SHOWN, 0)}


def reconcile_now(model_admin):
    def view(request):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not model_admin.has_operate_permission(request):
            raise PermissionDenied
        result = reconcile_fleet.enqueue(apply=True, actor_pk=request.user.pk)
        if not result.is_finished:
            model_admin.message_user(request, "Reconciliation queued: the panel shows it when it is done.",
                                     messages.INFO)
        elif result.status == "FAILED":
            model_admin.message_user(request, "Reconciliation failed; see the worker's log.", messages.ERROR)
        else:
            summary = result.return_value
            level = messages.WARNING if summary["error"] else messages.SUCCESS
            model_admin.message_user(request, f"Reconciled: {summary['summary']}.", level)
        return HttpResponseRedirect(reverse("admin:sprites_usersprite_changelist"))

    return view
