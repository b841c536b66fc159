from django.apps import AppConfig


class ClawDirectorConfig(AppConfig):
    """The project itself, as an app only so its system checks register at start-up."""

    name = "clawdirector"
    verbose_name = "ClawDirector"

    def ready(self):
        from clawdirector import checks  # noqa: F401  (registers the system checks)
