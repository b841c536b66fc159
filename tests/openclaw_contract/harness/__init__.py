"""Run the real OpenClaw package on loopback: the building blocks of the contract suite.

The package and a Node that satisfies its `engines.node` are installed outside the repo by
`scripts/openclaw_cache.sh`, which writes `<cache>/env` (NODE=..., OPENCLAW_MJS=..., ...);
`locate()` reads that file. Everything here listens on or connects to 127.0.0.1 only, and
every wait is bounded.

Plain functions, no pytest dependency (conftest.py wraps them as fixtures), one module a part,
all importable from the package (`from . import harness`, then `harness.run_cli(...)`):
  install.py       locate()                        the cached install, or None
  cli.py           new_home() / write_config()     a throwaway HOME with ~/.openclaw/openclaw.json in it
                   run_cli(args, home, env)        one CLI call -> CliResult(code, stdout, stderr, seconds)
  gateway.py       start_gateway(config, ...)      `openclaw gateway --port <p>` with the service environment
  probes.py        http_get(port, path)            (status, parsed JSON or text)
  model_server.py  fake_model_server()             an OpenAI-compatible model server (chat completions, SSE)
  ws.py            DeviceIdentity / ws_connect()   the gateway's WebSocket handshake, stdlib-only client
"""

from .cli import CliResult, base_env, config_path, loopback_config, new_home, remove_home, run_cli, write_config
from .gateway import Gateway, GatewayExited, service_env, start_gateway
from .install import DEFAULT_VERSION, SERVICE_PATH_TAIL, Install, cache_dir, locate, require_install
from .model_server import FakeModel, fake_model_server
from .probes import LOOPBACK, free_port, http_get
from .ws import DeviceIdentity, WebSocket, WsError, WsResult, ws_connect

__all__ = [
    "DEFAULT_VERSION", "LOOPBACK", "SERVICE_PATH_TAIL",
    "CliResult", "DeviceIdentity", "FakeModel", "Gateway", "GatewayExited", "Install", "WebSocket", "WsError",
    "WsResult",
    "base_env", "cache_dir", "config_path", "fake_model_server", "free_port", "http_get", "locate",
    "loopback_config", "new_home", "remove_home", "require_install", "run_cli", "service_env", "start_gateway",
    "write_config", "ws_connect",
]
