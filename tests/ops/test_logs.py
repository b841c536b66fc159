"""Log lines: one shape for every process (plain or JSON), each with its request id and sprite id,
and no secret in any of them, whoever logged it and however."""

import io
import json
import logging

import pytest
from django.test import override_settings

from ops.logs import ContextFilter, JsonFormatter, PlainFormatter, RedactFilter, logging_config, redact
from sprites import logcontext

SECRETS = {
    "SECRET_KEY": "test-secret-key-that-must-never-be-logged-0123456789",
    "SPRITES_API_TOKEN": "acme/1/2/sprites-token-value-0123456789",
    "CRON_SECRET": "cron-secret-value-that-must-never-be-logged",
    "METRICS_TOKEN": "metrics-token-value-0123456789abcdef",
    "GATEWAY_TOKEN_ENCRYPTION_KEY": "fernet-key-value-0123456789abcdefghijklmnop=",
    "HEARTBEAT_PING_URL": "https://hc-ping.com/6f1e0a4e-secret-uuid",
}


def capture(fmt: str):
    """A handler wired exactly as settings.LOGGING wires the console one."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactFilter())
    logger = logging.getLogger(f"tests.ops.capture.{fmt}")
    logger.handlers, logger.propagate, logger.level = [handler], False, logging.DEBUG
    return logger, stream


@pytest.fixture(autouse=True)
def _secrets(settings):
    for name, value in SECRETS.items():
        setattr(settings, name, value)


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_it_redacts_every_secret_however_it_is_logged(fmt):
    logger, stream = capture(fmt)
    logger.info("token in the message: %s", SECRETS["SPRITES_API_TOKEN"])
    logger.warning("in the format string itself: " + SECRETS["CRON_SECRET"])
    logger.error("a header: Authorization: Bearer %s", SECRETS["METRICS_TOKEN"])
    logger.info("DRF header: Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b")
    logger.info("a URL with credentials: postgres://app:db-password-123@db:5432/app")
    logger.info("a form: username=alice&password=hunter2-long")
    logger.info('a JSON body: {"gateway_token": "gw-token-abcdef0123456789"}')
    logger.info("the ping URL %s", SECRETS["HEARTBEAT_PING_URL"] + "/fail")
    try:
        raise RuntimeError(f"upstream said {SECRETS['SECRET_KEY']} and {SECRETS['GATEWAY_TOKEN_ENCRYPTION_KEY']}")
    except RuntimeError:
        logger.exception("a traceback")
    text = stream.getvalue()
    for value in [*SECRETS.values(), "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b", "db-password-123",
                  "hunter2-long", "gw-token-abcdef0123456789", "6f1e0a4e-secret-uuid"]:
        assert value not in text, value
    assert text.count("[redacted]") >= 10
    assert "RuntimeError" in text and "a traceback" in text  # what happened is still there


def test_it_redacts_what_the_root_logger_writes(settings):
    """The filter is on the configured handler: any library's line goes through it."""
    config = logging_config(level="INFO", fmt="json")
    assert config["handlers"]["console"]["filters"] == ["context", "redact"]
    assert settings.LOGGING["handlers"]["console"]["filters"] == ["context", "redact"]


def test_it_keeps_ordinary_text():
    assert redact("woke 3, skipped 1, failed 0, billed $0.0012 in 4.0s") == (
        "woke 3, skipped 1, failed 0, billed $0.0012 in 4.0s")


def test_it_writes_one_json_object_a_line_with_the_request_and_sprite_ids():
    logger, stream = capture("json")
    request_token = logcontext.request_id.set("req-0123456789")
    try:
        with logcontext.sprite_context("4f0c2d8e-4c1a-4f55-9d53-2e1f0b6f7a10"):
            logger.info("inside %s", "a sprite")
        logger.info("outside")
    finally:
        logcontext.request_id.reset(request_token)
    first, second = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert first["message"] == "inside a sprite" and first["level"] == "INFO"
    assert first["request_id"] == "req-0123456789"
    assert first["sprite_id"] == "4f0c2d8e-4c1a-4f55-9d53-2e1f0b6f7a10"
    assert second["request_id"] == "req-0123456789" and second["sprite_id"] == ""
    assert {"time", "logger"} <= set(first)


def test_it_puts_the_ids_in_plain_lines_too():
    logger, stream = capture("plain")
    token = logcontext.request_id.set("req-abcdef012345")
    try:
        logger.info("hello")
    finally:
        logcontext.request_id.reset(token)
    assert "[request=req-abcdef012345]: hello" in stream.getvalue()


def test_it_refuses_an_unknown_format():
    with pytest.raises(ValueError):
        logging_config(fmt="xml")


def test_it_gives_every_response_a_request_id(client, db):
    response = client.get("/api/nope")
    request_id = response["X-Request-ID"]
    assert len(request_id) == 32
    assert client.get("/api/nope")["X-Request-ID"] != request_id


def test_it_believes_a_request_id_only_from_a_trusted_proxy(client, db):
    with override_settings(TRUSTED_PROXY_COUNT=0):
        assert client.get("/api/nope", HTTP_X_REQUEST_ID="proxy-id-0123456789")["X-Request-ID"] != "proxy-id-0123456789"
    with override_settings(TRUSTED_PROXY_COUNT=1):
        assert client.get("/api/nope", HTTP_X_REQUEST_ID="proxy-id-0123456789")["X-Request-ID"] == "proxy-id-0123456789"
        # not an id: a new one, never the header's text in our logs
        assert client.get("/api/nope", HTTP_X_REQUEST_ID="bad id\nINFO forged")["X-Request-ID"] != "bad id\nINFO forged"


def test_it_names_the_request_and_the_sprite_on_the_lines_an_api_call_causes(alice, emulator):
    """A Sprites outage during `stop`: the client's retry warnings are written deep in the
    services, and still carry the request's id and the sprite's."""
    from rest_framework.test import APIClient

    from sprites import services

    services.fill_pool(target=1)
    sprite, _ = services.provision_sprite(user=alice)
    emulator.set_faults(fault_rate=1.0)
    client = APIClient()
    client.force_authenticate(alice)
    records = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = records.append
    handler.addFilter(ContextFilter())
    logging.getLogger("sprites").addHandler(handler)
    try:
        response = client.post(f"/api/sprites/{sprite.public_id}/stop")
    finally:
        logging.getLogger("sprites").removeHandler(handler)
    assert response.status_code == 503, response.content
    retries = [r for r in records if "retry" in r.getMessage()]
    assert retries
    assert {(r.request_id, r.sprite_id) for r in retries} == {(response["X-Request-ID"], str(sprite.public_id))}
