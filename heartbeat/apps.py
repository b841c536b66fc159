from django.apps import AppConfig


class HeartbeatConfig(AppConfig):
    name = "heartbeat"
    verbose_name = "Heartbeat"
