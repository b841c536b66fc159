"""The gateway: `start_gateway(config, ...)` launches `openclaw gateway --port <p>` with the
service environment (`service_env()`); Gateway waits for /startupz, stops it and keeps its
output; GatewayExited when it ends first."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from .cli import new_home, write_config
from .install import SERVICE_PATH_TAIL, Install, require_install
from .probes import LOOPBACK, free_port, http_get


class GatewayExited(RuntimeError):
    def __init__(self, code: int, output: str, seconds: float):
        super().__init__(f"gateway exited with code {code} after {seconds:.1f}s: {output[-2000:]}")
        self.code, self.output, self.seconds = code, output, seconds


class Gateway:
    """A running `openclaw gateway --port <port>`; stop() (or the context manager) ends it."""

    def __init__(self, *, install: Install, home: Path, port: int, argv: list[str], env: dict):
        self.install, self.home, self.port, self.argv, self.env = install, home, port, argv, env
        self.stdout_path = Path(home) / "gateway.stdout.log"
        self.stderr_path = Path(home) / "gateway.stderr.log"
        self.started = time.monotonic()
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv, env=env, cwd=str(home), stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def url(self) -> str:
        return f"ws://{LOOPBACK}:{self.port}"

    @property
    def exit_code(self) -> int | None:
        return self.proc.poll()

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def wait_startupz(self, timeout: float = 90, interval: float = 0.1) -> float:
        """Seconds from launch until GET /startupz answers 200. Raises GatewayExited if the
        process ends first (an invalid config exits 78 within a few seconds), TimeoutError
        if neither happens within `timeout`."""
        deadline = self.started + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                raise GatewayExited(code, self.output, time.monotonic() - self.started)
            status, _ = http_get(self.port, "/startupz", timeout=2)
            if status == 200:
                return time.monotonic() - self.started
            if time.monotonic() >= deadline:
                raise TimeoutError(f"/startupz not 200 within {timeout}s (last: {status})")
            time.sleep(interval)

    def wait_exit(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def service_env(token: str, home: Path, install: Install) -> dict:
    """The gateway service's environment as the project defines it, with the cached Node's
    bin dir standing in for /usr/local/bin on PATH."""
    return {
        "OPENCLAW_GATEWAY_TOKEN": token,
        "OPENCLAW_SUPERVISOR_MODE": "external",
        "HOME": str(home),
        "PATH": f"{install.node_bin_dir}:{SERVICE_PATH_TAIL}",
        "NODE_ENV": "production",
    }


def start_gateway(config: dict | str | bytes | None, *, env: dict | None = None, port: int | None = None,
                  home: Path | None = None, args: list[str] | None = None,
                  install: Install | None = None) -> Gateway:
    """Write `config` (unless None: keep home's) and launch `openclaw gateway --port <port>`.

    `env` REPLACES the environment (pass service_env(...) to mirror the service); by default
    it is service_env() with the config's gateway.auth.token. `args` replaces
    ["gateway", "--port", str(port)]. The caller must keep the config on loopback
    (gateway.bind "loopback"): nothing in this suite listens beyond 127.0.0.1."""
    install = install or require_install()
    home = Path(home) if home else new_home()
    port = port or free_port()
    if config is not None:
        write_config(home, config)
    if env is None:
        token = config.get("gateway", {}).get("auth", {}).get("token", "") if isinstance(config, dict) else ""
        env = service_env(token, home, install)
    argv = [str(install.node), str(install.openclaw_mjs), *(args or ["gateway", "--port", str(port)])]
    return Gateway(install=install, home=home, port=port, argv=argv, env=env)
