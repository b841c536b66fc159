"""Actions on selected sprites: each queues one task per sprite (the same service as the API,
run by the worker) and returns at once; the message links to the batch's progress page
(`console.tasks.task_batch`). On the immediate backend (tests) the work is done by then and the
message reports the outcome."""

import uuid

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from console.tasks import error_message
from heartbeat.tasks import run_heartbeat_now
from sprites.models import UserSprite
from sprites.services.tasks import run_sprite_action


class SpriteActions:
    def _queue(self, request, queryset, action: str, done_verb: str) -> None:
        batch = uuid.uuid4().hex[:16]
        results = [
            run_sprite_action.enqueue(action=action, sprite_pk=pk, actor_pk=request.user.pk, batch=batch)
            for pk in queryset.values_list("pk", flat=True)
        ]
        if not all(r.is_finished for r in results):
            self._queued(request, batch, f"{done_verb}: {len(results)} sprite{'s' if len(results) != 1 else ''} queued.")
            return
        done = sum(r.status == "SUCCESSFUL" for r in results)
        failures = [error_message(r.errors[0].traceback) for r in results if r.status == "FAILED"]
        if done:
            self.message_user(request, f"{done_verb} {done} sprite{'s' if done != 1 else ''}.", messages.SUCCESS)
        if failures:
            shown = "; ".join(failures[:3]) + (f"; and {len(failures) - 3} more" if len(failures) > 3 else "")
            self.message_user(request, f"{len(failures)} failed: {shown}", messages.ERROR)

    def _queued(self, request, batch: str, text: str) -> None:
        url = reverse("admin:sprites_usersprite_tasks", args=[batch])
        self.message_user(request, format_html('{} <a href="{}">Follow its progress</a>.', text, url), messages.INFO)

    @admin.action(description="Start selected sprites", permissions=["operate"])
    def start(self, request, queryset):
        self._queue(request, queryset, "start", "Started")

    @admin.action(description="Stop selected sprites", permissions=["operate"])
    def stop(self, request, queryset):
        self._queue(request, queryset, "stop", "Stopped")

    @admin.action(description="Refresh status from the Sprites API", permissions=["operate"])
    def refresh(self, request, queryset):
        self._queue(request, queryset, "refresh", "Refreshed")

    @admin.action(description="Rotate gateway token", permissions=["operate"])
    def rotate_token(self, request, queryset):
        self._queue(request, queryset, "rotate_token", "Rotated the gateway token of")

    @admin.action(description="Run a heartbeat now", permissions=["operate"])
    def heartbeat_now(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        batch = uuid.uuid4().hex[:16]
        result = run_heartbeat_now.enqueue(sprite_ids=ids, actor_pk=request.user.pk, batch=batch)
        what = f"Heartbeat for {len(ids)} sprite{'s' if len(ids) != 1 else ''}"
        if not result.is_finished:
            self._queued(request, batch, f"{what} queued.")
        elif result.status == "FAILED":
            self.message_user(request, f"Heartbeat not run: {error_message(result.errors[0].traceback)}", messages.ERROR)
        else:
            summary = result.return_value
            level = messages.WARNING if summary["failed"] else messages.SUCCESS
            self.message_user(request, f"{what}: woke {summary['woke']}, skipped {summary['skipped']}, "
                                       f"failed {summary['failed']}.", level)

    @admin.action(description="Destroy selected sprites…", permissions=["operate"])
    def destroy(self, request, queryset):
        queryset = queryset.exclude(status=UserSprite.Status.DESTROYED)
        if request.POST.get("post") == "yes":
            self._queue(request, queryset, "destroy", "Destroyed")
            return None
        return self._confirm(request, queryset, "Destroy sprites?", "destroy_confirmation.html")

    @admin.action(description="Restore the golden image (replaces the user's data)…", permissions=["operate"])
    def restore_golden(self, request, queryset):
        queryset = queryset.filter(status__in=UserSprite.IN_SERVICE).exclude(golden_checkpoint_id="")
        if request.POST.get("post") == "yes":
            self._queue(request, queryset, "restore_golden", "Restored the golden image of")
            return None
        return self._confirm(request, queryset, "Restore the golden image?", "restore_golden_confirmation.html")

    def _confirm(self, request, queryset, title: str, template: str):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "queryset": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, f"admin/sprites/usersprite/{template}", context)
