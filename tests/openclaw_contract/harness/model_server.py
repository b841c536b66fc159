"""`fake_model_server()`: an OpenAI-compatible model server on 127.0.0.1 (GET /v1/models,
POST /v1/chat/completions, plain JSON or SSE) that counts tokens per API key and fails on
demand (FakeModel's fail_status, fail_keys)."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
import uuid
from dataclasses import dataclass, field

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
