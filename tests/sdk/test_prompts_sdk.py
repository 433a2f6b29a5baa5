"""The SDK's cached prompt get against a real gateway, behind a counting proxy: a get
within the TTL makes no request, after it a 304 revalidation keeps the copy, a label move
is seen after the TTL, a pinned version is never asked again, and a cached copy is served
(with a warning) when the gateway cannot be reached."""

from __future__ import annotations

import itertools
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llmplane.errors import InvalidRequestError
from llmplane.sdk import PromptFetchError, Prompts, StalePromptWarning
from tests.helpers import ADMIN_KEY, GatewayProcess, http

_names = itertools.count()


class CountingProxy:
    """Forwards GETs to the gateway and records (path, If-None-Match, status)."""

    def __init__(self, target: str) -> None:
        seen: list[tuple[str, str | None, int]] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                request = urllib.request.Request(target + self.path, headers=headers)
                try:
                    with urllib.request.urlopen(request, timeout=10) as reply:
                        status, body, answer = reply.status, reply.read(), reply.headers
                except urllib.error.HTTPError as exc:
                    status, body, answer = exc.code, exc.read(), exc.headers
                seen.append((self.path, self.headers.get("If-None-Match"), status))
                self.send_response(status)
                for name in ("Content-Type", "ETag", "Cache-Control"):
                    if answer.get(name):
                        self.send_header(name, answer[name])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(gateway: GatewayProcess) -> Iterator[CountingProxy]:
    running = CountingProxy(gateway.url)
    yield running
    if running.thread.is_alive():
        running.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _version(gateway: GatewayProcess, name: str, greeting: str) -> int:
    body = {
        "name": name,
        "template": [
            {"role": "system", "content": f"{greeting} from {{{{ shop }}}}."},
            {"role": "user", "content": "{{ question }}"},
        ],
        "variables": {
            "shop": {"type": "string", "default": "Acme"},
            "question": {"type": "string", "required": True},
        },
        "model": "mock",
        "params": {"temperature": 0.2},
    }
    status, _, created = http("POST", f"{gateway.url}/admin/prompts", body)
    assert status == 201, created
    return int(created["version"])


def _label(gateway: GatewayProcess, name: str, version: int) -> None:
    path = f"{gateway.url}/admin/prompts/{name}/labels/production"
    status, _, answer = http("PUT", path, {"version": version, "reason": "test"})
    assert status == 200, answer


def test_cached_get_revalidates_sees_label_moves_and_serves_stale_on_error(
    gateway: GatewayProcess, proxy: CountingProxy
) -> None:
    name = f"sdk-prompt-{next(_names)}"
    _label(gateway, name, _version(gateway, name, "Hello"))
    clock = Clock()
    prompts = Prompts(proxy.url, ADMIN_KEY, ttl_s=5, clock=clock)

    first = prompts.get(name, label="production")
    assert (first.name, first.version, first.label, first.model) == (name, 1, "production", "mock")
    assert first.params == {"temperature": 0.2}
    assert first.render(question="Refund?") == [
        {"role": "system", "content": "Hello from Acme."},
        {"role": "user", "content": "Refund?"},
    ]
    with pytest.raises(InvalidRequestError, match="required"):
        first.render(shop="Bolt")
    assert len(proxy.seen) == 1

    clock.now += 4  # within the TTL: no request
    assert prompts.get(name, label="production") is first
    assert len(proxy.seen) == 1

    clock.now += 2  # past it: revalidated, 304, the same copy
    assert prompts.get(name, label="production") is first
    _, etag, status = proxy.seen[-1]
    assert (len(proxy.seen), status) == (2, 304) and etag is not None

    _label(gateway, name, _version(gateway, name, "Howdy"))
    assert prompts.get(name, label="production").version == 1  # fresh again after the 304
    assert len(proxy.seen) == 2
    clock.now += 6
    moved = prompts.get(name, label="production")
    assert moved.version == 2 and proxy.seen[-1][2] == 200
    assert moved.render(question="Hi")[0]["content"] == "Howdy from Acme."

    pinned = prompts.get(name, version=1)
    clock.now += 100_000  # a pinned version is immutable
    assert prompts.get(name, version=1) is pinned and pinned.label is None
    assert len(proxy.seen) == 4

    with pytest.raises(PromptFetchError) as missing:
        prompts.get("no-such-prompt")
    assert missing.value.status == 404

    proxy.stop()  # the gateway cannot be reached: the stale copy, with a warning
    with pytest.warns(StalePromptWarning, match=f"cached prompt {name} version 2"):
        assert prompts.get(name, label="production") is moved
    with pytest.raises(PromptFetchError, match="could not reach the gateway") as down:
        prompts.get(name, label="staging")
    assert down.value.status == 0
