"""The dead man's switch: after every full sweep, tell an outside monitor it happened and how.

`HEARTBEAT_PING_URL` gets a GET when the sweep succeeded; `HEARTBEAT_PING_FAIL_URL` (default:
the ping URL + "/fail", as healthchecks.io reads it) when it failed, crashed or was
misconfigured. The monitor then alerts on a failure *and* on silence: a cron daemon that
stopped, a timer that was disabled, a host that is gone, all of which no log line can report.

The URLs are secrets (anyone holding one can silence the alert): never logged. A ping that
fails is logged and never fails the sweep.
"""

import logging
import urllib.request

from django.conf import settings

logger = logging.getLogger(__name__)
TIMEOUT_SECONDS = 10


def ping(*, ok: bool) -> bool:
    """GET the success or failure URL, if configured. True when the monitor answered 2xx."""
    url = settings.HEARTBEAT_PING_URL
    if not url:
        return False
    if not ok:
        url = settings.HEARTBEAT_PING_FAIL_URL or url.rstrip("/") + "/fail"
    request = urllib.request.Request(url, headers={"User-Agent": "clawdirector-heartbeat"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - operator's URL
            return 200 <= response.status < 300
    except Exception as exc:  # noqa: BLE001 - the monitor being down never fails a sweep
        logger.warning("Heartbeat %s ping failed: %s", "success" if ok else "failure", type(exc).__name__)
        return False
