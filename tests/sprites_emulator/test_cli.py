"""`python -m sprites_emulator` runs on its own: no Django, nothing of ClawDirector's."""

import json
import os
import select
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the directory holding sprites_emulator/
PRODUCT = ("django", "clawdirector", "sprites", "heartbeat", "console", "devtools")


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without Django's settings module or a Python path of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO") and k != "PYTHONPATH"}
    return {**env, **extra}


def read_line(stream, seconds: float = 30) -> str:
    ready, _, _ = select.select([stream], [], [], seconds)
    assert ready, "the emulator printed nothing"
    return stream.readline()


def test_python_dash_m_serves_with_django_and_the_product_unimportable(tmp_path):
    for name in PRODUCT:  # these shadow the real packages: importing one fails loudly
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('{name} must not be imported')\n")
    process = subprocess.Popen(
        [sys.executable, "-s", "-m", "sprites_emulator", "--port", "0", "--idle-seconds", "5"],
        cwd=tmp_path, env=clean_env(PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        banner = read_line(process.stdout)
        assert banner.startswith("Sprites emulator listening on http://127.0.0.1:"), (
            banner + process.stderr.read() if process.poll() is not None else banner)
        url = banner.split()[4]
        with urllib.request.urlopen(f"{url}/_emulator/state", timeout=5) as response:
            state = json.load(response)
        assert state["sprites"] == 0 and state["options"]["idle_seconds"] == 5
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == 0


def test_the_package_imports_nothing_of_django_or_the_product():
    script = """
import json, sys, urllib.request
from sprites_emulator.testing import start_emulator
import sprites_emulator.__main__
with start_emulator() as emulator:
    urllib.request.urlopen(emulator.url + "/_emulator/state", timeout=5).read()
print(json.dumps(sorted(sys.modules)))
"""
    result = subprocess.run([sys.executable, "-s", "-c", script], cwd=ROOT, env=clean_env(),
                            capture_output=True, text=True, timeout=30, check=True)
    modules = json.loads(result.stdout)
    assert "sprites_emulator.routes" in modules  # the whole package was loaded
    assert [m for m in modules if m.split(".")[0] in PRODUCT] == []


def test_spawn_emulator_runs_it_in_its_own_process_with_the_options_and_reads_its_meter():
    from sprites_emulator.testing import spawn_emulator

    with spawn_emulator(running_limit=3, idle_seconds=0.3, exec_seconds=0.05, token="t") as emu:
        emu.create_sprites(["p-1", "p-2"])
        request = urllib.request.Request(f"{emu.url}/v1/sprites", headers={"Authorization": "Bearer t"})
        with urllib.request.urlopen(request, timeout=5) as response:
            page = json.loads(response.read())
        assert sorted(s["name"] for s in page["sprites"]) == ["p-1", "p-2"]
        assert emu.cap()["running_limit"] == 3
        assert set(emu.meter()["sprites"]) == {"p-1", "p-2"}
        bad = urllib.request.Request(f"{emu.url}/_emulator/sprites", data=b'{"names": "p-3"}', method="POST")
        try:
            urllib.request.urlopen(bad, timeout=5)
            raise AssertionError("a bad body was accepted")
        except urllib.error.HTTPError as exc:
            assert exc.code == 400
        process = emu._process
    assert process.poll() is not None  # stopped on leaving the block
