"""The OpenClaw guest: plays the part of the few commands ClawDirector runs in a sprite.

Nothing runs on the host. The command text is recognised (the OpenClaw CLI calls of
../../shared/openclaw.md, the set-up script, health checks, a few shell builtins) and
answered with the output, exit code and duration the real thing would have; anything else
is "exit 0, no output".
"""

from __future__ import annotations

import json
import posixpath
import re
import secrets
import shlex
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import ClientGone, CommandExit
from .formats import duration_seconds

if TYPE_CHECKING:
    from .models import ExecSession, Sprite
    from .state import EmulatorState

OPENCLAW_VERSION = "2026.9.0"
MAX_EXEC_SLEEP = 600.0  # no simulated command ever holds a thread longer than this
DEFAULT_HEARTBEAT_COST_USD = 0.0012

HEARTBEAT_RE = re.compile(r"\bopenclaw\s+agent(?:\s|$)")
SETUP_RE = re.compile(r"clawdirector-setup|install\.sh|\bopenclaw\s+onboard\b")
DEVICES_RE = re.compile(r"\bopenclaw\s+devices\s+(list|approve|reject)\b")
DASHBOARD_RE = re.compile(r"\bopenclaw\s+dashboard\b")
HEALTH_RE = re.compile(r"\bopenclaw\s+health\b|\bopenclaw\s+gateway\s+status\b|/startupz|/healthz|/readyz")
VERSION_RE = re.compile(r"\bopenclaw\s+(?:--version|-V)\b")
TIMEOUT_RE = re.compile(
    r"(?<![\w-])timeout\s+(?:(?:-k|-s|--kill-after|--signal)\s+\S+\s+|--\S+\s+)*"
    r"(\d+(?:\.\d+)?)([smh]?)(?=\s)"
)
SHELLS = {"bash", "sh", "dash", "zsh"}
OPERATORS = {";", "&&", "||", "|", "&", ";;", "(", ")"}


class Simulator:
    """Recognises the command text and plays its part. Sleeps go through `_sleep`, which
    honours a `timeout N` wrapper (exit 124), cancellation (restore/kill/delete: 137 or the
    signal's code) and a client that hung up (ClientGone)."""

    def __init__(self, state: EmulatorState, sprite: Sprite, session: ExecSession,
                 emit: Callable[[int, bytes], None]):
        self.state, self.sprite, self.session, self.emit = state, sprite, session, emit

    def run(self, argv: list[str]) -> int:
        text = " ".join(argv)
        cap = _timeout_cap(text)
        if cap is not None:
            self.session.deadline = time.monotonic() + cap
        if HEARTBEAT_RE.search(text):
            return self.heartbeat()
        if SETUP_RE.search(text):
            return self.setup()
        devices = DEVICES_RE.search(text)
        if devices:
            return self.devices(devices.group(1), text[devices.end():], "--json" in text)
        if DASHBOARD_RE.search(text):
            return self.dashboard()
        if HEALTH_RE.search(text):
            return self.health()
        if VERSION_RE.search(text):
            self.out(f"{OPENCLAW_VERSION}\n")
            return 0
        return self.shell(_script_of(argv))

    # -- helpers

    def out(self, text: str) -> None:
        self.emit(1, text.encode())

    def err(self, text: str) -> None:
        self.emit(2, text.encode())

    def _sleep(self, seconds: float) -> None:
        session = self.session
        end = time.monotonic() + min(max(seconds, 0.0), MAX_EXEC_SLEEP)
        timed_out = session.deadline is not None and session.deadline < end
        if timed_out:
            end = session.deadline
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            if session.cancelled.wait(min(remaining, 0.1)):
                raise CommandExit(session.kill_code)
            if not session.connected():
                raise ClientGone()
        if session.cancelled.is_set():
            raise CommandExit(session.kill_code)
        if timed_out:
            raise CommandExit(124)

    def _behavior(self) -> dict:
        with self.state.lock:
            return self.state._behavior(self.sprite.name)

    # -- OpenClaw commands

    def heartbeat(self) -> int:
        """`openclaw agent ... --json`: one agent turn that blocks until it is done."""
        behavior = self._behavior()
        seconds = behavior.get("heartbeat_seconds", self.state.options.exec_seconds)
        started = time.monotonic()
        if behavior.get("hang"):
            self._sleep(MAX_EXEC_SLEEP)
            self.err("Error: agent turn did not finish (emulated hang)\n")
            return 1
        self._sleep(seconds)
        code = behavior.get("heartbeat_exit_code", 0)
        run_id = str(uuid.uuid4())
        if code:  # the real 2026.9.6 failure: JSON on stdout, the CLI's reason on stderr
            message = behavior.get("heartbeat_error") or "Agent turn failed (emulated)"
            self.out(json.dumps({"ok": False, "runId": run_id, "origin": "gateway",
                                 "error": {"type": "cli_error", "message": message}}, indent=2) + "\n")
            self.err(f"[openclaw] The CLI command failed.\n[openclaw] Reason: {message}\n")
            return code & 0xFF
        cost = behavior.get("heartbeat_cost_usd", DEFAULT_HEARTBEAT_COST_USD)
        usage = {"input": 1843, "output": 12, "cacheRead": 0, "cacheWrite": 0, "total": 1855, "cost": {"total": cost}}
        # The shape of the real 2026.9.6 output run through the gateway (its fields ClawDirector
        # reads, and nothing the real one lacks): the cost is at result.meta.agentMeta.costUsd.
        self.out(json.dumps({
            "runId": run_id,
            "status": "ok",
            "summary": "completed",
            "result": {
                "payloads": [{"text": "HEARTBEAT_OK", "mediaUrl": None}],
                "meta": {
                    "durationMs": int((time.monotonic() - started) * 1000),
                    "agentMeta": {
                        "sessionId": str(uuid.uuid5(uuid.NAMESPACE_URL, self.sprite.id)),
                        "provider": "clawdirector",
                        "model": "emulated-model",
                        "usage": usage,
                        "costUsd": cost,
                    },
                },
            },
        }, indent=2) + "\n")
        return 0

    def setup(self) -> int:
        self.out("==> Installing Node.js 24 (emulated: nothing runs on the host)\n")
        self._sleep(self.state.options.setup_seconds)
        self.out(f"==> Installed openclaw@{OPENCLAW_VERSION}\n")
        with self.state.lock:
            self.sprite.openclaw_installed = True
        self.out("==> OpenClaw set-up complete\n")
        return 0

    def devices(self, action: str, rest: str, as_json: bool) -> int:
        """`openclaw devices list|approve|reject`, on the sprite's pairing store."""
        args = _words_until_operator(rest)
        positional = _positional(args)
        if action == "list":
            return self._devices_list(as_json)
        if action == "reject":
            return self._devices_reject(positional[0] if positional else None, as_json)
        return self._devices_approve(positional[0] if positional and "--latest" not in args else None, as_json)

    def _devices_list(self, as_json: bool) -> int:
        with self.state.lock:
            listing = {"pending": [dict(p) for p in self.sprite.pending.values()],
                       "paired": [dict(d) for d in self.sprite.paired.values()]}
        if as_json:
            self.out(json.dumps(listing, indent=2) + "\n")
        else:
            self.out(f"Pending ({len(listing['pending'])})\nPaired ({len(listing['paired'])})\n")
        return 0

    def _devices_reject(self, request_id: str | None, as_json: bool) -> int:
        with self.state.lock:
            request = self.sprite.pending.pop(request_id, None) if request_id is not None else None
        if request is None:
            self.err("unknown requestId\n")
            return 1
        self.out(json.dumps({"requestId": request["requestId"], "deviceId": request["deviceId"]}, indent=2)
                 + "\n" if as_json else f"Rejected {request['deviceId']}\n")
        return 0

    def _devices_approve(self, request_id: str | None, as_json: bool) -> int:
        """Approve that request, or the newest pending one when no id is given."""
        device = None
        with self.state.lock:
            pending = self.sprite.pending
            if request_id is None and pending:
                request_id = max(pending.values(), key=lambda r: r["ts"])["requestId"]
            request = pending.pop(request_id, None) if request_id is not None else None
            if request is not None:
                device = self._pair(request)
        if request_id is None:
            self.err("No pending device pairing requests to approve\n")
            return 1
        if device is None:  # the words of the real 2026.9.6 CLI (openclaw.md)
            self.err(f"No pending device request matches {request_id}. "
                     "Run openclaw devices list and retry with a current request id.\n")
            return 1
        if as_json:
            self.out(json.dumps({"requestId": request_id, "device": device}, indent=2) + "\n")
        else:
            self.out(f"Approved {device['displayName']} ({device['deviceId']}) ({request_id})\n")
        return 0

    def _pair(self, request: dict) -> dict:
        """Under the lock: the PairedDevice an approved request becomes, now in the store."""
        now_ms = int(self.state.wall(self.state.now()) * 1000)
        device = {
            key: request[key] for key in (
                "deviceId", "publicKey", "displayName", "platform", "clientId",
                "clientMode", "role", "roles", "scopes", "remoteIp")
        }
        device.update(tokens=[{"role": request["role"], "scopes": request["scopes"],
                               "createdAtMs": now_ms}],
                      createdAtMs=request["ts"], approvedAtMs=now_ms)
        self.sprite.paired[device["deviceId"]] = device
        return device

    def dashboard(self) -> int:
        """`dashboard --json` as the real 2026.9.6 prints it (openclaw.md): `url` carries the
        shared token in its fragment; `browserUrl` points at loopback with a single-use,
        10-minute bootstrap token, and its expiry is `browserBootstrapExpiresAtMs`."""
        now_ms = int(self.state.wall(self.state.now()) * 1000)
        gateway = self.sprite.gateway()
        port = (gateway.http_port if gateway is not None else None) or 8080
        local = f"http://127.0.0.1:{port}/"
        self.out(json.dumps({
            "ok": True,
            "url": f"{local}#token={secrets.token_urlsafe(32)}",
            "httpUrl": local,
            "wsUrl": f"ws://127.0.0.1:{port}/",
            "port": port,
            "tokenIncluded": True,
            "browserUrl": (f"{local}#bootstrapToken={secrets.token_urlsafe(24)}&bootstrapProfile=owner"
                           f"&gatewayUrl=ws%3A%2F%2F127.0.0.1%3A{port}"),
            "browserBootstrapExpiresAtMs": now_ms + 10 * 60 * 1000,
        }) + "\n")
        return 0

    def health(self) -> int:
        with self.state.lock:
            up = self.sprite.gateway_running()
        if up:
            self.out(json.dumps({"ok": True}) + "\n")
            return 0
        self.out(json.dumps({"ok": False, "error": "gateway not reachable"}) + "\n")
        self.err("Gateway not reachable: the gateway service is not running\n")
        return 1

    # -- a tiny shell: sleep, exit, echo, true, false; anything else succeeds silently

    def shell(self, script: str) -> int:
        status = 0
        for line in script.splitlines() or [""]:
            try:
                lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
                lexer.whitespace_split = True
                lexer.commenters = "#"
                words = list(lexer)
            except ValueError:  # unbalanced quotes: not our business, succeed quietly
                continue
            command: list[str] = []
            pending_op = ";"
            for word in words + [";"]:
                if word not in OPERATORS:
                    command.append(word)
                    continue
                if command and _should_run(pending_op, status):
                    status = self._simple(command)
                command, pending_op = [], word
        return status

    def _simple(self, words: list[str]) -> int:
        to_stderr, argv, skip = False, [], False
        for i, word in enumerate(words):
            if skip:
                skip = False
            elif word == ">&":
                to_stderr = i + 1 < len(words) and words[i + 1] == "2"
                if argv and argv[-1] in ("1", "2") and len(argv) > 1:
                    argv.pop()  # the "1" of "1>&2"
                skip = True
            elif word in (">", ">>", "<", "2>", "&>"):
                skip = True
            else:
                argv.append(word)
        if not argv:
            return 0
        name, args = posixpath.basename(argv[0]), argv[1:]
        if name == "exit":
            raise CommandExit(_int(args[0] if args else "0") & 0xFF)
        if name == "sleep":
            try:
                seconds = sum(MAX_EXEC_SLEEP if a == "infinity" else duration_seconds(a) for a in args)
            except ValueError:
                self.err(f"sleep: invalid time interval '{' '.join(args)}'\n")
                return 1
            self._sleep(seconds)
            return 0
        if name == "echo":
            newline = "\n"
            if args and args[0] == "-n":
                args, newline = args[1:], ""
            (self.err if to_stderr else self.out)(" ".join(args) + newline)
            return 0
        if name == "false":
            return 1
        return 0  # true, and every command the emulator does not know: never run for real


def _timeout_cap(text: str) -> float | None:
    """The N of a `timeout [-k 10] N` wrapper, in seconds."""
    match = TIMEOUT_RE.search(text + " ")
    if not match:
        return None
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _script_of(argv: list[str]) -> str:
    """The script of `bash -c '<script>'` (or `-lc`, `-ec`...), else argv as one command."""
    if argv and posixpath.basename(argv[0]) in SHELLS:
        for i, arg in enumerate(argv[1:-1], start=1):
            if arg.startswith("-") and not arg.startswith("--") and "c" in arg:
                return argv[i + 1]
    return shlex.join(argv)


def _positional(args: list[str]) -> list[str]:
    """The words that are not options nor an option's value."""
    positional, skip = [], False
    for word in args:
        if skip:
            skip = False
        elif word in ("--url", "--token", "--password", "--timeout", "--name"):
            skip = True
        elif not word.startswith("-"):
            positional.append(word)
    return positional


def _words_until_operator(text: str) -> list[str]:
    try:
        lexer = shlex.shlex(text.split("\n", 1)[0], posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = []
        for word in lexer:
            if word in OPERATORS:
                break
            words.append(word)
        return words
    except ValueError:
        return text.split()


def _should_run(operator: str, status: int) -> bool:
    if operator == "&&":
        return status == 0
    if operator == "||":
        return status != 0
    return True


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 2  # what bash does with `exit abc`
