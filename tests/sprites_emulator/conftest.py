"""The emulator's own tests, over real HTTP with `requests`: a fresh emulator per test and a
small client for its API. The code under test is stdlib only (test_cli.py proves it)."""

import json
import threading

import pytest
import requests

from sprites_emulator.testing import start_emulator


@pytest.fixture
def emu():
    with start_emulator(idle_seconds=0.3, cold_seconds=0.3, exec_seconds=0.05, setup_seconds=0) as handle:
        yield handle


class Api:
    """A bearer-token session bound to one emulator."""

    def __init__(self, url: str, token: str = "test-token"):
        self.url = url
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.url + path, **kwargs)

    def create(self, name: str, **body) -> dict:
        response = self("POST", "/v1/sprites", json={"name": name, **body})
        assert response.status_code == 201, response.text
        return response.json()

    def exec(self, name: str, *argv: str) -> tuple[list[bytes], requests.Response]:
        """Run argv; returns the frames as sent, one per HTTP chunk."""
        response = self("POST", f"/v1/sprites/{name}/exec", params=[("cmd", a) for a in argv], stream=True)
        if response.status_code != 200:
            return [], response
        frames = [chunk for chunk in response.raw.read_chunked() if chunk]
        return frames, response

    def run(self, name: str, *argv: str) -> tuple[int, bytes, bytes]:
        """Run argv; returns (exit code, stdout, stderr)."""
        frames, response = self.exec(name, *argv)
        assert response.status_code == 200, response.text
        assert frames[-1][:1] == b"\x03" and len(frames[-1]) == 2, frames
        out = b"".join(f[1:] for f in frames if f[:1] == b"\x01")
        err = b"".join(f[1:] for f in frames if f[:1] == b"\x02")
        return frames[-1][1], out, err

    def status(self, name: str) -> str:
        return self("GET", f"/v1/sprites/{name}").json()["status"]


def ndjson(response: requests.Response) -> list[dict]:
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def run_in_thread(emu, name: str, *argv: str, into: dict | None = None) -> threading.Thread:
    """Run argv on its own connection in the background; the result lands in `into["run"]`."""
    def work():
        result = Api(emu.url).run(name, *argv)
        if into is not None:
            into["run"] = result

    thread = threading.Thread(target=work)
    thread.start()
    return thread
