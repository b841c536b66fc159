"""The notification webhook: one signed JSON POST (the domain's third HTTP speaker).

Signature: `X-ClawDirector-Signature: sha256=<hex>`, the HMAC-SHA256 with NOTIFY_WEBHOOK_SECRET of
`<X-ClawDirector-Timestamp>.<raw body>` (the timestamp in Unix seconds). A receiver recomputes it
over the bytes it got, compares in constant time, and refuses old timestamps (replays).
The URL may hold a secret of its own: it is never logged nor put in an error message.
"""

import hashlib
import hmac
import json
import time

import requests
from django.conf import settings

SIGNATURE_HEADER = "X-ClawDirector-Signature"
TIMESTAMP_HEADER = "X-ClawDirector-Timestamp"
EVENT_HEADER = "X-ClawDirector-Event"


class WebhookError(Exception):
    """The receiver did not take it (a transport error or a non-2xx answer): retried."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def post(payload: dict, *, event: str) -> int:
    """POST `payload` to NOTIFY_WEBHOOK_URL, signed; returns the status. Raises WebhookError."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "clawdirector-notify",
        EVENT_HEADER: event,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(settings.NOTIFY_WEBHOOK_SECRET, timestamp, body),
    }
    try:
        response = requests.post(settings.NOTIFY_WEBHOOK_URL, data=body, headers=headers, allow_redirects=False,
                                 timeout=settings.NOTIFY_WEBHOOK_TIMEOUT_SECONDS)
    except requests.RequestException as exc:
        raise WebhookError(f"not delivered ({type(exc).__name__})") from None
    if not 200 <= response.status_code < 300:
        raise WebhookError(f"the receiver answered {response.status_code}")
    return response.status_code
