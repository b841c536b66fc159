"""Services on an assigned sprite: start, stop, refresh, rotate, destroy, device pairing,
dashboard links, events and billing. Sprites is mocked with `responses` at the HTTP edge, or
is the emulator over HTTP where the OpenClaw CLI's answers matter."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import responses
from django.db import IntegrityError
from django.utils import timezone

from sprites import openclaw, services
from sprites.client import SpriteNotFound, SpritesUnavailable
from sprites.models import LifecycleEvent, UsageRecord, UserSprite
from sprites.services.provisioning import DNS_LABEL

API = "https://api.sprites.test/v1"
SVC = f"{API}/sprites/claw-alice/services/openclaw-gateway"
NDJSON = {"content_type": "application/x-ndjson"}
STARTED = '{"type":"started","data":"openclaw gateway"}\n{"type":"complete","data":"done"}\n'


@pytest.fixture
def sprite(alice):
    return UserSprite.objects.create(
        user=alice, sprite_name="claw-alice", sprite_id="sprite-1", sprite_url="https://claw-alice-x1.sprites.app",
        gateway_url="https://claw-alice-x1.sprites.app", gateway_token="old-token", golden_checkpoint_id="v1",
        status=UserSprite.Status.SLEEPING, vm_state=UserSprite.VMState.COLD, assigned_at=timezone.now(),
    )


@pytest.fixture
def online(emulator, alice):
    """alice's sprite, provisioned from the pool through the emulator."""
    services.fill_pool(target=1)
    row, outcome = services.provision_sprite(user=alice)
    assert outcome == "ready"
    return row


# --- events and mapping -----------------------------------------------------------------------


def test_it_derives_who_acted(sprite, alice, staff):
    assert services.log_event(sprite=sprite, action="x").actor_kind == "system"
    assert services.log_event(sprite=sprite, action="x", actor=alice).actor_kind == "user"
    assert services.log_event(sprite=sprite, action="x", actor=staff).actor_kind == "staff"
    assert services.log_event(sprite=sprite, action="x", actor=None, actor_kind="cron").actor_kind == "cron"
    sprite.user = staff  # staff acting on their own sprite are a user like any other
    assert services.log_event(sprite=sprite, action="x", actor=staff).actor_kind == "user"


@pytest.mark.parametrize(
    "status, vm_state, expected",
    [
        ("online", "warm", "sleeping"),
        ("online", "cold", "sleeping"),
        ("sleeping", "running", "online"),
        ("online", "", "online"),
        ("stopped", "running", "stopped"),
        ("ready", "running", "ready"),
        ("provisioning", "running", "provisioning"),
        ("error", "running", "error"),
        ("destroyed", "cold", "destroyed"),
    ],
)
def test_it_maps_the_vm_state_onto_the_status(status, vm_state, expected):
    assert UserSprite.status_for_vm_state(status, vm_state) == expected


def test_it_renders_the_openclaw_config_with_the_token_and_no_wildcard_origin(settings):
    settings.OPENCLAW_ALLOWED_ORIGINS = ["https://app.example.com", "*"]
    settings.OPENCLAW_GATEWAY_PORT = 8080
    config = json.loads(openclaw.render_config(token="t0k", sprite_url="https://claw-a-x1.sprites.app"))
    gateway = config["gateway"]
    assert gateway["mode"] == "local" and gateway["bind"] == "lan" and gateway["port"] == 8080
    assert gateway["auth"] == {"mode": "token", "token": "t0k"}
    assert gateway["controlUi"]["allowedOrigins"] == ["https://app.example.com", "https://claw-a-x1.sprites.app"]
    assert gateway["terminal"]["enabled"] is False
    assert config["agents"]["defaults"]["heartbeat"]["every"] == "0m"


def test_it_defines_the_gateway_as_a_service_with_its_port_and_token(settings):
    spec = openclaw.gateway_service("secret-token")
    assert spec["cmd"].startswith("/")  # an env replaces PATH: absolute binary
    assert spec["http_port"] == settings.OPENCLAW_GATEWAY_PORT
    assert spec["env"]["OPENCLAW_GATEWAY_TOKEN"] == "secret-token"
    assert spec["env"]["OPENCLAW_SUPERVISOR_MODE"] == "external"


def test_it_makes_gateway_tokens_of_at_least_256_bits():
    tokens = {openclaw.new_gateway_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(len(t) >= 43 for t in tokens)  # 43 url-safe base64 chars = 256 bits


def test_it_makes_dns_safe_sprite_names_and_refuses_a_bad_prefix(settings):
    assert DNS_LABEL.match(services.new_sprite_name())
    settings.SPRITE_NAME_PREFIX = "Claw_"
    with pytest.raises(ValueError, match="SPRITE_NAME_PREFIX"):
        services.new_sprite_name()


# --- start / stop / refresh --------------------------------------------------------------------


@responses.activate
def test_it_starts_the_gateway_service_and_bills_the_start_with_the_idle_tail(sprite, alice, settings):
    settings.SPRITE_IDLE_SECONDS = 30
    call = responses.post(f"{SVC}/start", body=STARTED, **NDJSON)
    services.start_sprite(sprite=sprite, actor=alice)

    assert call.call_count == 1
    assert "duration=" in call.calls[0].request.url
    sprite.refresh_from_db()
    assert sprite.status == "online" and sprite.vm_state == "running"
    usage = UsageRecord.objects.get(sprite=sprite)
    assert usage.cause == "user_start" and usage.kind == "active"
    assert Decimal("30") <= usage.seconds < Decimal("31")
    assert usage.idempotency_key == f"active:{sprite.pk}:start:{usage.started_at.isoformat()}"
    assert sprite.total_cost_usd == usage.cost_usd > 0
    event = LifecycleEvent.objects.get(sprite=sprite)
    assert (event.action, event.outcome, event.actor_kind) == ("start", "ok", "user")


@responses.activate
def test_it_bills_a_staff_start_of_someone_elses_sprite_as_staff(sprite, staff):
    responses.post(f"{SVC}/start", body=STARTED, **NDJSON)
    services.start_sprite(sprite=sprite, actor=staff)
    assert UsageRecord.objects.get(sprite=sprite).cause == "staff"
    assert LifecycleEvent.objects.get(sprite=sprite).actor_kind == "staff"


@responses.activate
def test_it_records_the_error_when_a_start_fails(sprite, alice):
    call = responses.post(f"{SVC}/start", status=503, json={"error": "upstream down"})
    with pytest.raises(SpritesUnavailable):
        services.start_sprite(sprite=sprite, actor=alice)
    assert call.call_count == 3  # retried (start is idempotent), then given up
    sprite.refresh_from_db()
    assert sprite.status == "sleeping"  # unchanged
    assert "start:" in sprite.last_error and sprite.last_error_at
    event = LifecycleEvent.objects.get(sprite=sprite)
    assert (event.action, event.outcome) == ("start", "failed")


@responses.activate
def test_it_records_a_gateway_that_exits_on_start(sprite, alice):
    responses.post(f"{SVC}/start", **NDJSON, body='{"type":"exit","exit_code":78}\n{"type":"error","data":"exited 78"}\n')
    with pytest.raises(services.GatewayFailed):
        services.start_sprite(sprite=sprite, actor=alice)
    sprite.refresh_from_db()
    assert "exit code 78" in sprite.last_error


@responses.activate
def test_it_refuses_actions_on_a_sprite_that_is_not_live(sprite, alice):
    for status in ("provisioning", "ready", "error", "destroyed"):
        sprite.status = status
        for action in (services.start_sprite, services.stop_sprite, services.rotate_gateway_token):
            with pytest.raises(services.SpriteActionError) as caught:
                action(sprite=sprite, actor=alice)
            assert caught.value.code == "invalid_state"
    assert len(responses.calls) == 0


@responses.activate
def test_it_stops_the_service_and_stays_stopped_whatever_the_vm_does(sprite, alice):
    stop = responses.post(f"{SVC}/stop", body='{"type":"stopped"}\n', **NDJSON)
    responses.get(f"{API}/sprites/claw-alice", json={"name": "claw-alice", "status": "running"})
    services.stop_sprite(sprite=sprite, actor=alice)
    assert stop.call_count == 1
    services.refresh_status(sprite=sprite, actor=alice)
    sprite.refresh_from_db()
    assert sprite.status == "stopped" and sprite.vm_state == "running"
    assert [e.action for e in sprite.events.order_by("created_at")] == ["stop"]


@responses.activate
def test_it_treats_stopping_a_service_that_is_not_running_as_done(sprite, alice):
    responses.post(f"{SVC}/stop", status=409, json={"error": "service not running"})
    services.stop_sprite(sprite=sprite, actor=alice)
    assert UserSprite.objects.get(pk=sprite.pk).status == "stopped"


@responses.activate
@pytest.mark.parametrize("vm_state, status", [("running", "online"), ("warm", "sleeping"), ("cold", "sleeping")])
def test_it_refreshes_the_status_from_the_vm_state(sprite, vm_state, status):
    responses.get(f"{API}/sprites/claw-alice", json={"name": "claw-alice", "status": vm_state})
    services.refresh_status(sprite=sprite)
    sprite.refresh_from_db()
    assert (sprite.vm_state, sprite.status) == (vm_state, status)
    assert sprite.vm_state_checked_at is not None


@responses.activate
def test_it_records_a_sprite_that_vanished_on_refresh(sprite):
    responses.get(f"{API}/sprites/claw-alice", status=404, json={"error": "sprite not found"})
    with pytest.raises(SpriteNotFound):
        services.refresh_status(sprite=sprite)
    sprite.refresh_from_db()
    assert sprite.vm_state == "" and "Not found" in sprite.last_error


# --- rotate / destroy -------------------------------------------------------------------------


@responses.activate
def test_it_rotates_the_token_in_the_config_and_the_service_env(sprite, alice):
    write = responses.put(f"{API}/sprites/claw-alice/fs/write", json={})
    put = responses.put(SVC, body=STARTED, **NDJSON)
    services.rotate_gateway_token(sprite=sprite, actor=alice)

    sprite.refresh_from_db()
    new = sprite.gateway_token
    assert new != "old-token" and len(new) >= 43
    assert json.loads(write.calls[0].request.body)["gateway"]["auth"]["token"] == new
    assert "mode=0600" in write.calls[0].request.url
    assert json.loads(put.calls[0].request.body)["env"]["OPENCLAW_GATEWAY_TOKEN"] == new
    assert LifecycleEvent.objects.get(sprite=sprite).action == "rotate_token"


@responses.activate
def test_it_keeps_a_stopped_sprite_stopped_after_rotating(sprite, alice):
    sprite.status = "stopped"
    responses.put(f"{API}/sprites/claw-alice/fs/write", json={})
    responses.put(SVC, body=STARTED, **NDJSON)
    stop = responses.post(f"{SVC}/stop", body="", **NDJSON)
    services.rotate_gateway_token(sprite=sprite, actor=alice)
    assert stop.call_count == 1


@responses.activate
def test_it_keeps_the_old_token_when_rotation_fails(sprite, alice):
    responses.put(f"{API}/sprites/claw-alice/fs/write", json={})
    responses.put(SVC, status=500, json={"error": "boom"})
    with pytest.raises(SpritesUnavailable):
        services.rotate_gateway_token(sprite=sprite, actor=alice)
    sprite.refresh_from_db()
    assert sprite.gateway_token == "old-token"
    assert "rotate_token" in sprite.last_error


@responses.activate
def test_it_destroys_for_staff_only_and_keeps_the_row_and_its_ledger(sprite, alice, staff):
    delete = responses.delete(f"{API}/sprites/claw-alice", status=204)
    with pytest.raises(services.SpriteActionError):
        services.destroy_sprite(sprite=sprite, actor=alice)
    assert delete.call_count == 0

    responses.post(f"{SVC}/start", body=STARTED, **NDJSON)
    services.start_sprite(sprite=sprite, actor=alice)
    services.destroy_sprite(sprite=sprite, actor=staff)

    assert delete.call_count == 1
    sprite.refresh_from_db()
    assert sprite.status == "destroyed" and sprite.destroyed_at and sprite.gateway_token == ""
    assert sprite.usage.count() == 1 and sprite.total_cost_usd > 0  # a full save would have zeroed it
    # The user may have a new live sprite now; a second live one is still refused.
    UserSprite.objects.create(user=alice, sprite_name="claw-alice-2")
    with pytest.raises(IntegrityError):
        UserSprite.objects.create(user=alice, sprite_name="claw-alice-3")


@responses.activate
def test_it_treats_a_sprite_already_gone_as_destroyed(sprite, staff):
    responses.delete(f"{API}/sprites/claw-alice", status=404, json={"error": "sprite not found"})
    services.destroy_sprite(sprite=sprite, actor=staff)
    assert UserSprite.objects.get(pk=sprite.pk).status == "destroyed"


# --- device pairing and dashboard links (the emulator plays the OpenClaw CLI) ----------------------


def test_it_lists_and_approves_a_browser_pairing_request(online, emulator, alice):
    request = emulator.add_pairing_request(online.sprite_name, displayName="Firefox on Linux")
    pending = services.list_pairing_requests(sprite=online)
    assert [p["requestId"] for p in pending] == [request["requestId"]]
    assert pending[0]["displayName"] == "Firefox on Linux"
    assert "publicKey" not in pending[0]

    approved = services.approve_pairing_request(sprite=online, request_id=request["requestId"], actor=alice)
    assert approved["deviceId"] == request["deviceId"]
    assert request["deviceId"] in emulator.paired_device_ids(online.sprite_name)
    assert services.list_pairing_requests(sprite=online) == []
    assert online.events.filter(action="approve_device", outcome="ok").exists()


def test_it_says_so_when_the_pairing_request_is_unknown(online, alice):
    with pytest.raises(services.PairingRequestNotFound):
        services.approve_pairing_request(sprite=online, request_id="0b6b5a8e-1111-2222-3333-444455556666", actor=alice)


@pytest.mark.parametrize("bad", ["", "--latest", "a b", "x;rm -rf /", "$(id)", "a" * 200, "../etc", None])
@responses.activate
def test_it_refuses_an_unsafe_request_id_before_any_exec(sprite, alice, bad):
    sprite.status = "online"
    with pytest.raises(services.SpriteActionError) as caught:
        services.approve_pairing_request(sprite=sprite, request_id=bad, actor=alice)
    assert caught.value.code == "invalid_request_id"
    assert len(responses.calls) == 0


def test_it_gets_a_single_use_dashboard_link(online, alice):
    link = services.create_dashboard_link(sprite=online, actor=alice)
    # Re-homed from the gateway's loopback onto the sprite's URL; the single-use bootstrap
    # token rides in the fragment, never a query string, and the shared token never at all.
    assert link["url"].startswith(online.sprite_url + "/#bootstrapToken=")
    assert "gatewayUrl=ws%3A%2F%2F127.0.0.1" in link["url"] and "#token=" not in link["url"]
    assert link["expires_at"] > timezone.now() + timedelta(minutes=9)


@responses.activate
def test_it_passes_the_cli_argv_as_a_list_and_bills_only_the_exec(sprite, alice):
    sprite.status = "online"
    exec_call = responses.post(f"{API}/sprites/claw-alice/exec", body=b'\x01{"pending": [], "paired": []}\x03\x00')
    assert services.list_pairing_requests(sprite=sprite) == []
    url = exec_call.calls[0].request.url
    assert "cmd=%2Fusr%2Flocal%2Fbin%2Fopenclaw&cmd=devices&cmd=list&cmd=--json" in url
    usage = UsageRecord.objects.get(sprite=sprite)
    assert usage.seconds < 5  # no 30 s idle tail per poll


@responses.activate
def test_it_reports_unreadable_cli_output(sprite):
    sprite.status = "online"
    responses.post(f"{API}/sprites/claw-alice/exec", body=b"\x01not json\x03\x00")
    with pytest.raises(services.CommandFailed):
        services.list_pairing_requests(sprite=sprite)


# --- stuck rows ---------------------------------------------------------------------------------


def test_it_resumes_set_ups_stuck_in_provisioning(db, emulator):
    stuck = UserSprite.objects.create(sprite_name="claw-stuck", status="provisioning")
    fresh = UserSprite.objects.create(sprite_name="claw-fresh", status="provisioning")
    UserSprite.objects.filter(pk=stuck.pk).update(updated_at=timezone.now() - timedelta(hours=1))

    assert services.resume_stuck_provisioning(older_than_seconds=600) == 1
    stuck.refresh_from_db()
    fresh.refresh_from_db()
    assert stuck.status == "ready" and stuck.golden_checkpoint_id
    assert fresh.status == "provisioning"  # somebody is still working on it
    assert not emulator.exists("claw-fresh")
