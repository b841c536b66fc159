"""Heartbeat test helpers: exec answers at the HTTP edge."""

import json
import re
import time

import pytest
import responses as responses_lib

from tests.conftest import API

EXEC_URL = re.compile(rf"{re.escape(API)}/sprites/(?P<name>[^/]+)/exec.*")


def exec_body(stdout: bytes = b"", exit_code: int = 0) -> bytes:
    """The unchunked exec answer: one stdout frame, then the exit frame."""
    return (b"\x01" + stdout if stdout else b"") + bytes([3, exit_code])


def agent_json(cost=0.0042) -> bytes:
    return json.dumps({"status": "ok", "meta": {"durationMs": 1200, "agentMeta": {"costUsd": cost}}}).encode()


@pytest.fixture
def mocked():
    with responses_lib.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        # The VM-state sync that opens every full sweep: an empty fleet unless a test says otherwise.
        rsps.get(f"{API}/sprites", json={"sprites": [], "has_more": False, "next_continuation_token": None})
        yield rsps


def answer_exec(rsps, behaviours: dict | None = None, default=None, delay: float = 0.0):
    """Answer every exec (after `delay` seconds); `behaviours` maps a sprite name to a body
    or an exception. Returns the list of sprite names exec'd, in order."""
    behaviours = behaviours or {}
    calls = []

    def callback(request):
        name = EXEC_URL.match(request.url).group("name")
        calls.append(name)
        if delay:
            time.sleep(delay)
        outcome = behaviours.get(name, default if default is not None else exec_body(agent_json()))
        if isinstance(outcome, Exception):
            raise outcome
        return 200, {"Content-Type": "application/octet-stream"}, outcome

    rsps.add_callback(responses_lib.POST, EXEC_URL, callback=callback)
    return calls
