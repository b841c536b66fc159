"""`GET /api/cron/heartbeat`: one sweep for an external scheduler, behind `CRON_SECRET`.

A plain Django view, not DRF: no session, no CSRF, no browsable API; the only credential is
`Authorization: Bearer <CRON_SECRET>`, compared in constant time. The secret is never logged
or echoed. The sweep runs in the request, so the answer is its JSON summary (see
docs/operations.md for the worker timeout a large fleet needs).
"""

import hmac
import logging

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from heartbeat.sweep import run_sweep

logger = logging.getLogger(__name__)


def _error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail}, status=status)


def _authorized(request, secret: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(token.strip().encode(), secret.encode())


@csrf_exempt
@never_cache
def cron_heartbeat(request):
    if request.method != "GET":
        response = _error(405, "method_not_allowed", "Use GET.")
        response["Allow"] = "GET"
        return response
    secret = getattr(settings, "CRON_SECRET", "") or ""
    if not secret:
        return _error(503, "cron_secret_unset", "CRON_SECRET is not configured on this server.")
    if not _authorized(request, secret):
        logger.warning("Cron heartbeat refused: missing or wrong bearer token")
        response = _error(401, "unauthorized", "Send 'Authorization: Bearer <CRON_SECRET>'.")
        response["WWW-Authenticate"] = 'Bearer realm="cron"'
        return response
    try:
        run = run_sweep(trigger="endpoint")
    except ImproperlyConfigured as exc:
        return _error(503, "misconfigured", str(exc))
    except Exception:  # noqa: BLE001 - the scheduler gets JSON, the log gets the traceback
        logger.exception("Cron heartbeat sweep failed")
        return _error(500, "sweep_failed", "The heartbeat sweep failed; see the server log.")
    return JsonResponse(run.as_dict())
