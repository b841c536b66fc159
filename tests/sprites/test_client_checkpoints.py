"""The Sprites client's checkpoint calls against `responses` (sprites-api.md section 4)."""

import json

import pytest
import responses
from responses import matchers

from sprites.client import CheckpointDeleteUnsupported, SpritesUnavailable

from .conftest import API

CHECKPOINTS = [{"id": "Current", "create_time": "2026-11-24T10:00:00Z"},
               {"id": "v1", "create_time": "2026-11-24T09:30:00Z"}]


@responses.activate
def test_it_parses_the_checkpoint_id_from_the_stream_text(api):
    stream = "\n".join(
        json.dumps(e)
        for e in [
            {"type": "info", "data": "Creating checkpoint...", "time": "2026-11-24T10:00:00Z"},
            {"type": "info", "data": "  ID: v3", "time": "2026-11-24T10:00:00Z"},
            {"type": "complete", "data": "Checkpoint v3 created successfully", "time": "2026-11-24T10:00:01Z"},
        ]
    )
    responses.post(
        f"{API}/sprites/claw-abc/checkpoint",
        body=stream,
        content_type="application/x-ndjson",
        match=[matchers.json_params_matcher({"comment": "golden"})],
    )
    assert api.create_checkpoint("claw-abc", comment="golden") == "v3"


@responses.activate
def test_it_raises_when_the_checkpoint_stream_reports_an_error(api):
    responses.post(
        f"{API}/sprites/claw-abc/checkpoint",
        body=json.dumps({"type": "error", "error": "disk full", "time": "x"}) + "\n",
        content_type="application/x-ndjson",
    )
    with pytest.raises(SpritesUnavailable, match="disk full"):
        api.create_checkpoint("claw-abc")


@responses.activate
def test_it_lists_checkpoints_without_the_current_pseudo_entry(api):
    responses.get(
        f"{API}/sprites/claw-abc/checkpoints",
        json=[
            {"id": "Current", "create_time": "2026-11-24T10:00:00Z"},
            {"id": "v0", "create_time": "2026-11-24T09:00:00Z", "is_auto": False},
            {"id": "v1", "create_time": "2026-11-24T09:30:00Z", "comment": "golden"},
        ],
    )
    assert [c.id for c in api.list_checkpoints("claw-abc")] == ["v0", "v1"]


@responses.activate
def test_it_restores_a_checkpoint_and_retries_it(api, sleeps):
    responses.post(f"{API}/sprites/claw-abc/checkpoints/v1/restore", status=502, body="bad gateway")
    responses.post(
        f"{API}/sprites/claw-abc/checkpoints/v1/restore",
        body='{"type":"complete","data":"Restored v1"}\n',
        content_type="application/x-ndjson",
    )
    events = api.restore_checkpoint("claw-abc", "v1")
    assert events[-1].type == "complete"
    assert len(responses.calls) == 2


@responses.activate
@pytest.mark.parametrize("status", [200, 204])
def test_it_deletes_a_checkpoint(api, status):
    responses.delete(f"{API}/sprites/claw-abc/checkpoints/v1", status=status)
    api.delete_checkpoint("claw-abc", "v1")
    assert len(responses.calls) == 1


@responses.activate
def test_a_404_is_done_when_the_checkpoint_is_gone_from_the_list(api):
    responses.delete(f"{API}/sprites/claw-abc/checkpoints/v1", json={"error": "not found"}, status=404)
    responses.get(f"{API}/sprites/claw-abc/checkpoints", json=CHECKPOINTS[:1])
    api.delete_checkpoint("claw-abc", "v1")


@responses.activate
@pytest.mark.parametrize("status", [404, 405])
def test_an_api_without_the_delete_route_is_told_apart_from_a_deleted_checkpoint(api, status):
    """The route is unconfirmed: a 404 or 405 for the route while the checkpoint is still
    listed means the API kept it, and says so, instead of counting it as deleted."""
    responses.delete(f"{API}/sprites/claw-abc/checkpoints/v1", body="404 page not found", status=status)
    responses.get(f"{API}/sprites/claw-abc/checkpoints", json=CHECKPOINTS)
    with pytest.raises(CheckpointDeleteUnsupported, match="did not delete checkpoint v1"):
        api.delete_checkpoint("claw-abc", "v1")
