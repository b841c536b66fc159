"""Start-up checks: a production configuration without its secrets never starts quietly."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured


@register(Tags.security, deploy=False)
def check_production_secrets(app_configs=None, **kwargs):
    if settings.DEBUG:
        return []
    errors = []
    try:
        secret_key = settings.SECRET_KEY
    except ImproperlyConfigured:  # Django refuses to hand out an empty SECRET_KEY
        secret_key = ""
    if not secret_key or secret_key == settings.DEV_SECRET_KEY:
        errors.append(
            Error("SECRET_KEY is not set.", hint="Set SECRET_KEY (50+ random characters).", id="clawdirector.E001")
        )
    if not settings.ALLOWED_HOSTS:
        errors.append(
            Error(
                "ALLOWED_HOSTS is empty: every request would be refused with 400.",
                hint="Set ALLOWED_HOSTS to the host names this app answers to (comma-separated).",
                id="clawdirector.E004",
            )
        )
    if not settings.SPRITES_API_TOKEN:
        errors.append(
            Error(
                "SPRITES_API_TOKEN is not set.",
                hint="Create a token at sprites.dev (Access Tokens); the emulator is only used with DEBUG on.",
                id="clawdirector.E002",
            )
        )
    if not settings.CRON_SECRET:
        errors.append(
            Error(
                "CRON_SECRET is not set.",
                hint="Set it to a long random string; cron sends it as 'Authorization: Bearer …'.",
                id="clawdirector.E003",
            )
        )
    elif len(settings.CRON_SECRET) < 32:
        errors.append(
            Warning("CRON_SECRET is shorter than 32 characters.", id="clawdirector.W001")
        )
    return errors
