from django.apps import AppConfig


class OpsConfig(AppConfig):
    """What an operator's machines talk to: `/healthz`, `/readyz`, `/metrics`, the request id
    and log format of every line, and the shared cache table the throttles count in."""

    name = "ops"
    verbose_name = "Operations"
