from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The operator console in the Django admin: live status and cost of the fleet, actions,
    and the read-only history (ledger, lifecycle events, heartbeat runs and turns)."""

    name = "console"
    verbose_name = "Operator console"
