"""The ASGI application, with the same start-up checks as clawdirector/wsgi.py."""

import os

from django.core.asgi import get_asgi_application
from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clawdirector.settings")
application = get_asgi_application()

from clawdirector.checks import startup_errors  # noqa: E402 - needs the apps loaded above

_errors = startup_errors()
if _errors:
    raise ImproperlyConfigured("System checks failed; refusing to serve:\n" + "\n".join(_errors))
