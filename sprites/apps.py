from django.apps import AppConfig


class SpritesConfig(AppConfig):
    name = "sprites"
    verbose_name = "Sprites"

    def ready(self):
        from sprites import checks  # noqa: F401  (registers the system checks)
