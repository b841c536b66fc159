"""Print the OpenClaw pins from settings as shell words (`OPENCLAW_VERSION=… OPENCLAW_NODE_VERSION=…`),
so `make test-openclaw` installs exactly what production pins: one place for the versions."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clawdirector.settings")
os.environ.setdefault("DEBUG", "1")  # settings only: no secrets are needed to read the pins

from django.conf import settings  # noqa: E402

print(f"OPENCLAW_VERSION={settings.OPENCLAW_VERSION} OPENCLAW_NODE_VERSION={settings.OPENCLAW_NODE_VERSION}")
