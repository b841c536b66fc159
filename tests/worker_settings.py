"""Settings of the `manage.py worker` processes tests start: the test settings with the real
database queue (the test process passes the test database's URL and the emulator's)."""

from tests.settings import *  # noqa: F401,F403

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "setup"]}}
