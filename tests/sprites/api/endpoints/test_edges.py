"""The API's edges: a CORS preflight from an allowed origin, JSON 404s for unknown paths
under /api/, and a CSRF failure under /api/ answered in JSON."""

import json

import pytest
from rest_framework.test import APIClient


def test_it_answers_a_cors_preflight_from_an_allowed_origin(db, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    response = APIClient().options(
        "/api/sprites/provision", HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST", HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )
    assert response["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "authorization" in response["Access-Control-Allow-Headers"]
    other = APIClient().options("/api/sprites/provision", HTTP_ORIGIN="https://evil.example",
                                HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert "Access-Control-Allow-Origin" not in other


@pytest.mark.parametrize("method", ["get", "post", "put", "delete"])
@pytest.mark.parametrize("path", ["/api/nope", "/api/sprites//stop", "/api/cron/nope/deeper"])
def test_it_answers_unknown_api_paths_with_json_404(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Not found."}


def test_it_answers_a_csrf_failure_under_api_with_json(rf):
    from sprites.api.errors import csrf_failure

    response = csrf_failure(rf.post("/api/anything"), reason="CSRF cookie not set.")
    assert response.status_code == 403
    assert json.loads(response.content)["code"] == "csrf_failed"
    assert b"<html" in csrf_failure(rf.post("/admin/login/"), reason="x").content.lower()
