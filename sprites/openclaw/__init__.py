"""Everything ClawDirector knows about OpenClaw, the agent gateway inside each sprite.

Read ../shared/openclaw.md for the upstream facts. This package holds, in one place: where
things live in a sprite, the config ClawDirector writes (`openclaw.json` beside this file is
its template), the gateway's service definition, the set-up and start-up commands, the
heartbeat turn's command, and the parsers of what the CLI prints. The files shipped into a
sprite (the template, `setup.sh`, `heartbeat.md`) sit beside this module. Nothing here speaks
HTTP or touches the database: the services run these commands through the Sprites client.

Every parser treats output as untrusted: tolerant of extra fields and noise, strict about
what it hands on, and it raises `UnreadableOutput` (a ValueError) when nothing usable is there.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings

from sprites.billing.pricing import round_cost

ASSETS = Path(__file__).resolve().parent
SPRITE_HOME = "/home/sprite"
CONFIG_PATH = f"{SPRITE_HOME}/.openclaw/openclaw.json"
HEARTBEAT_PROMPT_PATH = f"{SPRITE_HOME}/.openclaw/heartbeat.md"
# Absolute: a service's `env` replaces the sprite's environment, PATH included.
OPENCLAW_BIN = "/usr/local/bin/openclaw"
GATEWAY_SERVICE = "openclaw-gateway"
SETUP_TIMEOUT_SECONDS = 900
# Service create/start answer with a log stream held open this long: a gateway that exits on
# start (78 = invalid config) shows in it as an exit event with OpenClaw's own message. On the
# user's path (provisioning from the pool, start, rotate) it is short, for latency: the same
# config was proven at set-up. At set-up, off the user's path, it is sized from the measured
# failure (OPENCLAW_FAILURE_WINDOW_SECONDS; see settings).
SERVICE_STREAM_DURATION = "500ms"
# timeout(1), which bounds the heartbeat turn: 124 on TERM, 137 after -k KILL.
TIMEOUT_EXIT_CODES = (124, 137)
MAX_TURN_USD = Decimal("100000")  # a turn reporting more than this is not believed
# Device pairing request ids are UUIDs in OpenClaw; anything beyond this shape is refused
# before it reaches an exec argv.
SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
PAIRING_FIELDS = (
    "requestId", "deviceId", "displayName", "platform", "clientId", "clientMode", "role", "roles",
    "scopes", "remoteIp", "ts",
)
# One agent turn that blocks until done; from a cold sprite it first waits (at most {wait} s,
# OPENCLAW_STARTUP_WAIT_SECONDS) for the gateway's /startupz. `timeout` bounds the whole: the
# wait + the agent's own 120 s stay inside HEARTBEAT_TIMEOUT_SECONDS (a system check holds
# that). HEARTBEAT_COMMAND (settings) replaces it when set.
AGENT_TURN_TIMEOUT_SECONDS = 120
DEFAULT_HEARTBEAT_COMMAND = (
    "timeout -k 10 {timeout} sh -c '"
    "for i in $(seq 1 {wait}); do "
    "/usr/bin/curl -fsS -o /dev/null http://127.0.0.1:{port}/startupz && break; sleep 1; done; "
    f"exec {OPENCLAW_BIN} agent --agent \"$0\" "
    f"--message-file {HEARTBEAT_PROMPT_PATH} --timeout {AGENT_TURN_TIMEOUT_SECONDS} --json' {{agent}}"
)


class UnreadableOutput(ValueError):
    """The CLI answered something ClawDirector cannot use."""


# --- what ClawDirector writes into a sprite ------------------------------------------------


def heartbeat_prompt() -> bytes:
    return (ASSETS / "heartbeat.md").read_bytes()


def model_provider(*, base_url: str, api_key: str) -> dict:
    """OpenClaw's custom provider (`models.providers.<MODEL_PROVIDER_ID>`) for one sprite's own
    model credential, with the one model of settings and its prices in USD per million tokens
    (OpenClaw computes each turn's `costUsd` from them). Strict schema: every key here is one
    2026.9.6 accepts (tests/fixtures/openclaw/2026.9.6/README.md)."""
    cost = {
        "input": float(settings.MODEL_PRICE_INPUT), "output": float(settings.MODEL_PRICE_OUTPUT),
        "cacheRead": float(settings.MODEL_PRICE_CACHE_READ), "cacheWrite": float(settings.MODEL_PRICE_CACHE_WRITE),
    }
    return {
        "baseUrl": base_url, "apiKey": api_key, "api": settings.MODEL_API,
        "models": [{"id": settings.MODEL_ID, "name": settings.MODEL_NAME or settings.MODEL_ID, "cost": cost,
                    "contextWindow": settings.MODEL_CONTEXT_WINDOW, "maxTokens": settings.MODEL_MAX_TOKENS}],
    }


def render_config(*, token: str, sprite_url: str, model=None) -> bytes:
    """The OpenClaw config from the template beside this module. `model` (anything with
    `base_url` and `api_key`: the sprite's own credential, never a platform key) adds the
    custom provider and makes its model the agents' default; without it OpenClaw has no model
    (no model access configured)."""
    config = json.loads((ASSETS / "openclaw.json").read_text())
    if model is not None:
        config["models"] = {"providers": {
            settings.MODEL_PROVIDER_ID: model_provider(base_url=model.base_url, api_key=model.api_key),
        }}
        config["agents"]["defaults"]["model"] = {"primary": f"{settings.MODEL_PROVIDER_ID}/{settings.MODEL_ID}"}
    gateway = config["gateway"]
    gateway["port"] = settings.OPENCLAW_GATEWAY_PORT
    # The CLI inside the sprite (devices, dashboard) reads the token from here; the gateway
    # process also gets it from OPENCLAW_GATEWAY_TOKEN in the service environment.
    gateway["auth"]["token"] = token
    origins = [o for o in settings.OPENCLAW_ALLOWED_ORIGINS if o and o != "*"]
    if sprite_url:
        parts = urlsplit(sprite_url)
        origins.append(f"{parts.scheme}://{parts.netloc}")
    gateway["controlUi"]["allowedOrigins"] = list(dict.fromkeys(origins))
    gateway["trustedProxies"] = [p for p in settings.OPENCLAW_TRUSTED_PROXIES if p]
    return (json.dumps(config, indent=2) + "\n").encode()


def gateway_service(token: str) -> dict:
    """Keyword arguments of the client's `put_service` for the gateway."""
    return {
        "cmd": OPENCLAW_BIN,
        "args": ["gateway", "--port", str(settings.OPENCLAW_GATEWAY_PORT)],
        "http_port": settings.OPENCLAW_GATEWAY_PORT,
        "env": {
            "OPENCLAW_GATEWAY_TOKEN": token,
            "OPENCLAW_SUPERVISOR_MODE": "external",
            "HOME": SPRITE_HOME,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "NODE_ENV": "production",
        },
        "dir": SPRITE_HOME,
        "duration": SERVICE_STREAM_DURATION,
    }


def setup_argv() -> list[str]:
    """Install the pinned Node and OpenClaw (setup.sh). The versions arrive as arguments, never
    pasted into the script text, so a setting can never inject shell."""
    script = (ASSETS / "setup.sh").read_text()
    return ["bash", "-c", script, "clawdirector-setup", settings.OPENCLAW_NODE_VERSION, settings.OPENCLAW_VERSION]


def setup_failure_window() -> str:
    """The service stream's duration at set-up: long enough to see an invalid config exit."""
    return f"{settings.OPENCLAW_FAILURE_WINDOW_SECONDS:g}s"


def startup_wait_seconds() -> int:
    return settings.OPENCLAW_STARTUP_WAIT_SECONDS


def startup_wait_argv() -> list[str]:
    """Wait (at most OPENCLAW_STARTUP_WAIT_SECONDS) for the gateway's /startupz; exit 1 if it
    never came."""
    wait = (
        "for i in $(seq 1 $2); do "
        "/usr/bin/curl -fsS -o /dev/null http://127.0.0.1:$1/startupz && exit 0; sleep 1; done; exit 1"
    )
    return ["bash", "-c", wait, "clawdirector-wait", str(settings.OPENCLAW_GATEWAY_PORT), str(startup_wait_seconds())]


def heartbeat_command(*, timeout: int) -> str:
    """The shell text of one heartbeat turn (run as `bash -c`). Raises ValueError with a plain
    message when HEARTBEAT_COMMAND is not a valid template."""
    template = settings.HEARTBEAT_COMMAND or DEFAULT_HEARTBEAT_COMMAND
    try:
        command = template.format(
            timeout=timeout, agent=shlex.quote(settings.OPENCLAW_AGENT_ID), port=settings.OPENCLAW_GATEWAY_PORT,
            wait=startup_wait_seconds(),
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"HEARTBEAT_COMMAND is not a valid template ({exc!r}); the only placeholders are "
            "{timeout}, {agent}, {port} and {wait} (double other braces)."
        ) from exc
    if not command.strip():
        raise ValueError("HEARTBEAT_COMMAND is empty.")
    return command


def cli_argv(*args: str) -> list[str]:
    """An OpenClaw CLI call as an argv list: nothing is ever parsed by a shell."""
    return [OPENCLAW_BIN, *args]


def devices_list_argv() -> list[str]:
    return cli_argv("devices", "list", "--json")


def devices_approve_argv(request_id: str) -> list[str]:
    if not isinstance(request_id, str) or not SAFE_REQUEST_ID.match(request_id):
        raise ValueError("Not a valid pairing request id.")
    return cli_argv("devices", "approve", request_id, "--json")


def dashboard_argv() -> list[str]:
    return cli_argv("dashboard", "--json")


# --- what the CLI prints ----------------------------------------------------------------------


def _json_in(text: str):
    """The JSON document in CLI output, which log lines may precede; None if there is none."""
    text = text.strip()
    for candidate in (text, text[text.find("{"): text.rfind("}") + 1] if "{" in text else ""):
        if candidate:
            try:
                return json.loads(candidate)
            except ValueError:
                pass
    for line in reversed(text.splitlines()):  # last resort: the last line that is JSON
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def turn_cost(stdout: str) -> Decimal | None:
    """The turn's model spend from `openclaw agent --json`: `result.meta.agentMeta.costUsd`
    when run through the gateway (or a top-level `meta` from an embedded run), or None.
    Anything missing, malformed, negative, non-finite or absurd is no cost rather than an
    error (the turn itself still counts)."""
    data = _json_in(stdout)
    cost = None
    for path in (("meta",), ("result", "meta")):
        node = data
        for key in (*path, "agentMeta", "costUsd"):
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            cost = node
            break
    if isinstance(cost, bool) or not isinstance(cost, (int, float, str)):
        return None
    try:
        value = Decimal(str(cost))
    except InvalidOperation:
        return None
    if not value.is_finite() or value < 0 or value > MAX_TURN_USD:
        return None
    return round_cost(value)


def turn_timed_out(exit_code: int | None) -> bool:
    return exit_code in TIMEOUT_EXIT_CODES


@dataclass(frozen=True)
class Turn:
    """What one `openclaw agent --json` turn says about itself."""

    ok: bool
    timed_out: bool
    cost_usd: Decimal | None
    error: str  # OpenClaw's own message for a failed turn, else ""

    @property
    def over_budget(self) -> bool:
        """OpenClaw says the provider refused the turn for money: "returned a billing error" (a
        402 or an `insufficient_quota` body) or, after one, "temporarily disabled after a provider
        auth/billing failure" (its ~10-minute cool-down of the key; 2026.9.6). NOT LiteLLM's own
        budget refusal: run against the real 2026.9.6, LiteLLM's `400 {"error": {"type":
        "budget_exceeded", ...}}` comes out as "LLM request failed: provider rejected the request
        schema or tool payload." (tests/openclaw_contract/test_model_access.py), so that case
        is recognised from the proxy's `/key/info` (spend >= max_budget), not from this text."""
        text = self.error.lower()
        return not self.ok and ("billing error" in text or "auth/billing failure" in text)

    @property
    def maybe_over_budget(self) -> bool:
        """How OpenClaw 2026.9.6 words a LiteLLM `budget_exceeded` refusal (and any other 400 of
        the provider): only the proxy can tell which (`sprites.modelaccess.over_budget`)."""
        return not self.ok and "provider rejected the request" in self.error.lower()


def parse_turn(exit_code: int, stdout: str, stderr: str = "") -> Turn:
    """Exit 0 = completed; 124/137 = `timeout` stopped it; anything else failed, with the
    message of the `{"ok": false, "error": {"type", "message"}}` it prints on stdout (else the
    last non-empty line of its output). A failed turn may still report a cost: keep it."""
    cost = turn_cost(stdout)
    if exit_code == 0:
        return Turn(ok=True, timed_out=False, cost_usd=cost, error="")
    data = _json_in(stdout)
    message = ""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        message = str(data["error"].get("message") or data["error"].get("type") or "")
    if not message:
        lines = [line for line in f"{stdout}\n{stderr}".splitlines() if line.strip()]
        message = lines[-1] if lines else ""
    return Turn(ok=False, timed_out=turn_timed_out(exit_code), cost_usd=cost, error=message.strip())


def parse_devices(text: str) -> list[dict]:
    """Pending pairing requests from `devices list --json`, reduced to PAIRING_FIELDS."""
    data = _json_in(text)
    if data is None:
        raise UnreadableOutput("openclaw devices list answered something that is not JSON")
    pending = data.get("pending") if isinstance(data, dict) else data
    if not isinstance(pending, list):
        raise UnreadableOutput("openclaw devices list answered an unexpected shape")
    return [{k: item[k] for k in PAIRING_FIELDS if k in item} for item in pending if isinstance(item, dict)]


def approve_not_found(output: str) -> bool:
    """Did `devices approve` fail because no pending request has that id? 2026.9.6 says
    "No pending device request matches <id>" on stderr; older releases "unknown requestId"."""
    text = output.lower()
    return "no pending device request matches" in text or "unknown requestid" in text


def parse_approved(text: str, request_id: str) -> dict:
    data = _json_in(text)
    if data is None:
        raise UnreadableOutput("openclaw devices approve answered something that is not JSON")
    device = (data.get("device") if isinstance(data, dict) else None) or {}
    return {"requestId": request_id, "deviceId": device.get("deviceId", ""),
            "displayName": device.get("displayName", "")}


@dataclass(frozen=True)
class DashboardLink:
    url: str
    expires_at: datetime | None


def parse_dashboard(text: str, *, sprite_url: str) -> DashboardLink:
    """The single-use browser link from `dashboard --json`, pointed at the sprite's public URL.

    OpenClaw's `browserUrl` always points at loopback (`http://127.0.0.1:<port>/#bootstrapToken=
    …&gatewayUrl=ws%3A…`): its origin becomes the sprite URL's and the fragment's `gatewayUrl`
    the sprite's wss:// URL; the single-use bootstrap token is kept. The `url` field (which
    carries the shared gateway token) is never read."""
    data = _json_in(text)
    if data is None:
        raise UnreadableOutput("openclaw dashboard answered something that is not JSON")
    browser_url = data.get("browserUrl") if isinstance(data, dict) else None
    if not isinstance(browser_url, str) or not browser_url.startswith(("https://", "http://")):
        raise UnreadableOutput("openclaw dashboard answered no browser URL")
    expires_ms = data.get("browserBootstrapExpiresAtMs", data.get("expiresAtMs"))
    expires_at = None
    if isinstance(expires_ms, (int, float)) and not isinstance(expires_ms, bool):
        expires_at = datetime.fromtimestamp(expires_ms / 1000, tz=dt_timezone.utc)
    return DashboardLink(url=public_link(browser_url, sprite_url), expires_at=expires_at)


def public_link(browser_url: str, sprite_url: str) -> str:
    """`browser_url` re-homed on the sprite's public origin, with `gatewayUrl` in its fragment
    set to the sprite's WebSocket URL (https → wss). Without a sprite URL it is returned as is."""
    if not sprite_url:
        return browser_url
    public = urlsplit(sprite_url)
    link = urlsplit(browser_url)
    fragment = parse_qsl(link.fragment, keep_blank_values=True)
    ws_scheme = {"https": "wss", "http": "ws"}.get(public.scheme, public.scheme)
    base = public.path.rstrip("/")
    gateway = urlunsplit((ws_scheme, public.netloc, base + "/", "", ""))
    fragment = [(k, gateway if k == "gatewayUrl" else v) for k, v in fragment]
    path = base + (link.path or "/")
    return urlunsplit((public.scheme, public.netloc, path, link.query, urlencode(fragment, safe="")))


def new_gateway_token() -> str:
    """384 bits from `secrets`, URL-safe: full admin of one user's gateway."""
    return secrets.token_urlsafe(48)
