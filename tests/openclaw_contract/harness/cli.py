"""Throwaway HOMEs and the CLI: `new_home()` / `write_config()` make a HOME with
~/.openclaw/openclaw.json in it, `run_cli(args, home, env)` runs one `openclaw` call in it
-> CliResult(code, stdout, stderr, seconds); `loopback_config()` is a minimal valid config."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .install import SERVICE_PATH_TAIL, Install, require_install


def new_home(parent: str | os.PathLike | None = None) -> Path:
    """A fresh HOME with an empty ~/.openclaw (0700), as setup.sh leaves it in a sprite."""
    home = Path(tempfile.mkdtemp(prefix="openclaw-home-", dir=parent))
    (home / ".openclaw").mkdir(mode=0o700)
    return home


def config_path(home: Path) -> Path:
    return Path(home) / ".openclaw" / "openclaw.json"


def write_config(home: Path, config: dict | str | bytes) -> Path:
    """Write ~/.openclaw/openclaw.json (0600). A dict is dumped as JSON; text goes verbatim."""
    path = config_path(home)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = (json.dumps(config, indent=2) + "\n").encode() if isinstance(config, dict) else config
    if isinstance(data, str):
        data = data.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def base_env(home: Path, install: Install | None = None, extra: dict | None = None) -> dict:
    """A minimal environment like a Sprites exec's: HOME and PATH only (plus `extra`). The log
    directory goes under HOME: OpenClaw otherwise writes /tmp/openclaw/openclaw-<date>.log."""
    install = install or require_install()
    env = {
        "HOME": str(home),
        "PATH": f"{install.node_bin_dir}:{SERVICE_PATH_TAIL}",
        "TMPDIR": str(Path(home) / ".tmp"),
        "LANG": "C.UTF-8",
    }
    Path(env["TMPDIR"]).mkdir(exist_ok=True)
    env.update(extra or {})
    return env


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str
    seconds: float

    def json(self):
        return json.loads(self.stdout)


def run_cli(args: list[str], home: Path, env: dict | None = None, *, timeout: float = 120,
            install: Install | None = None, input: str | None = None) -> CliResult:
    """One `openclaw <args>` call with HOME=home; `env` is added to base_env()."""
    install = install or require_install()
    start = time.monotonic()
    proc = subprocess.run(
        [str(install.node), str(install.openclaw_mjs), *args],
        env=base_env(home, install, env), cwd=str(home), input=input, capture_output=True,
        text=True, timeout=timeout,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


def loopback_config(token: str, port: int, **gateway_extra) -> dict:
    """A minimal valid config shaped like the project's template, bound to loopback."""
    gateway = {
        "mode": "local", "bind": "loopback", "port": port,
        "auth": {"mode": "token", "token": token},
        "controlUi": {"allowedOrigins": ["https://sprite.example.test"]},
        "terminal": {"enabled": False},
    }
    gateway.update(gateway_extra)
    return {"gateway": gateway, "agents": {"defaults": {"heartbeat": {"every": "0m"}}}}


def remove_home(home: Path):
    shutil.rmtree(home, ignore_errors=True)
