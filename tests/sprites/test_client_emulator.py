"""The same client against the real emulator process over HTTP: the whole lifecycle."""

import pytest

from sprites.client import (
    SpriteNotFound,
    SpritesClient,
    SpritesConflict,
    SpritesUnavailable,
)
from sprites_emulator.testing import start_emulator


@pytest.fixture
def emu():
    with start_emulator(idle_seconds=0.5, cold_seconds=1, exec_seconds=0.05, setup_seconds=0) as handle:
        yield handle


@pytest.fixture
def api(emu):
    return SpritesClient(base_url=emu.url, token="org/1/2/t", backoff=0.01, max_retries=3, read_timeout=10)


def test_it_runs_the_whole_lifecycle(api, emu):
    sprite = api.create_sprite("claw-e2e")
    assert sprite.status == "cold" and sprite.id.startswith("sprite-")
    assert api.get_sprite("claw-e2e").name == "claw-e2e"
    with pytest.raises(SpritesConflict):
        api.create_sprite("claw-e2e")

    result = api.exec("claw-e2e", ["bash", "-c", "echo hello; echo oops >&2; exit 3"])
    assert result.exit_code == 3
    assert b"hello" in result.stdout
    assert b"oops" in result.stderr
    assert api.get_sprite("claw-e2e").status == "running"

    api.put_service("claw-e2e", "gateway", cmd="/usr/local/bin/openclaw", args=["gateway"], http_port=8080,
                    env={"OPENCLAW_GATEWAY_TOKEN": "t0k"})
    api.start_service("claw-e2e", "gateway")
    assert api.get_service("claw-e2e", "gateway").status == "running"
    api.stop_service("claw-e2e", "gateway")
    assert api.get_service("claw-e2e", "gateway").status == "stopped"
    assert api.stop_service("claw-e2e", "gateway") == []  # already stopped: no error

    api.write_file("claw-e2e", "/home/sprite/.openclaw/openclaw.json", '{"v": 1}')
    checkpoint = api.create_checkpoint("claw-e2e", comment="golden")
    assert checkpoint in {c.id for c in api.list_checkpoints("claw-e2e")}
    api.write_file("claw-e2e", "/home/sprite/.openclaw/openclaw.json", '{"v": 2}')
    api.restore_checkpoint("claw-e2e", checkpoint)
    assert api.read_file("claw-e2e", "/home/sprite/.openclaw/openclaw.json") == b'{"v": 1}'

    api.set_network_policy("claw-e2e", [{"domain": "api.anthropic.com", "action": "allow"}])
    assert api.get_network_policy("claw-e2e") == [{"domain": "api.anthropic.com", "action": "allow"}]

    api.delete_sprite("claw-e2e")
    with pytest.raises(SpriteNotFound):
        api.get_sprite("claw-e2e")


def test_it_lists_every_page(api):
    for i in range(57):
        api.create_sprite(f"claw-page-{i:03d}")
    api.create_sprite("other-sprite")
    names = [s.name for s in api.list_sprites(prefix="claw-page-", page_size=10)]
    assert sorted(names) == [f"claw-page-{i:03d}" for i in range(57)]


def test_it_parses_the_heartbeat_turn(api, emu):
    api.create_sprite("claw-hb")
    emu.set_behavior("claw-hb", heartbeat_cost_usd=0.0042)
    result = api.exec("claw-hb", ["bash", "-c", "openclaw agent --agent main --message-file x --json"])
    assert result.ok
    import json

    assert json.loads(result.stdout)["result"]["meta"]["agentMeta"]["costUsd"] == pytest.approx(0.0042)


def test_it_retries_through_injected_5xx_and_429(caplog):
    # Seeded, so the fault sequence (and this test) is the same every run.
    with start_emulator(seed=7, fault_rate=0.25, rate_limit_rate=0.1, retry_after=0) as emu:
        api = SpritesClient(base_url=emu.url, token="t", backoff=0.001, max_retries=5)
        emu.set_faults(fault_rate=0, rate_limit_rate=0)
        api.create_sprite("claw-faults")  # a create is never retried: make it without faults
        emu.set_faults(fault_rate=0.25, rate_limit_rate=0.1, retry_after=0)
        for _ in range(30):  # idempotent GETs ride out the faults within the retry budget
            assert api.get_sprite("claw-faults").name == "claw-faults"
        retries = [r for r in caplog.records if "retry" in r.getMessage()]
        assert retries, "the fault rates above must have forced some retries"
        emu.set_faults(fault_rate=1.0, rate_limit_rate=0)
        with pytest.raises(SpritesUnavailable):
            api.get_sprite("claw-faults")


def test_it_reports_a_dropped_connection_as_unavailable(api, emu):
    emu.set_faults(drop_rate=1.0)
    with pytest.raises(SpritesUnavailable, match="unreachable"):
        api.get_sprite("anything")


def test_it_reports_an_exec_that_outlives_its_timeout(api):
    api.create_sprite("claw-slow")
    with pytest.raises(SpritesUnavailable) as excinfo:
        api.exec("claw-slow", ["sleep", "5"], timeout=0.5)
    assert excinfo.value.code == "timeout"


def test_it_reads_the_org_caps_and_tells_a_full_cap_from_a_rate_limit():
    from sprites.client import SpritesCapacityExceeded

    with start_emulator(running_limit=1, idle_seconds=5, exec_seconds=0.01) as emu:
        api = SpritesClient(base_url=emu.url, token="t", backoff=0.01, max_retries=3, read_timeout=10)
        api.create_sprite("aa")
        api.create_sprite("bb")
        assert api.org().running_limit == 1 and api.org().free == 1
        api.exec("aa", ["true"])
        org = api.org()
        assert (org.running, org.free, org.cold) == (1, 0, 1)
        list(api.list_sprites())
        assert api.last_org.running == 1
        with pytest.raises(SpritesCapacityExceeded) as refused:
            api.exec("bb", ["true"])
        assert refused.value.limit == 1 and refused.value.current_count == 1
        assert 0 < refused.value.retry_after <= 5
        assert refused.value.code == "concurrent_sprite_limit_exceeded"
