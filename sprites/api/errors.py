"""Every API error as `{"code", "detail"}` JSON, never an HTML page.

`exception_handler` is DRF's EXCEPTION_HANDLER (settings); `json_error`, `not_found` and
`csrf_failure` serve the plain Django views and paths outside DRF the same way.
"""

import logging
import math

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework import status as http
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from sprites import services
from sprites.client import SpritesCapacityExceeded, SpritesError, SpritesRateLimited, SpritesUnavailable

logger = logging.getLogger(__name__)

# Retry-After for an outage that gave no figure of its own (the client already retried).
OUTAGE_RETRY_AFTER_SECONDS = 15



# --- Errors -----------------------------------------------------------------------------------


def _error(code: str, detail: str, status: int, **extra) -> Response:
    return Response({"code": code, "detail": detail, **extra}, status=status)


# A refused sprite action's status by its code (anything else is a 409: not in this state).
ACTION_ERROR_STATUS = {
    "invalid_request_id": http.HTTP_400_BAD_REQUEST, "invalid_model_key": http.HTTP_400_BAD_REQUEST,
    "invalid_budget": http.HTTP_400_BAD_REQUEST, "permission_denied": http.HTTP_403_FORBIDDEN,
    "over_budget": http.HTTP_402_PAYMENT_REQUIRED,
}


def exception_handler(exc, context):
    """Every error as `{"code", "detail"}` JSON: ours (`_domain_error`), else DRF's reworded."""
    response = _domain_error(exc)
    if response is not None:
        return response
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__, exc_info=exc)
        return _error("server_error", "Something went wrong on our side.", http.HTTP_500_INTERNAL_SERVER_ERROR)
    if isinstance(exc, Http404):  # one message: never say which model or id was looked up
        response.data = {"code": "not_found", "detail": "Not found."}
        return response
    if isinstance(exc, DjangoPermissionDenied):
        code = "permission_denied"
    elif isinstance(exc, exceptions.ValidationError):
        response.data = {"code": "invalid", "detail": "Invalid input.", "errors": response.data}
        return response
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
        code = codes if isinstance(codes, str) else getattr(exc, "default_code", "error")
    detail = response.data.get("detail", "") if isinstance(response.data, dict) else str(response.data)
    if code == "permission_denied" and str(detail).startswith("CSRF Failed"):
        code = "csrf_failed"
    response.data = {"code": code, "detail": str(detail)}
    return response


def _domain_error(exc):
    """The answer to an error of ours (the Sprites API, a sprite action, Django's request
    limits), or None. A Sprites outage is a 503 with Retry-After; the provider's running cap
    being full is a 429 with Retry-After (wait, then try again)."""
    if isinstance(exc, SpritesCapacityExceeded):
        seconds = math.ceil(exc.retry_after or OUTAGE_RETRY_AFTER_SECONDS)
        response = _error(
            "running_cap_full", "Every running slot of the platform is busy right now; try again in "
            f"{seconds} seconds.", http.HTTP_429_TOO_MANY_REQUESTS, retry_after_seconds=seconds,
        )
        response["Retry-After"] = str(seconds)
        return response
    if isinstance(exc, SpritesUnavailable):
        retry_after = getattr(exc, "retry_after", None) if isinstance(exc, SpritesRateLimited) else None
        response = _error(
            "sprites_unavailable", "The Sprites API is unavailable right now; try again shortly.",
            http.HTTP_503_SERVICE_UNAVAILABLE,
        )
        response["Retry-After"] = str(math.ceil(retry_after or OUTAGE_RETRY_AFTER_SECONDS))
        return response
    if isinstance(exc, SpritesError):
        # Permanent upstream failure; the full message is on the sprite row for staff.
        return _error(exc.code if exc.code == "gateway_failed" else "sprites_error",
                      "The Sprites API refused the operation; staff have the details.", http.HTTP_502_BAD_GATEWAY)
    if isinstance(exc, services.PairingRequestNotFound):
        return _error(exc.code, str(exc), http.HTTP_404_NOT_FOUND)
    if isinstance(exc, services.CommandFailed):
        return _error(exc.code, "The command in the sprite failed; staff have the details.", http.HTTP_502_BAD_GATEWAY)
    if isinstance(exc, services.SpriteActionError):
        return _error(exc.code, str(exc), ACTION_ERROR_STATUS.get(exc.code, http.HTTP_409_CONFLICT))
    # Django's request limits (DATA_UPLOAD_MAX_*) raise these while DRF parses the query or
    # body; outside DRF Django answers 400 itself, here they would be a 500.
    if isinstance(exc, RequestDataTooBig):
        return _error("request_too_large", "The request body is too large.", http.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, SuspiciousOperation):
        return _error("parse_error", "Malformed request: too many fields or files.", http.HTTP_400_BAD_REQUEST)
    return None


def json_error(code: str, detail: str, status: int) -> JsonResponse:
    """The `{"code", "detail"}` error body, for the plain Django views outside DRF."""
    return JsonResponse({"code": code, "detail": detail}, status=status)


@csrf_exempt  # nothing to protect, and a POST must get this JSON, not the HTML CSRF page
def not_found(request, *args, **kwargs):
    """Any other path under /api/: JSON, never Django's HTML 404 page."""
    return json_error("not_found", "Not found.", 404)


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW: API clients get JSON; browsers elsewhere get Django's page."""
    if request.path.startswith("/api/"):
        return json_error("csrf_failed", "CSRF check failed: send the X-CSRFToken header, or use token auth.", 403)
    from django.views.csrf import csrf_failure as django_csrf_failure

    return django_csrf_failure(request, reason=reason)
