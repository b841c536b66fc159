"""The operational endpoints, answered by `ops.middleware.ProbeMiddleware` before the host check
and the HTTPS redirect (probes and scrapers address the app by IP or localhost, over plain
HTTP inside the network): `/healthz`, `/readyz`, `/metrics`, each with or without a trailing
slash, GET or HEAD. None is logged at INFO (gunicorn's access log drops them too).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from ops import health
from ops.metrics import FleetCollector

logger = logging.getLogger(__name__)

NO_STORE = "no-store"


def healthz(request) -> HttpResponse:
    """Alive: the process answers. Touches nothing else (no database), so a database outage
    never gets a healthy app restarted."""
    response = JsonResponse({"status": "ok"})
    response["Cache-Control"] = NO_STORE
    return response


def readyz(request) -> HttpResponse:
    """Ready: 200 when every check in `ops.health` passes, else 503. One entry per check."""
    checks = health.readiness()
    ready = all(check.ok for check in checks)
    body = {"status": "ok" if ready else "fail",
            "checks": {check.name: {"ok": check.ok, "detail": check.detail} for check in checks}}
    logger.debug("readyz: %s", "; ".join(f"{c.name} {'ok' if c.ok else 'FAIL'} ({c.detail})" for c in checks))
    # One check a line: readable with plain curl, and still one JSON document.
    text = "{\n" + f' "status": {json.dumps(body["status"])},\n "checks": {{\n' + ",\n".join(
        f"  {json.dumps(name)}: {json.dumps(value)}" for name, value in body["checks"].items()) + "\n }\n}\n"
    response = HttpResponse(text, status=200 if ready else 503, content_type="application/json")
    response["Cache-Control"] = NO_STORE
    response._has_been_logged = True  # a failing probe every few seconds is not a WARNING line each
    return response


def client_address(request) -> str:
    """The client's address as the throttles see it (DRF's NUM_PROXIES rule): the socket's peer,
    or the entry TRUSTED_PROXY_COUNT hops from the right of X-Forwarded-For."""
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies <= 0 or not forwarded:
        return remote
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    return hops[-min(proxies, len(hops))] if hops else remote


def _allowed_address(request) -> bool:
    try:
        address = ipaddress.ip_address(client_address(request))
    except ValueError:
        return False
    for entry in settings.METRICS_ALLOWED_IPS:
        try:
            if address in ipaddress.ip_network(entry.strip(), strict=False):
                return True
        except ValueError:
            logger.warning("METRICS_ALLOWED_IPS: ignoring %r (not an address or network)", entry)
    return False


def _bearer_ok(request) -> bool:
    token = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def metrics(request) -> HttpResponse:
    """Prometheus text format. Allowed with `Authorization: Bearer $METRICS_TOKEN`, or from an
    address in METRICS_ALLOWED_IPS; 503 when neither is configured, 401 otherwise."""
    if not settings.METRICS_TOKEN and not settings.METRICS_ALLOWED_IPS:
        return _json_error("metrics_unconfigured", "Set METRICS_TOKEN or METRICS_ALLOWED_IPS to enable /metrics.", 503)
    if not (_bearer_ok(request) or (settings.METRICS_ALLOWED_IPS and _allowed_address(request))):
        response = _json_error("unauthorized", "Send 'Authorization: Bearer <METRICS_TOKEN>' or scrape from an "
                               "allowed address.", 401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector())
    # The Prometheus text format, or OpenMetrics when the scraper asks for it.
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = HttpResponse(encoder(registry), content_type=content_type)
    response["Cache-Control"] = NO_STORE
    return response


def _json_error(code: str, detail: str, status: int) -> JsonResponse:
    response = JsonResponse({"code": code, "detail": detail}, status=status)
    response["Cache-Control"] = NO_STORE
    return response
