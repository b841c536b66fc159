"""`fake_model_server()`: an OpenAI-compatible model server on 127.0.0.1 (GET /v1/models,
POST /v1/chat/completions, plain JSON or SSE) that counts tokens per API key and fails on
demand (FakeModel's fail_status, fail_keys)."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from dataclasses import dataclass, field

from sprites_emulator.modelproxy import send_completion, send_json, usage_block

from .probes import LOOPBACK


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

        def _key(self) -> str:
            auth = self.headers.get("Authorization", "")
            return auth[7:] if auth.lower().startswith("bearer ") else auth

        def do_GET(self):
            with model.lock:
                model.requests.append({"method": "GET", "path": self.path, "key": self._key()})
            if self.path.rstrip("/").endswith("/models"):
                send_json(self, 200, {"object": "list", "data": [
                    {"id": "fake-model", "object": "model", "created": 0, "owned_by": "test"}]})
            else:
                send_json(self, 404, {"error": {"message": "not found"}})

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
                send_json(self, 404, {"error": {"message": f"no route {self.path}"}})
                return
            status = model.fail_keys.get(key) or model.fail_status
            if status:
                send_json(self, status, model.fail_body or {"error": {
                    "message": f"fake model server failure {status}",
                    "type": "server_error" if status >= 500 else "insufficient_quota",
                    "code": str(status)}})
                return
            usage = usage_block(model.prompt_tokens, model.completion_tokens)
            with model.lock:
                seen = model.usage_by_key.setdefault(key, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0})
                seen["calls"] += 1
                seen["prompt_tokens"] += model.prompt_tokens
                seen["completion_tokens"] += model.completion_tokens
            send_completion(self, model=body.get("model", "fake-model"), reply=model.reply, usage=usage,
                            stream=bool(body.get("stream")))

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
