"""Log lines an operator can ship and search: plain or JSON (`LOG_FORMAT`), each with its request
id and sprite id, and never a secret.

One configuration (`logging_config`) for Django (settings.LOGGING) and for gunicorn's own
error and access logs (gunicorn.conf.py), so every line a process writes has the same shape.
This module imports nothing of Django's and nothing of ours but `sprites.logcontext` (stdlib
only): gunicorn's master process loads it before any Django setting exists.

Redaction is a filter on every handler (`RedactFilter`): it rewrites the record itself, message,
arguments and traceback, before any formatter sees it, replacing the values of the configured
secrets and anything shaped like a credential (`Bearer …`, `Token …`, `password=…`, a URL's
`user:password@`). The JSON and plain formatters scrub their output once more.
"""

from __future__ import annotations

import logging
import os
import re

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from sprites import logcontext

REDACTED = "[redacted]"
# Settings (or, before Django is set up, environment variables) whose values never appear in a log.
SECRET_SETTINGS = (
    "SECRET_KEY", "SPRITES_API_TOKEN", "CRON_SECRET", "METRICS_TOKEN", "GATEWAY_TOKEN_ENCRYPTION_KEY",
    "HEARTBEAT_PING_URL", "HEARTBEAT_PING_FAIL_URL",
)
MIN_SECRET_CHARS = 6  # shorter values would redact ordinary words
SHAPES = (
    # Authorization headers: "Bearer <x>", "Token <x>" (DRF), "Basic <x>".
    (re.compile(r"(?i)\b(bearer|token|basic)(\s+)[A-Za-z0-9._~+/=\-]{6,}"), rf"\1\2{REDACTED}"),
    # key=value and "key": "value" pairs whose key names a secret.
    (re.compile(r"(?i)((?:password|passwd|secret|token|api_key|apikey|authorization)[\"']?\s*[=:]\s*[\"']?)"
                r"([^\s&\"',;}]+)"), rf"\1{REDACTED}"),
    # Credentials inside a URL: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^:/@\s]+:)([^@\s]+)@"), rf"\1{REDACTED}@"),
)


def _configured_secrets() -> list[str]:
    """The secret values in force: Django's settings once configured, else the environment."""
    values: list[str] = []
    try:
        from django.conf import settings

        configured = settings.configured
    except Exception:  # noqa: BLE001 - Django not importable or broken: fall back to the environment
        configured = False
    for name in SECRET_SETTINGS:
        value = ""
        if configured:
            try:
                value = getattr(settings, name, "") or ""
            except Exception:  # noqa: BLE001 - e.g. an empty SECRET_KEY raises on access
                value = ""
        value = value or os.environ.get(name, "")
        if isinstance(value, str) and len(value) >= MIN_SECRET_CHARS:
            values.append(value)
    if configured:
        try:
            password = settings.DATABASES["default"].get("PASSWORD") or ""
        except Exception:  # noqa: BLE001
            password = ""
        if len(password) >= MIN_SECRET_CHARS:
            values.append(password)
    return sorted(set(values), key=len, reverse=True)  # longest first: no partial leftovers


def redact(text: str) -> str:
    """`text` with every configured secret and every credential-shaped substring replaced."""
    if not text:
        return text
    for secret in _configured_secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in SHAPES:
        text = pattern.sub(replacement, text)
    return text


class RedactFilter(logging.Filter):
    """Rewrites each record so that no handler or formatter after it can print a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string: keep what we can, still redacted
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None  # formatters print exc_text, the redacted copy
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class ContextFilter(logging.Filter):
    """Adds `request_id` and `sprite_id` to every record (empty when there is none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in logcontext.current().items():
            if not getattr(record, key, ""):
                setattr(record, key, value)
        ids = [f"{key[:-3]}={getattr(record, key)}" for key in ("request_id", "sprite_id") if getattr(record, key)]
        record.context = f" [{' '.join(ids)}]" if ids else ""
        return True


# --- gunicorn's access log -------------------------------------------------------------------------

# Probes hit every few seconds; their answers are in the monitor that asked. Not an INFO line.
PROBE_PATHS = frozenset({"/healthz", "/healthz/", "/readyz", "/readyz/", "/metrics", "/metrics/"})


class AccessFieldsFilter(logging.Filter):
    """gunicorn access records carry their atoms as the format arguments: lift the useful ones
    into fields (for JSON), take the request id from our response header, and drop probes."""

    def filter(self, record: logging.LogRecord) -> bool:
        atoms = record.args if isinstance(record.args, dict) else None
        if atoms is None:
            return True
        path = atoms.get("U", "")
        if path in PROBE_PATHS:
            return False
        record.method = atoms.get("m", "")
        record.path = path
        record.status = atoms.get("s", "")
        record.duration_ms = atoms.get("M", "")
        record.remote_addr = atoms.get("h", "")
        request_id = atoms.get("{x-request-id}o", "-")
        record.request_id = "" if request_id == "-" else request_id
        return True


# Gunicorn's combined format, plus the time taken and our request id.
ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(f)s" "%(a)s" rid=%({x-request-id}o)s'


# --- Formatters -----------------------------------------------------------------------------------


class PlainFormatter(logging.Formatter):
    def __init__(self, *args, **kwargs):
        super().__init__("%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "context"):
            ContextFilter().filter(record)
        return redact(super().format(record))


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: time, level, logger, message, request_id, sprite_id, and any
    `extra` fields (the access log adds method, path, status, duration_ms, remote_addr)."""

    def __init__(self, *args, **kwargs):
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(sprite_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            # LogRecord's own attributes are not fields; `context` is the plain format's,
            # `request` is the HttpRequest Django attaches to its error records.
            reserved_attrs=[*RESERVED_ATTRS, "context", "request"],
        )

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            ContextFilter().filter(record)
        return redact(super().format(record))


def logging_config(*, level: str = "INFO", fmt: str = "plain", gunicorn: bool = False) -> dict:
    """The dictConfig for Django (`settings.LOGGING`) or, with `gunicorn`, for gunicorn's logs.

    Everything goes to the process's standard streams (systemd's journal, `docker logs`):
    never a file, so nothing needs rotating."""
    if fmt not in ("plain", "json"):
        raise ValueError(f"LOG_FORMAT must be 'plain' or 'json', not {fmt!r}")
    formatter = "ops.logs.JsonFormatter" if fmt == "json" else "ops.logs.PlainFormatter"
    config: dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": "ops.logs.ContextFilter"},
            "redact": {"()": "ops.logs.RedactFilter"},
            "access": {"()": "ops.logs.AccessFieldsFilter"},
        },
        "formatters": {"default": {"()": formatter}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "default", "filters": ["context", "redact"]},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"urllib3": {"level": "WARNING"}},
    }
    if gunicorn:
        config["handlers"]["access"] = {
            "class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stdout",
            # access first: it reads the atoms that redact then folds into the message
            "filters": ["access", "context", "redact"],
        }
        config["loggers"].update({
            "gunicorn.error": {"handlers": ["console"], "level": level, "propagate": False},
            "gunicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        })
    return config
