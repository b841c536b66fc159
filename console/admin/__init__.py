"""The console's ModelAdmins; importing this package registers them with the admin site."""

from console.admin import healing, history, notifications, usersprite  # noqa: F401
