"""`GET` or `POST /api/cron/heartbeat`: one sweep for an external scheduler, behind `CRON_SECRET`.

A plain Django view, not DRF: no session, no CSRF, no browsable API; the only credential is
`Authorization: Bearer <CRON_SECRET>`, compared in constant time. The secret is never logged
or echoed. Both methods do the same (schedulers differ: Vercel Cron sends GET, many webhook
schedulers POST; a body is ignored). The sweep runs in the request as one tick: it starts wakes
for at most `TICK_BUDGET` seconds (the ones in flight then finish), so a scheduler calling it
every minute gets its JSON summary inside the minute and the next call picks up the rest. Like the command,
it pings HEARTBEAT_PING_URL (or the fail URL) after the sweep.
"""

import hmac
import logging

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from heartbeat.config import TICK_BUDGET
from heartbeat.ping import ping
from heartbeat.sweep import run_sweep
from sprites.api.errors import json_error

logger = logging.getLogger(__name__)


def _authorized(request, secret: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(token.strip().encode(), secret.encode())


@csrf_exempt
@never_cache
def cron_heartbeat(request):
    if request.method not in ("GET", "POST"):
        response = json_error("method_not_allowed", "Use GET or POST.", 405)
        response["Allow"] = "GET, POST"
        return response
    secret = settings.CRON_SECRET
    if not secret:
        return json_error("cron_secret_unset", "CRON_SECRET is not configured on this server.", 503)
    if not _authorized(request, secret):
        logger.warning("Cron heartbeat refused: missing or wrong bearer token")
        response = json_error("unauthorized", "Send 'Authorization: Bearer <CRON_SECRET>'.", 401)
        response["WWW-Authenticate"] = 'Bearer realm="cron"'
        return response
    try:
        run = run_sweep(trigger="endpoint", budget=TICK_BUDGET)
    except ImproperlyConfigured as exc:
        ping(ok=False)
        return json_error("misconfigured", str(exc), 503)
    except Exception:  # noqa: BLE001 - the scheduler gets JSON, the log gets the traceback
        logger.exception("Cron heartbeat sweep failed")
        ping(ok=False)
        return json_error("sweep_failed", "The heartbeat sweep failed; see the server log.", 500)
    ping(ok=not run.failed)
    return JsonResponse(run.as_dict())
