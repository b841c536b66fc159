"""Record what the real OpenClaw prints, as fixtures under tests/fixtures/openclaw/<version>/.

    python -m tests.openclaw_contract.record_fixtures [--with-slow] [--measure N]

Needs the install from scripts/openclaw_cache.sh (OPENCLAW_VERSION picks the version). Runs
everything on 127.0.0.1 with throwaway HOMEs. Secrets are replaced by placeholders
(<gateway-token>, <device-token>, <bootstrap-token>, <recovery-scope>, <api-key>) and the
throwaway HOME by <home>; everything else is verbatim. index.json lists each fixture with the
command that produced it, its exit code and stream. --with-slow also records a turn against a
model answering 500 (OpenClaw retries it for ~90 s) and one answering a rate-limit 429 (the CLI
gives up after 150 s); --measure N times N more cold starts.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import socket
import sys
import time
from pathlib import Path

from . import harness

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "sprites" / "openclaw" / "openclaw.json"
HEARTBEAT_PROMPT = REPO / "sprites" / "openclaw" / "heartbeat.md"
SPRITE_URL = "https://clawdirector-0123456789ab-abcd.sprites.app"
ORIGIN = "https://app.clawdirector.example"
PRICES = {"input": 3, "output": 15, "cacheRead": 0.3, "cacheWrite": 3.75}
OWNER_SCOPES = ["operator.admin", "operator.approvals", "operator.pairing", "operator.questions",
                "operator.read", "operator.talk.secrets", "operator.write"]
PROXIED = {"X-Forwarded-For": "203.0.113.7", "Origin": SPRITE_URL}


class Recorder:
    def __init__(self, out: Path):
        self.out = out
        self.index: dict[str, dict] = {}
        self.secrets: dict[str, str] = {}
        self.homes: list[Path] = []

    def secret(self, value: str | None, placeholder: str):
        if value:
            self.secrets[value] = placeholder

    def redact(self, text: str) -> str:
        for value, placeholder in sorted(self.secrets.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(value, placeholder)
        for home in self.homes:
            text = text.replace(str(home), "<home>")
        # Tokens the gateway mints inside JSON we did not see minted.
        text = re.sub(r'("(?:deviceToken|recoveryScope|bootstrapToken)"\s*:\s*)"[^"<]+"',
                      lambda m: m.group(1) + '"<' + {"deviceToken": "device-token", "recoveryScope": "recovery-scope",
                                                     "bootstrapToken": "bootstrap-token"}[
                          m.group(1).split('"')[1]] + '>"', text)
        text = re.sub(r"bootstrapToken=[A-Za-z0-9_-]+", "bootstrapToken=<bootstrap-token>", text)
        return text

    def save(self, name: str, content, *, command: str, exit_code=None, stream="stdout", note: str = ""):
        if not isinstance(content, str):
            content = json.dumps(content, indent=2, ensure_ascii=False) + "\n"
        (self.out / name).write_text(self.redact(content))
        entry = {"command": self.redact(command), "stream": stream}
        if exit_code is not None:
            entry["exit_code"] = exit_code
        if note:
            entry["note"] = note
        self.index[name] = entry
        print(f"  {name}  (exit {exit_code}, {stream})")

    def save_cli(self, stem: str, result: harness.CliResult, command: str, *, ext="json", note: str = ""):
        """stdout as <stem>.<ext>; a non-empty stderr as <stem>.stderr.txt."""
        self.save(f"{stem}.{ext}", result.stdout, command=command, exit_code=result.code, stream="stdout", note=note)
        if result.stderr.strip():
            self.save(f"{stem}.stderr.txt", result.stderr, command=command, exit_code=result.code, stream="stderr")

    def new_home(self) -> Path:
        home = harness.new_home()
        self.homes.append(home)
        return home


def project_config(token: str, port: int, *, bind: str | None = None, extra_gateway: dict | None = None) -> dict:
    """sprites/openclaw/openclaw.json filled in the way the project's render_config does."""
    config = json.loads(TEMPLATE.read_text())
    config["gateway"]["port"] = port
    config["gateway"]["auth"]["token"] = token
    config["gateway"]["controlUi"]["allowedOrigins"] = [ORIGIN, SPRITE_URL]
    if bind:
        config["gateway"]["bind"] = bind
    config["gateway"].update(extra_gateway or {})
    return config


def with_provider(config: dict, base_url: str, keys: dict[str, str]) -> dict:
    config["models"] = {"providers": {
        name: {"baseUrl": base_url, "apiKey": key, "api": "openai-completions",
               "models": [{"id": "fake-model", "name": "Fake Model", "reasoning": False, "input": ["text"],
                           "cost": dict(PRICES), "contextWindow": 128000, "maxTokens": 4096}]}
        for name, key in keys.items()}}
    config["agents"]["defaults"]["model"] = {"primary": f"{next(iter(keys))}/fake-model"}
    return config


def pick_port(preferred: int = 18789) -> int:
    with socket.socket() as s:
        try:
            s.bind((harness.LOOPBACK, preferred))
            return preferred
        except OSError:
            return harness.free_port()


def record(out: Path, *, with_slow: bool, measure: int) -> None:
    install = harness.require_install()
    rec = Recorder(out)
    out.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(48)
    rec.secret(token, "<gateway-token>")

    print("== CLI without a gateway")
    home = rec.new_home()
    rec.save_cli("version", harness.run_cli(["--version"], home), "openclaw --version", ext="txt")
    rec.save("engines.txt", install.engines_node + "\n", command="npm view openclaw@%s engines.node" % install.version,
             note="also package.json engines.node of the installed package")
    rec.save_cli("agent-help", harness.run_cli(["agent", "--help"], home), "openclaw agent --help", ext="txt",
                 note="the banner line's tagline may vary between runs")

    rendered = project_config(token, 8080)
    harness.write_config(home, rendered)
    rec.save("config-rendered.json", rendered, command="render of sprites/openclaw/openclaw.json (port 8080, bind lan)",
             stream="file", note="the config validated below, as ~/.openclaw/openclaw.json")
    rec.save_cli("config-validate-ok", harness.run_cli(["config", "validate", "--json"], home),
                 "openclaw config validate --json")
    unknown = json.loads(json.dumps(rendered))
    unknown["gateway"]["bogusKey"] = True
    harness.write_config(home, unknown)
    rec.save_cli("config-validate-unknown-key", harness.run_cli(["config", "validate", "--json"], home),
                 "openclaw config validate --json  # gateway.bogusKey added")
    rec.save_cli("config-validate-unknown-key.human", harness.run_cli(["config", "validate"], home),
                 "openclaw config validate  # gateway.bogusKey added", ext="txt")
    unknown_top = json.loads(json.dumps(rendered))
    unknown_top["bogusTop"] = {"a": 1}
    harness.write_config(home, unknown_top)
    rec.save_cli("config-validate-unknown-top-key", harness.run_cli(["config", "validate", "--json"], home),
                 "openclaw config validate --json  # top-level bogusTop added")
    harness.write_config(home, project_config(token, 8080, bind="loopback"))
    rec.save_cli("devices-list-no-gateway", harness.run_cli(["devices", "list", "--json"], home),
                 "openclaw devices list --json  # gateway not running")
    rec.save_cli("dashboard-no-gateway", harness.run_cli(["dashboard", "--json"], home),
                 "openclaw dashboard --json  # gateway not running")
    prompt = home / ".openclaw" / "heartbeat.md"
    prompt.write_bytes(HEARTBEAT_PROMPT.read_bytes())
    rec.save_cli("agent-no-gateway", harness.run_cli(
        ["agent", "--agent", "main", "--message-file", str(prompt), "--timeout", "120", "--json"], home),
        "openclaw agent --agent main --message-file ~/.openclaw/heartbeat.md --timeout 120 --json  # no gateway")

    print("== invalid configs")
    for stem, mutate, what in [
        ("gateway-invalid-config", lambda c: c["gateway"].__setitem__("bogusKey", True), "gateway.bogusKey added"),
        ("gateway-missing-mode", lambda c: c["gateway"].pop("mode"), "gateway.mode removed"),
    ]:
        bad_home = rec.new_home()
        config = project_config(token, pick_port(), bind="loopback")
        mutate(config)
        gw = harness.start_gateway(config, home=bad_home, port=config["gateway"]["port"],
                                   env=harness.service_env(token, bad_home, install))
        try:
            gw.wait_startupz(60)
            raise SystemExit(f"{stem}: the gateway started")
        except harness.GatewayExited as exc:
            command = f"openclaw gateway --port <port>  # {what}, service env"
            note = f"exited {exc.code} after {exc.seconds:.1f}s"
            rec.save(f"{stem}.stderr.txt", gw.stderr, command=command, exit_code=exc.code, stream="stderr", note=note)
            rec.save(f"{stem}.stdout.txt", gw.stdout, command=command, exit_code=exc.code, stream="stdout", note=note)
        finally:
            gw.stop()

    print("== a running gateway (loopback, trustedProxies 127.0.0.1, a fake model provider)")
    with harness.fake_model_server(reply="HEARTBEAT_OK", prompt_tokens=1000, completion_tokens=200) as model:
        model.fail_keys["sk-broken-key"] = 402
        rec.secret("sk-good-key", "<api-key>")
        rec.secret("sk-broken-key", "<api-key-2>")
        rec.secret("sk-rate-key", "<api-key-3>")
        home = rec.new_home()
        port = pick_port()
        config = with_provider(project_config(token, port, bind="loopback", extra_gateway={"trustedProxies": ["127.0.0.1"]}),
                               model.base_url, {"clawdirector": "sk-good-key", "broken": "sk-broken-key",
                                                "ratelimited": "sk-rate-key"})
        rec.save("config-gateway.json", config, command="the config of the recorded gateway", stream="file",
                 note="project template + bind loopback + trustedProxies + custom provider; validates")
        gw = harness.start_gateway(config, home=home, port=port, env=harness.service_env(token, home, install))
        try:
            starting = None
            while True:
                if gw.exit_code is not None:
                    raise SystemExit(f"gateway exited {gw.exit_code}: {gw.output[-2000:]}")
                status, body = harness.http_get(port, "/startupz", timeout=2)
                if status == 503 and starting is None:
                    starting = body
                if status == 200:
                    break
                time.sleep(0.1)
            print(f"  /startupz 200 after {time.monotonic() - gw.started:.1f}s")
            if starting:
                rec.save("startupz-starting.json", starting, command="GET /startupz  # while starting", exit_code=503,
                         stream="http")
            for path, stem in (("/startupz", "startupz"), ("/healthz", "healthz"), ("/readyz", "readyz")):
                status, body = harness.http_get(port, path)
                rec.save(f"{stem}.json", body, command=f"GET {path}", exit_code=status, stream="http")
            rec.save("gateway-start.stdout.txt", gw.stdout, command="openclaw gateway --port <port>  # service env",
                     stream="stdout", note="log lines up to ready")

            ok = harness.ws_connect(gw.url, token)
            rec.save("ws-challenge.json", ok.challenge, command="WebSocket ws://127.0.0.1:<port>/ first frame",
                     stream="ws")
            rec.save("ws-hello-ok.json", ok.response, command="connect with params.auth.token + signed device (cli)",
                     stream="ws")
            wrong = harness.ws_connect(gw.url, "wrong-" + secrets.token_urlsafe(24))
            rec.save("ws-wrong-token.json", {"response": wrong.response, "close": {"code": wrong.close_code,
                                                                                   "reason": wrong.close_reason}},
                     command="connect with a wrong token", stream="ws")
            forwarded_loopback = harness.ws_connect(gw.url, token, headers={"X-Forwarded-For": "127.0.0.1"})
            rec.save("ws-proxy-attribution-required.json",
                     {"status": forwarded_loopback.http_status, "body": json.loads(forwarded_loopback.http_body)},
                     command="WebSocket upgrade with X-Forwarded-For: 127.0.0.1 (forwarded client is loopback); "
                             "the same 403 when the socket source is not in gateway.trustedProxies",
                     stream="http")
            bad_origin = harness.ws_connect(gw.url, token, client_id="openclaw-control-ui", client_mode="webchat",
                                            headers={"X-Forwarded-For": "203.0.113.9", "Origin": "https://evil.example"})
            rec.save("ws-origin-not-allowed.json", {"response": bad_origin.response,
                                                    "close": {"code": bad_origin.close_code,
                                                              "reason": bad_origin.close_reason}},
                     command="connect from a Control UI whose Origin is not in allowedOrigins", stream="ws")
            device_less = harness.ws_connect(gw.url, token, device=False, headers={"X-Forwarded-For": "203.0.113.10"})
            rec.save("ws-proxied-no-device-hello.json", device_less.response,
                     command="proxied connect with the token and no device identity", stream="ws",
                     note="accepted, but scopes cleared to []")

            device = harness.DeviceIdentity()
            pairing = harness.ws_connect(gw.url, token, device=device, client_id="openclaw-control-ui",
                                         client_mode="webchat", headers=PROXIED, display_name="Owner laptop")
            rec.save("ws-pairing-required.json", {"response": pairing.response,
                                                  "close": {"code": pairing.close_code, "reason": pairing.close_reason}},
                     command="proxied (X-Forwarded-For 203.0.113.7 via trusted 127.0.0.1) connect of a new device",
                     stream="ws")
            request_id = pairing.error["details"]["requestId"]
            rec.save_cli("devices-list", harness.run_cli(["devices", "list", "--json"], home),
                         "openclaw devices list --json  # one pending request")
            rec.save_cli("devices-approve", harness.run_cli(["devices", "approve", request_id, "--json"], home),
                         "openclaw devices approve <requestId> --json")
            unknown_id = "00000000-0000-4000-8000-000000000000"
            rec.save_cli("devices-approve-unknown", harness.run_cli(["devices", "approve", unknown_id, "--json"], home),
                         f"openclaw devices approve {unknown_id} --json")
            again = harness.ws_connect(gw.url, token, device=device, client_id="openclaw-control-ui",
                                       client_mode="webchat", headers=PROXIED, display_name="Owner laptop")
            rec.save("ws-paired-hello-ok.json", again.response, command="the approved device reconnects", stream="ws")
            rec.save_cli("devices-list-paired", harness.run_cli(["devices", "list", "--json"], home),
                         "openclaw devices list --json  # after approval")

            dashboard = harness.run_cli(["dashboard", "--json"], home)
            data = json.loads(dashboard.stdout)
            bootstrap = re.search(r"bootstrapToken=([A-Za-z0-9_-]+)", data["browserUrl"]).group(1)
            rec.secret(bootstrap, "<bootstrap-token>")
            rec.save_cli("dashboard", dashboard, "openclaw dashboard --json",
                         note=f"took {dashboard.seconds:.1f}s; expires {data['browserBootstrapExpiresAtMs'] - int(time.time() * 1000)} ms after recording")
            first = harness.ws_connect(gw.url, None, auth={"bootstrapToken": bootstrap}, scopes=OWNER_SCOPES,
                                       client_id="openclaw-control-ui", client_mode="webchat", headers=PROXIED)
            rec.save("ws-bootstrap-hello-ok.json", first.response,
                     command="proxied Control UI connect with params.auth.bootstrapToken and the owner scopes",
                     stream="ws")
            second = harness.ws_connect(gw.url, None, auth={"bootstrapToken": bootstrap}, scopes=OWNER_SCOPES,
                                        client_id="openclaw-control-ui", client_mode="webchat", headers=PROXIED)
            rec.save("ws-bootstrap-reused.json", {"response": second.response,
                                                  "close": {"code": second.close_code, "reason": second.close_reason}},
                     command="the same bootstrap token again (another device)", stream="ws")

            prompt = home / ".openclaw" / "heartbeat.md"
            prompt.write_bytes(HEARTBEAT_PROMPT.read_bytes())
            turn = ["agent", "--agent", "main", "--message-file", str(prompt), "--timeout", "120", "--json"]
            shown = "openclaw agent --agent main --message-file ~/.openclaw/heartbeat.md --timeout 120 --json"
            ok_turn = harness.run_cli(turn, home, timeout=200)
            rec.save_cli("agent-turn-ok", ok_turn, shown,
                         note="fake model: 1000 prompt + 200 completion tokens at $3/$15 per million")
            first_call = model.calls()[0]["body"]
            rec.save("model-request-summary.json",
                     {k: (f"<{len(v)} items>" if isinstance(v, list) else v) for k, v in first_call.items()},
                     command="the chat-completions request body OpenClaw sent to the provider", stream="http",
                     note="messages/tools replaced by their counts")
            failed = harness.run_cli(turn + ["--model", "broken/fake-model"], home, timeout=200)
            rec.save_cli("agent-turn-failed", failed, shown + " --model broken/fake-model",
                         note=f"provider answered 402; took {failed.seconds:.1f}s")
            if with_slow:
                model.fail_keys["sk-good-key"] = 500
                failed = harness.run_cli(turn, home, timeout=300)
                rec.save_cli("agent-turn-failed-500", failed, shown,
                             note=f"provider answered 500 to every call; OpenClaw retried, took {failed.seconds:.0f}s")
                model.fail_keys.pop("sk-good-key")
                model.fail_keys["sk-rate-key"] = 429
                model.fail_body = {"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded",
                                             "code": "rate_limit_exceeded"}}
                failed = harness.run_cli(turn + ["--model", "ratelimited/fake-model"], home, timeout=300)
                rec.save_cli("agent-turn-rate-limited", failed, shown + " --model ratelimited/fake-model",
                             note=f"provider answered 429 rate_limit_exceeded to every call; took {failed.seconds:.0f}s")
        finally:
            gw.stop()

    if measure:
        print(f"== {measure} cold starts (fresh HOME each)")
        for _ in range(measure):
            home = rec.new_home()
            port = pick_port()
            gw = harness.start_gateway(project_config(token, port, bind="loopback"), home=home, port=port,
                                       env=harness.service_env(token, home, install))
            try:
                print(f"  /startupz 200 after {gw.wait_startupz(120):.1f}s")
            finally:
                gw.stop()

    (out / "index.json").write_text(json.dumps(dict(sorted(rec.index.items())), indent=2) + "\n")
    for home in rec.homes:
        shutil.rmtree(home, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--with-slow", action="store_true")
    parser.add_argument("--measure", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    install = harness.require_install()
    out = args.out or REPO / "tests" / "fixtures" / "openclaw" / install.version
    record(out, with_slow=args.with_slow, measure=args.measure)
    print(f"fixtures in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
