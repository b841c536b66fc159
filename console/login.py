"""The admin's sign-in, throttled per client address (THROTTLE_ADMIN_LOGIN, default 10/minute).

Django's admin has no limit on password guesses. This view stands in front of
`admin.site.login` (clawdirector/urls.py routes /admin/login/ here first) and counts each
POST with DRF's throttle machinery: the same client address rule as the API
(TRUSTED_PROXY_COUNT), the same shared cache, so the budget holds across workers and hosts.
"""

import math

from django.contrib import admin
from django.http import HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from rest_framework.throttling import SimpleRateThrottle


class AdminLoginThrottle(SimpleRateThrottle):
    scope = "admin_login"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


@csrf_protect
@never_cache
def login(request, extra_context=None):
    if request.method == "POST":
        throttle = AdminLoginThrottle()
        if not throttle.allow_request(request, None):
            wait = math.ceil(throttle.wait() or 60)
            response = HttpResponse(f"Too many sign-in attempts from your address. Try again in {wait} s.\n",
                                    status=429, content_type="text/plain; charset=utf-8")
            response["Retry-After"] = str(wait)
            return response
    return admin.site.login(request, extra_context)
