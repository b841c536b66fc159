"""What /metrics counts without a row of its own: Sprites API calls and errors, tallied by the
client in memory and added to database counters (sums across workers, hosts and processes)."""

import json

import pytest
import responses

from sprites.client import SpriteNotFound, SpritesClient, SpritesUnavailable
from sprites.client.tally import endpoint_of, tally
from sprites.models import Counter
from sprites.models.counters import labels_key, observe
from sprites.services import persist_api_calls

API = "https://api.sprites.test/v1"


@pytest.fixture
def client():
    tally.drain()
    return SpritesClient(base_url="https://api.sprites.test", token="t", max_retries=2, backoff=0.001)


def test_it_names_endpoints_without_their_names():
    assert endpoint_of("GET", "/sprites") == "GET /sprites"
    assert endpoint_of("POST", "/sprites/claw-abc/exec") == "POST /sprites/{name}/exec"
    assert endpoint_of("POST", "/sprites/claw-abc/services/openclaw-gateway/start") == \
        "POST /sprites/{name}/services/{id}/start"
    assert endpoint_of("POST", "/sprites/claw-abc/checkpoints/v3/restore") == "POST /sprites/{name}/checkpoints/{id}/restore"


@responses.activate
def test_it_tallies_every_attempt_and_each_error_by_kind(client):
    responses.get(f"{API}/sprites/claw-a", status=503, json={"error": "down"})
    responses.get(f"{API}/sprites/claw-b", status=404, json={"error": "not_found"})
    with pytest.raises(SpritesUnavailable):
        client.get_sprite("claw-a")  # 1 try + 2 retries
    with pytest.raises(SpriteNotFound):
        client.get_sprite("claw-b")  # a 4xx is not retried
    calls, errors = tally.drain()
    assert calls == {"GET /sprites/{name}": 4}
    assert errors == {("GET /sprites/{name}", "server_error"): 3, ("GET /sprites/{name}", "not_found"): 1}
    assert not tally


@responses.activate
def test_it_keeps_no_name_and_no_token_in_the_labels(client, db):
    responses.get(f"{API}/sprites/claw-secret-name", json={"name": "claw-secret-name"})
    client.get_sprite("claw-secret-name")
    persist_api_calls()
    stored = json.dumps(list(Counter.objects.values_list("name", "labels", "value")))
    assert "claw-secret-name" not in stored and '"t"' not in stored
    assert Counter.objects.get(name="sprites_api_calls").value == 1


def test_counters_add_up_across_processes(db):
    """Two workers (or a worker and the heartbeat) add to the same row: sums, not last writes."""
    Counter.objects.add({("x", "{}"): 2})
    Counter.objects.add({("x", "{}"): 3, ("y", labels_key(a="b")): 1})
    assert dict(Counter.objects.values_list("name", "value")) == {"x": 5, "y": 1}
    Counter.objects.add({})  # nothing to add: no statement


def test_a_histogram_observation_is_a_bucket_a_sum_and_a_count():
    increments = {}
    observe(increments, "h", 3.0, (1, 5, 10), outcome="ok")
    observe(increments, "h", 50.0, (1, 5, 10), outcome="ok")
    assert increments == {
        ("h_bucket", labels_key(outcome="ok", le="5.0")): 1,
        ("h_bucket", labels_key(outcome="ok", le="+Inf")): 1,
        ("h_sum", labels_key(outcome="ok")): 53.0,
        ("h_count", labels_key(outcome="ok")): 2,
    }


def test_persisting_never_raises_when_the_database_is_away(client):
    """No `db` fixture: the write is refused, the figures are a little low, the work goes on."""
    tally.call("GET /sprites")
    persist_api_calls()
    assert not tally
