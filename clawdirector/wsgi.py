"""The WSGI application gunicorn serves (gunicorn.conf.py).

gunicorn runs no system checks, so this does: a production configuration that a management
command would refuse (a missing secret, SQLite with DEBUG off: clawdirector/checks.py) stops
the worker at boot with the check's message, and gunicorn exits, instead of serving it.
"""

import os

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clawdirector.settings")
application = get_wsgi_application()

from clawdirector.checks import startup_errors  # noqa: E402 - needs the apps loaded above

_errors = startup_errors()
if _errors:
    raise ImproperlyConfigured("System checks failed; refusing to serve:\n" + "\n".join(_errors))
