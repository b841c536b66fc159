"""Run the real OpenClaw package on loopback: the building blocks of the contract suite.

The package and a Node that satisfies its `engines.node` are installed outside the repo by
`scripts/openclaw_cache.sh`, which writes `<cache>/env` (NODE=..., OPENCLAW_MJS=..., ...);
`locate()` reads that file. Everything here listens on or connects to 127.0.0.1 only, and
every wait is bounded.

Plain functions, no pytest dependency (conftest.py wraps them as fixtures):
  locate()                        the cached install, or None
  new_home() / write_config()     a throwaway HOME with ~/.openclaw/openclaw.json in it
  run_cli(args, home, env)        one CLI call -> CliResult(code, stdout, stderr, seconds)
  start_gateway(config, ...)      `openclaw gateway --port <p>` with the service environment
  http_get(port, path)            (status, parsed JSON or text)
  fake_model_server()             an OpenAI-compatible model server (chat completions, SSE)
  DeviceIdentity / ws_connect()   the gateway's WebSocket handshake, stdlib-only client
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import os
import shlex
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_VERSION = "2026.9.6"
LOOPBACK = "127.0.0.1"
# The service definition's PATH, with the cached Node's bin dir standing in for /usr/local/bin.
SERVICE_PATH_TAIL = "/usr/bin:/bin"


# --- the cached install ----------------------------------------------------------------------


@dataclass(frozen=True)
class Install:
    cache_dir: Path
    version: str
    engines_node: str
    node: Path
    node_bin_dir: Path
    openclaw_mjs: Path
    openclaw_bin: Path  # a wrapper script: exec $NODE $OPENCLAW_MJS "$@"


def cache_dir(version: str | None = None) -> Path:
    version = version or os.environ.get("OPENCLAW_VERSION") or DEFAULT_VERSION
    if os.environ.get("OPENCLAW_CACHE_DIR"):
        return Path(os.environ["OPENCLAW_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "clawdirector" / f"openclaw-{version}"


def locate(version: str | None = None) -> Install | None:
    """The install scripts/openclaw_cache.sh finished (it writes `env` last), or None."""
    directory = cache_dir(version)
    env_file = directory / "env"
    if not (directory / ".complete").exists() or not env_file.exists():
        return None
    values = {}
    for line in env_file.read_text().splitlines():
        key, sep, raw = line.partition("=")
        if sep:
            values[key] = shlex.split(raw)[0] if raw else ""
    try:
        install = Install(
            cache_dir=Path(values["OPENCLAW_CACHE_DIR"]),
            version=values["OPENCLAW_VERSION"],
            engines_node=values.get("OPENCLAW_ENGINES_NODE", ""),
            node=Path(values["NODE"]),
            node_bin_dir=Path(values["NODE_BIN_DIR"]),
            openclaw_mjs=Path(values["OPENCLAW_MJS"]),
            openclaw_bin=Path(values["OPENCLAW_BIN"]),
        )
    except KeyError:
        return None
    if not (install.node.exists() and install.openclaw_mjs.exists()):
        return None
    return install


def require_install(version: str | None = None) -> Install:
    install = locate(version)
    if install is None:
        raise RuntimeError(f"No OpenClaw install in {cache_dir(version)}: run scripts/openclaw_cache.sh")
    return install


# --- homes, configs, the CLI -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


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


# --- HTTP probes -------------------------------------------------------------------------------


def http_get(port: int, path: str, *, headers: dict | None = None, timeout: float = 5):
    """(status, body) from http://127.0.0.1:<port><path>; body parsed as JSON when it is.
    Status is None when nothing answers (connection refused/reset/timeout)."""
    request = urllib.request.Request(f"http://{LOOPBACK}:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (OSError, urllib.error.URLError):
        return None, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


# --- the gateway -------------------------------------------------------------------------------


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


# --- a fake OpenAI-compatible model server -------------------------------------------------------


@dataclass
class FakeModel:
    """State of fake_model_server(): set `fail_status` (e.g. 500, 429, 402) to fail calls."""

    port: int = 0
    reply: str = "HEARTBEAT_OK"
    prompt_tokens: int = 1000
    completion_tokens: int = 200
    fail_status: int | None = None  # every chat call fails with this status
    fail_body: dict | None = None
    fail_keys: dict = field(default_factory=dict)  # API key -> status: only that key's calls fail
    requests: list = field(default_factory=list)
    usage_by_key: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/v1"

    def calls(self, path_suffix: str = "/chat/completions") -> list:
        with self.lock:
            return [r for r in self.requests if r["path"].endswith(path_suffix)]


def _fake_handler(model: FakeModel):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _send_json(self, status: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _key(self) -> str:
            auth = self.headers.get("Authorization", "")
            return auth[7:] if auth.lower().startswith("bearer ") else auth

        def do_GET(self):
            with model.lock:
                model.requests.append({"method": "GET", "path": self.path, "key": self._key()})
            if self.path.rstrip("/").endswith("/models"):
                self._send_json(200, {"object": "list", "data": [
                    {"id": "fake-model", "object": "model", "created": 0, "owned_by": "test"}]})
            else:
                self._send_json(404, {"error": {"message": "not found"}})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {}
            key = self._key()
            with model.lock:
                model.requests.append({"method": "POST", "path": self.path, "key": key, "body": body})
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send_json(404, {"error": {"message": f"no route {self.path}"}})
                return
            status = model.fail_keys.get(key) or model.fail_status
            if status:
                self._send_json(status, model.fail_body or {"error": {
                    "message": f"fake model server failure {status}",
                    "type": "server_error" if status >= 500 else "insufficient_quota",
                    "code": str(status)}})
                return
            usage = {"prompt_tokens": model.prompt_tokens, "completion_tokens": model.completion_tokens,
                     "total_tokens": model.prompt_tokens + model.completion_tokens}
            with model.lock:
                seen = model.usage_by_key.setdefault(key, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0})
                seen["calls"] += 1
                seen["prompt_tokens"] += model.prompt_tokens
                seen["completion_tokens"] += model.completion_tokens
            rid, created, name = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time()), body.get("model", "fake-model")
            if not body.get("stream"):
                self._send_json(200, {
                    "id": rid, "object": "chat.completion", "created": created, "model": name,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": model.reply},
                                 "finish_reason": "stop"}],
                    "usage": usage})
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": name}
            chunks = [
                {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
                {**base, "choices": [{"index": 0, "delta": {"content": model.reply}, "finish_reason": None}]},
                {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                {**base, "choices": [], "usage": usage},
            ]
            for chunk in chunks:
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

    return Handler


@contextlib.contextmanager
def fake_model_server(**options):
    """An OpenAI-compatible server on 127.0.0.1: GET /v1/models, POST /v1/chat/completions
    (plain JSON, or SSE when the request says `stream`), each answering `reply` with a `usage`
    block of prompt_tokens/completion_tokens. Counts tokens per API key in `usage_by_key`."""
    model = FakeModel(**options)
    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), _fake_handler(model))
    server.daemon_threads = True
    model.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield model
    finally:
        server.shutdown()
        server.server_close()


# --- the WebSocket handshake ----------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class DeviceIdentity:
    """An Ed25519 device identity as OpenClaw clients make one: id = sha256(raw public key)
    in hex, publicKey = raw key in unpadded base64url, signature over the v3 payload
    `v3|deviceId|clientId|clientMode|role|scopes,csv|signedAtMs|token|nonce|platform|deviceFamily`
    (platform and deviceFamily trimmed and lower-cased)."""

    def __init__(self):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        self._key = Ed25519PrivateKey.generate()
        self.public_raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.device_id = hashlib.sha256(self.public_raw).hexdigest()
        self.public_key = _b64url(self.public_raw)

    def sign(self, payload: str) -> str:
        return _b64url(self._key.sign(payload.encode()))

    def connect_device(self, *, client_id: str, client_mode: str, role: str, scopes: list[str],
                       token: str | None, nonce: str, signed_at: int, platform: str = "",
                       device_family: str = "") -> dict:
        payload = "|".join([
            "v3", self.device_id, client_id, client_mode, role, ",".join(scopes), str(signed_at),
            token or "", nonce, platform.strip().lower(), device_family.strip().lower(),
        ])
        return {"id": self.device_id, "publicKey": self.public_key, "signature": self.sign(payload),
                "signedAt": signed_at, "nonce": nonce}


class WsError(RuntimeError):
    pass


class WebSocket:
    """A minimal RFC 6455 client (text frames, ping/pong, close) over a plain TCP socket."""

    def __init__(self, url: str, headers: dict | None = None, timeout: float = 15):
        parts = urlsplit(url)
        if parts.scheme != "ws":
            raise ValueError("only ws:// is supported")
        host, port = parts.hostname, parts.port or 80
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
                 f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._buf = b""
        head = self._read_until(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.response_headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            self.response_headers[name.strip().lower()] = value.strip()
        self.body = b""
        if self.status != 101:
            length = int(self.response_headers.get("content-length") or 0)
            with contextlib.suppress(OSError):
                while len(self._buf) < length:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        break
                    self._buf += chunk
            self.body, self._buf = self._buf[:length] if length else self._buf, b""
            self.sock.close()
            return
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        if self.response_headers.get("sec-websocket-accept") != accept.decode():
            raise WsError("bad Sec-WebSocket-Accept")
        self.close_code: int | None = None
        self.close_reason = ""

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise WsError(f"connection closed before {marker!r}")
            self._buf += chunk
        head, _, self._buf = self._buf.partition(marker)
        return head

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise WsError("connection closed")
            self._buf += chunk
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def _send_frame(self, opcode: int, payload: bytes):
        mask = os.urandom(4)
        n = len(payload)
        header = bytes([0x80 | opcode])
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send_json(self, obj):
        self._send_frame(0x1, json.dumps(obj).encode())

    def recv(self, timeout: float = 15):
        """The next text message parsed as JSON, or None once the server closed."""
        self.sock.settimeout(timeout)
        message = b""
        while True:
            b1, b2 = self._read_exact(2)
            opcode, n = b1 & 0x0F, b2 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read_exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read_exact(8))[0]
            mask = self._read_exact(4) if b2 & 0x80 else None
            payload = self._read_exact(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.close_reason = payload[2:].decode("utf-8", "replace")
                with contextlib.suppress(OSError):
                    self._send_frame(0x8, payload[:2])
                return None
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            message += payload
            if b1 & 0x80:
                return json.loads(message)

    def close(self, code: int = 1000):
        with contextlib.suppress(OSError):
            self._send_frame(0x8, struct.pack("!H", code))
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class WsResult:
    http_status: int
    http_body: str = ""
    challenge: dict | None = None
    response: dict | None = None  # the `res` frame answering `connect`
    frames: list = field(default_factory=list)  # everything received, in order
    close_code: int | None = None
    close_reason: str = ""
    device_id: str | None = None

    @property
    def hello(self) -> dict | None:
        payload = (self.response or {}).get("payload") if (self.response or {}).get("ok") else None
        return payload if isinstance(payload, dict) and payload.get("type") == "hello-ok" else None

    @property
    def error(self) -> dict | None:
        return None if (self.response or {}).get("ok", True) else self.response.get("error")


def _signature_token(auth: dict) -> str | None:
    """The token the device signature binds: the shared or device token, else the bootstrap
    token (as the gateway client's selectGatewayConnectAuth picks it)."""
    auth = auth or {}
    return auth.get("token") or auth.get("deviceToken") or auth.get("bootstrapToken")


def ws_connect(url: str, token: str | None, *, headers: dict | None = None, device: DeviceIdentity | bool = True,
               client_id: str = "cli", client_mode: str = "cli", role: str = "operator",
               scopes: list[str] | None = None, platform: str = "linux", display_name: str | None = None,
               auth: dict | None = None, timeout: float = 20, keep_open: bool = False):
    """Open the gateway WebSocket, wait for `connect.challenge`, send `connect` (token in
    params.auth.token, a signed device identity unless device=False) and read until the
    answer to it. Returns WsResult (plus the open WebSocket when keep_open)."""
    scopes = ["operator.read", "operator.write"] if scopes is None else scopes
    identity = DeviceIdentity() if device is True else (device or None)
    ws = WebSocket(url, headers=headers, timeout=timeout)
    result = WsResult(http_status=ws.status, device_id=identity.device_id if identity else None)
    if ws.status != 101:
        result.http_body = ws.body.decode("utf-8", "replace")
        return (result, None) if keep_open else result
    deadline = time.monotonic() + timeout
    try:
        while result.challenge is None:
            frame = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            if frame is None:
                break
            result.frames.append(frame)
            if frame.get("type") == "event" and frame.get("event") == "connect.challenge":
                result.challenge = frame
        if result.challenge is not None:
            nonce, ts = result.challenge["payload"]["nonce"], result.challenge["payload"]["ts"]
            request_id = str(uuid.uuid4())
            client = {"id": client_id, "version": "clawdirector-contract", "platform": platform, "mode": client_mode}
            if display_name:
                client["displayName"] = display_name
            params = {
                "minProtocol": 4, "maxProtocol": 4, "client": client, "role": role, "scopes": scopes,
                "caps": [], "auth": auth if auth is not None else ({"token": token} if token else {}),
                "locale": "en-US", "userAgent": "clawdirector-contract/1",
            }
            if identity:
                params["device"] = identity.connect_device(
                    client_id=client_id, client_mode=client_mode, role=role, scopes=scopes,
                    token=_signature_token(params["auth"]), nonce=nonce, signed_at=ts, platform=platform)
            ws.send_json({"type": "req", "id": request_id, "method": "connect", "params": params})
            while result.response is None:
                frame = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
                if frame is None:
                    break
                result.frames.append(frame)
                if frame.get("type") == "res" and frame.get("id") == request_id:
                    result.response = frame
            if result.response is not None and not result.response.get("ok") and not keep_open:
                # The server closes after a refused connect: collect the close code.
                with contextlib.suppress(WsError, OSError, ValueError):
                    while ws.recv(timeout=max(0.1, min(3, deadline - time.monotonic()))) is not None:
                        pass
    except TimeoutError:
        pass
    except (WsError, OSError):
        pass
    result.close_code, result.close_reason = getattr(ws, "close_code", None), getattr(ws, "close_reason", "")
    if keep_open:
        return result, ws
    ws.close()
    return result


# --- small helpers ----------------------------------------------------------------------------------


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
