"""Two middlewares, first in settings.MIDDLEWARE.

`RequestContextMiddleware`: a request id for every request (a trusted proxy's `X-Request-ID`,
else a new one), bound to every log line of the request and returned as `X-Request-ID`; and,
when the request made Sprites API calls, their counts moved into the database for `/metrics`.

`ProbeMiddleware`: answers `/healthz`, `/readyz` and `/metrics` itself, before Django's host
validation (ALLOWED_HOSTS), CommonMiddleware and the HTTPS redirect: a load balancer, Docker's
health check or Prometheus addresses the app by IP or `localhost` over plain HTTP, and none of
them should get a 400 or a 301.
"""

from __future__ import annotations

import re
import uuid

from django.conf import settings
from django.http import HttpResponseNotAllowed

from ops import views
from sprites import logcontext
from sprites.services import metrics

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{8,128}$")
PROBES = {"/healthz": views.healthz, "/readyz": views.readyz, "/metrics": views.metrics}


class RequestContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = self._request_id(request)
        request.request_id = request_id
        tokens = (logcontext.request_id.set(request_id), logcontext.sprite_id.set(""))
        counting = metrics.count_calls_here()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            return response
        finally:
            if metrics.calls_made_here():  # one statement, only after requests that called Sprites
                metrics.persist_api_calls()
            metrics.stop_counting(counting)
            logcontext.sprite_id.reset(tokens[1])
            logcontext.request_id.reset(tokens[0])

    @staticmethod
    def _request_id(request) -> str:
        """A proxy's id (nginx `$request_id`, a load balancer's) ties our lines to its own; a
        client's is not believed (TRUSTED_PROXY_COUNT = 0), as for the client address."""
        given = request.META.get("HTTP_X_REQUEST_ID", "")
        if settings.TRUSTED_PROXY_COUNT > 0 and REQUEST_ID.match(given):
            return given
        return uuid.uuid4().hex


class ProbeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        view = PROBES.get(request.path_info.rstrip("/"))
        if view is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        response = view(request)
        if request.method == "HEAD":
            response.content = b""
        return response
