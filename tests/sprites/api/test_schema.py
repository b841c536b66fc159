"""The OpenAPI schema validates, describes every response code, and its docs need no CDN."""

import pytest
import yaml
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from sprites import openclaw

ACTION_CODES = {"200", "400", "401", "403", "404", "409", "413", "429", "502", "503"}
EXPECTED = {
    ("/api/sprites/provision", "post"): {"200", "201", "202", "400", "401", "403", "413", "429", "502", "503"},
    ("/api/sprites", "get"): {"200", "401", "403"},
    ("/api/sprites/{id}", "get"): {"200", "401", "403", "404"},
    ("/api/sprites/{id}/status", "get"): {"200", "400", "401", "403", "404", "429", "502", "503"},
    ("/api/sprites/{id}/start", "post"): ACTION_CODES | {"402"},
    ("/api/sprites/{id}/stop", "post"): ACTION_CODES,
    ("/api/sprites/{id}/rotate-token", "post"): ACTION_CODES,
    ("/api/sprites/{id}/dashboard-link", "post"): ACTION_CODES,
    ("/api/sprites/{id}/devices", "get"): {"200", "401", "403", "404", "409", "429", "502", "503"},
    ("/api/sprites/{id}/devices/{request_id}/approve", "post"): ACTION_CODES,
    ("/api/sprites/{id}/budget", "get"): {"200", "401", "403", "404"},
    ("/api/sprites/{id}/budget", "put"): {"200", "400", "401", "403", "404"},
    ("/api/sprites/{id}/ledger", "get"): {"200", "400", "401", "403", "404", "429"},
}


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def test_it_generates_a_valid_openapi_3_schema(schema):
    validate_schema(schema)  # raises on an invalid document
    assert schema["openapi"].startswith("3.")


def test_it_generates_the_schema_without_a_single_warning(tmp_path):
    # --fail-on-warn turns every drf-spectacular warning (unresolvable type, missing
    # response, ...) into an error.
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert "/api/sprites/provision" in yaml.safe_load(out.read_text())["paths"]


@pytest.mark.parametrize("path, method", sorted(EXPECTED))
def test_it_describes_every_response_code(schema, path, method):
    operation = schema["paths"][path][method]
    assert set(operation["responses"]) == EXPECTED[(path, method)]
    assert operation.get("summary")


def test_it_types_the_sprite_id_as_a_uuid(schema):
    params = schema["paths"]["/api/sprites/{id}/status"]["get"]["parameters"]
    (sprite_id,) = [p for p in params if p["name"] == "id"]
    assert sprite_id["schema"]["format"] == "uuid"


def test_it_gives_the_pairing_request_id_its_pattern(schema):
    # Without it a schema-driven client (or fuzzer) sends ids the view can only refuse.
    params = schema["paths"]["/api/sprites/{id}/devices/{request_id}/approve"]["post"]["parameters"]
    (request_id,) = [p for p in params if p["name"] == "request_id"]
    assert request_id["schema"]["pattern"] == openclaw.SAFE_REQUEST_ID.pattern


def test_it_serves_the_docs_and_schema_without_a_cdn(client):
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "drf_spectacular_sidecar" in html
    for cdn in ("cdn.jsdelivr.net", "unpkg.com", "cdnjs"):
        assert cdn not in html
    assert client.get("/api/schema/").status_code == 200
