"""A LiteLLM proxy double: its virtual-key API and an OpenAI-compatible chat endpoint (issue 15).

Stdlib only, nothing of ClawDirector's, its own small server (the Sprites routes are not
touched). What it copies from LiteLLM (docs.litellm.ai "Virtual Keys", "Budgets"):

- Key API, master key only (`Authorization: Bearer <master key>`, else 401):
  `POST /key/generate` {max_budget, soft_budget, budget_duration, metadata, models, key_alias}
  → {"key": "sk-…", "token": <sha256 of the key>, "key_alias", "max_budget", "soft_budget",
  "budget_duration", "metadata", "models", "spend": 0.0, "expires": null};
  `GET /key/info?key=<key or its hashed token>` → {"key": …, "info": {"token", "spend", "max_budget", …}};
  `POST /key/update` {"key", …fields} → the updated key; `POST /key/delete` {"keys": [...]} →
  {"deleted_keys": [...]} (404 when none of them exists).
- `POST /v1/chat/completions` (and `/chat/completions`) with a virtual key: unknown or deleted
  key → 401 `auth_error`; a key whose spend reached its `max_budget` → 400 with LiteLLM's body
  `{"error": {"message": "Budget has been exceeded! ...", "type": "budget_exceeded", ...}}`
  (OpenClaw classifies it as a billing error); else one answer, plain JSON or SSE (`stream`)
  whose last chunk carries `usage`. Tokens and spend (tokens × the double's prices per million)
  are counted per key.

    with start_model_proxy(master_key="sk-master") as proxy:
        proxy.url, proxy.spend(key), proxy.usage(key), proxy.requests()
"""

from __future__ import annotations

import hashlib
import http.server
import json
import secrets
import threading
import time
import uuid
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

KEY_FIELDS = ("key_alias", "max_budget", "soft_budget", "budget_duration", "metadata", "models")


class ModelProxyState:
    def __init__(self, *, master_key: str, reply: str, prompt_tokens: int, completion_tokens: int,
                 price_input: Decimal, price_output: Decimal):
        self.master_key = master_key
        self.reply = reply
        self.prompt_tokens, self.completion_tokens = prompt_tokens, completion_tokens
        self.price_input, self.price_output = Decimal(price_input), Decimal(price_output)
        self.keys: dict[str, dict] = {}
        self.log: list[dict] = []
        self.lock = threading.Lock()


class ModelProxyHandler(http.server.BaseHTTPRequestHandler):
    """One request to the double; its state is the server's (`ModelProxyServer.state`)."""

    protocol_version = "HTTP/1.1"

    @property
    def state(self) -> ModelProxyState:
        return self.server.state

    def log_message(self, *args):
        pass

    def _json(self, status: int, body) -> None:
        send_json(self, status, body)

    def _error(self, status: int, message: str, type_: str) -> None:
        self._json(status, {"error": {"message": message, "type": type_, "param": None, "code": str(status)}})

    def _bearer(self) -> str:
        auth = self.headers.get("Authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else ""

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        except ValueError:
            body = {}
        return body if isinstance(body, dict) else {}

    def _record(self, method: str, body=None) -> None:
        with self.state.lock:
            self.state.log.append({"method": method, "path": self.path, "auth": self._bearer(),
                              "body": body, "headers": dict(self.headers)})

    def _master(self) -> bool:
        if self._bearer() != self.state.master_key:
            self._error(401, "Authentication Error, only the master key may manage keys", "auth_error")
            return False
        return True

    def do_GET(self):
        self._record("GET")
        parts = urlsplit(self.path)
        if parts.path != "/key/info":
            self._error(404, f"no route {parts.path}", "not_found")
            return
        if not self._master():
            return
        key = (parse_qs(parts.query).get("key") or [""])[0]
        with self.state.lock:  # the key itself, or its hashed token (LiteLLM hashes an sk- key)
            entry = self.state.keys.get(key) or next((e for e in self.state.keys.values() if e["token"] == key), None)
            info = {k: v for k, v in entry.items() if k != "key"} if entry else None
        if info is None:
            self._error(404, "Key not found", "not_found")
            return
        self._json(200, {"key": key, "info": info})

    def do_POST(self):
        body = self._body()
        self._record("POST", body)
        path = urlsplit(self.path).path
        if path in ("/v1/chat/completions", "/chat/completions"):
            self._chat(body)
            return
        if path not in ("/key/generate", "/key/update", "/key/delete"):
            self._error(404, f"no route {path}", "not_found")
            return
        if not self._master():
            return
        getattr(self, "_" + path.rsplit("/", 1)[1])(body)

    def _generate(self, body: dict) -> None:
        key = "sk-" + secrets.token_urlsafe(24)
        entry = {"key": key, "token": hashlib.sha256(key.encode()).hexdigest(), "spend": 0.0,
                 "expires": None, "prompt_tokens": 0, "completion_tokens": 0, "calls": 0,
                 **{f: body.get(f) for f in KEY_FIELDS}}
        with self.state.lock:
            self.state.keys[key] = entry
            answer = dict(entry)
        self._json(200, answer)

    def _update(self, body: dict) -> None:
        key = body.get("key")
        with self.state.lock:
            entry = self.state.keys.get(key)
            if entry is not None:
                entry.update({f: body[f] for f in KEY_FIELDS if f in body})
                answer = dict(entry)
        if entry is None:
            self._error(404, "Key not found", "not_found")
        else:
            self._json(200, answer)

    def _delete(self, body: dict) -> None:
        keys = body.get("keys") if isinstance(body.get("keys"), list) else []
        with self.state.lock:
            deleted = [k for k in keys if self.state.keys.pop(k, None) is not None]
        if not deleted:
            self._error(404, "No keys found to delete", "not_found")
        else:
            self._json(200, {"deleted_keys": deleted})

    def _chat(self, body: dict) -> None:
        key = self._bearer()
        with self.state.lock:
            entry = self.state.keys.get(key)
            over = entry is not None and entry["max_budget"] is not None and entry["spend"] >= entry["max_budget"]
            spend, budget = (entry["spend"], entry["max_budget"]) if entry else (0, 0)
        if entry is None:
            self._error(401, "Authentication Error, Invalid proxy server token passed.", "auth_error")
            return
        if over:
            self._error(400, f"Budget has been exceeded! Current cost: {spend}, Max budget: {budget}",
                        "budget_exceeded")
            return
        usage = usage_block(self.state.prompt_tokens, self.state.completion_tokens)
        cost = (self.state.prompt_tokens * self.state.price_input + self.state.completion_tokens * self.state.price_output) / 10**6
        with self.state.lock:
            entry["calls"] += 1
            entry["prompt_tokens"] += self.state.prompt_tokens
            entry["completion_tokens"] += self.state.completion_tokens
            entry["spend"] = float(Decimal(str(entry["spend"])) + cost)
        send_completion(self, model=body.get("model", ""), reply=self.state.reply, usage=usage,
                        stream=bool(body.get("stream")))


# --- the OpenAI wire shapes (also the contract suite's fake model server's) -----------------------


def send_json(handler: http.server.BaseHTTPRequestHandler, status: int, body) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def usage_block(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def send_completion(handler: http.server.BaseHTTPRequestHandler, *, model: str, reply: str, usage: dict,
                    stream: bool) -> None:
    """A chat completion answering `reply`: one JSON body, or SSE chunks whose last one
    carries `usage` (what OpenAI sends with stream_options.include_usage)."""
    rid, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())
    if not stream:
        send_json(handler, 200, {"id": rid, "object": "chat.completion", "created": created, "model": model,
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                                              "finish_reason": "stop"}], "usage": usage})
        return
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Cache-Control", "no-cache")
    handler.send_header("Connection", "close")
    handler.end_headers()
    base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}
    for chunk in (
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": reply}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**base, "choices": [], "usage": usage},
    ):
        handler.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
    handler.wfile.write(b"data: [DONE]\n\n")
    handler.wfile.flush()
    handler.close_connection = True


class ModelProxyServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, state: ModelProxyState):
        super().__init__(address, ModelProxyHandler)
        self.state = state


class ModelProxyHandle:
    def __init__(self, server: ModelProxyServer, state: ModelProxyState):
        self._server, self._state = server, state
        self.url = f"http://127.0.0.1:{server.server_address[1]}"

    def keys(self) -> list[str]:
        with self._state.lock:
            return list(self._state.keys)

    def key_info(self, key: str) -> dict | None:
        with self._state.lock:
            entry = self._state.keys.get(key)
            return dict(entry) if entry else None

    def spend(self, key: str) -> Decimal:
        info = self.key_info(key)
        return Decimal(str(info["spend"])) if info else Decimal(0)

    def set_spend(self, key: str, spend: float) -> None:
        with self._state.lock:
            self._state.keys[key]["spend"] = spend

    def requests(self) -> list[dict]:
        with self._state.lock:
            return [dict(r) for r in self._state.log]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_model_proxy(*, master_key: str, reply: str = "HEARTBEAT_OK", prompt_tokens: int = 1000,
                      completion_tokens: int = 200, price_input="3", price_output="15") -> ModelProxyHandle:
    state = ModelProxyState(master_key=master_key, reply=reply, prompt_tokens=prompt_tokens,
                            completion_tokens=completion_tokens, price_input=Decimal(price_input),
                            price_output=Decimal(price_output))
    server = ModelProxyServer(("127.0.0.1", 0), state)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return ModelProxyHandle(server, state)
