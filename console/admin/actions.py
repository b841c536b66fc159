"""Actions on selected sprites: each calls the same service as the API and reports a count."""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ImproperlyConfigured
from django.template.response import TemplateResponse

from heartbeat.sweep import run_sweep
from sprites import services
from sprites.client import SpritesError
from sprites.logcontext import sprite_context
from sprites.models import UserSprite


class SpriteActions:
    def _each(self, request, queryset, done_verb: str, call) -> None:
        done, failures = 0, []
        for sprite in queryset:
            try:
                with sprite_context(sprite.public_id):
                    call(sprite=sprite, actor=request.user)
                done += 1
            except (SpritesError, services.SpriteActionError) as exc:
                failures.append(f"{sprite.sprite_name}: {exc}")
        if done:
            self.message_user(request, f"{done_verb} {done} sprite{'s' if done != 1 else ''}.", messages.SUCCESS)
        if failures:
            shown = "; ".join(failures[:3]) + (f"; and {len(failures) - 3} more" if len(failures) > 3 else "")
            self.message_user(request, f"{len(failures)} failed: {shown}", messages.ERROR)

    @admin.action(description="Start selected sprites", permissions=["operate"])
    def start(self, request, queryset):
        self._each(request, queryset, "Started", services.start_sprite)

    @admin.action(description="Stop selected sprites", permissions=["operate"])
    def stop(self, request, queryset):
        self._each(request, queryset, "Stopped", services.stop_sprite)

    @admin.action(description="Refresh status from the Sprites API", permissions=["operate"])
    def refresh(self, request, queryset):
        self._each(request, queryset, "Refreshed", services.refresh_status)

    @admin.action(description="Rotate gateway token", permissions=["operate"])
    def rotate_token(self, request, queryset):
        self._each(request, queryset, "Rotated the gateway token of", services.rotate_gateway_token)

    @admin.action(description="Run a heartbeat now", permissions=["operate"])
    def heartbeat_now(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        try:
            run = run_sweep(trigger="staff", sprite_ids=ids, force=True)
        except ImproperlyConfigured as exc:
            self.message_user(request, f"Heartbeat not run: {exc}", messages.ERROR)
            return
        level = messages.WARNING if run.failed else messages.SUCCESS
        self.message_user(
            request,
            f"Heartbeat for {len(ids)} sprite{'s' if len(ids) != 1 else ''}: "
            f"woke {run.woke}, skipped {run.skipped}, failed {run.failed}.",
            level,
        )

    @admin.action(description="Destroy selected sprites…", permissions=["operate"])
    def destroy(self, request, queryset):
        queryset = queryset.exclude(status=UserSprite.Status.DESTROYED)
        if request.POST.get("post") == "yes":
            self._each(request, queryset, "Destroyed", services.destroy_sprite)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Destroy sprites?",
            "opts": self.opts,
            "queryset": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/sprites/usersprite/destroy_confirmation.html", context)
