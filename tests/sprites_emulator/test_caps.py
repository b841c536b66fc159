"""The org's running cap: the list's org block, 429 concurrent_sprite_limit_exceeded on a wake
past it, and the meter of how the cap was used."""

import time

import pytest

from sprites_emulator.options import Options
from sprites_emulator.server import add_arguments, options_from
from sprites_emulator.testing import start_emulator

from .conftest import Api, run_in_thread


def _exec(api, name, *argv):
    return api("POST", f"/v1/sprites/{name}/exec", params=[("cmd", a) for a in argv or ("true",)])


def test_a_wake_past_the_running_cap_is_a_429_with_retry_after_and_nothing_runs():
    with start_emulator(running_limit=2, idle_seconds=0.4, exec_seconds=0.05) as emu:
        api = Api(emu.url)
        for name in ("aa", "bb", "cc"):
            api.create(name)
        assert _exec(api, "aa").status_code == 200
        assert _exec(api, "bb").status_code == 200
        refused = _exec(api, "cc")
        assert refused.status_code == 429
        body = refused.json()
        assert body["error"] == "concurrent_sprite_limit_exceeded"
        assert body["limit"] == 2 and body["current_count"] == 2
        assert 0 < body["retry_after_seconds"] <= 0.4
        assert float(refused.headers["Retry-After"]) == body["retry_after_seconds"]
        assert api.status("cc") == "cold"  # nothing ran
        assert emu.meter()["sprites"]["cc"]["wakes"] == 0
        # A running sprite holds its slot: waking it again is always admitted.
        assert _exec(api, "aa").status_code == 200
        # A service start and a request to the URL wake it too: refused alike.
        started = api("PUT", "/v1/sprites/cc/services/gw", json={"cmd": "openclaw", "args": ["gateway"]})
        assert started.status_code == 429
        assert api("GET", "/v1/sprites/cc/services").json() == []  # not even defined
        time.sleep(body["retry_after_seconds"] + 0.05)
        assert _exec(api, "cc").status_code == 200  # waiting freed a slot
        cap = emu.cap()
        assert cap["peak_running"] == 2 and cap["capacity_rejected"] == 2
        assert cap["cap_full_seconds"] > 0.3


def test_the_list_reports_the_caps_and_live_counts_on_every_page():
    with start_emulator(running_limit=3, warm_limit=5, idle_seconds=5) as emu:
        api = Api(emu.url)
        for i in range(4):
            api.create(f"s{i:02d}")
        _exec(api, "s00")
        page = api("GET", "/v1/sprites", params={"max_results": 2}).json()
        assert page["org"] == {"name": "emulator", "running": 1, "warm": 0, "cold": 3,
                               "running_limit": 3, "warm_limit": 5}
        assert page["running"] == 1
        second = api("GET", "/v1/sprites", params={"max_results": 2,
                                                    "continuation_token": page["next_continuation_token"]}).json()
        assert second["org"]["running_limit"] == 3


def test_the_cap_counts_execs_in_flight_and_frees_slots_as_tails_end():
    with start_emulator(running_limit=4, idle_seconds=0.1, exec_seconds=0.3) as emu:
        api = Api(emu.url)
        names = [f"n{i}" for i in range(8)]
        for name in names:
            api.create(name)
        threads = [run_in_thread(emu, n, "openclaw", "agent", "--json") for n in names[:4]]
        time.sleep(0.15)
        assert emu.running() == 4
        assert _exec(api, "n7").status_code == 429
        for thread in threads:
            thread.join()
        time.sleep(0.3)
        assert emu.running() == 0
        assert emu.cap()["peak_running"] == 4


def test_a_deleted_sprite_frees_its_slot():
    with start_emulator(running_limit=1, idle_seconds=5) as emu:
        api = Api(emu.url)
        api.create("aa")
        api.create("bb")
        _exec(api, "aa")
        assert _exec(api, "bb").status_code == 429
        assert api("DELETE", "/v1/sprites/aa").status_code == 204
        assert _exec(api, "bb").status_code == 200


def test_the_command_line_defaults_to_a_small_plan():
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    values = options_from(vars(parser.parse_args([])))
    assert values["running_limit"] == 10 and values["warm_limit"] == 10
    with pytest.raises(ValueError):
        Options.from_kwargs(running_limit=0)
