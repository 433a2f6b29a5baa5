"""Soft budget thresholds fire a webhook and an audit event, once per period."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests import canary
from tests.helpers import GatewayProcess, cli, openai_client


class _Receiver(BaseHTTPRequestHandler):
    events: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        canary.scan(body, "budget webhook body")
        type(self).events.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        """Quiet."""


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    _Receiver.events = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # The URL's path is often the secret of a webhook: a canary.
    secret = canary.canary("budget webhook URL")
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/{secret}", _Receiver.events
    server.shutdown()
    server.server_close()


def _wait_for(predicate: Any, timeout: float = 8.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_thresholds_fire_once_each(
    tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, events = webhook
    # "hi" costs 13 prompt + 9 completion tokens at $1,000 / $2,000 per M: $0.031 a call
    gateway = GatewayProcess(
        tmp_path,
        [
            {
                "name": "mock",
                "deployments": [{"provider": "mock"}],
                "price": {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0},
            }
        ],
        env={"LLMPLANE_BUDGET_WEBHOOK_URL": url, "LLMPLANE_BUDGET_ALERT_INTERVAL_S": "0.2"},
    )
    with gateway:
        key = json.loads(
            cli("keys", "create", "--name", "watched", "--json", url=gateway.url).stdout
        )
        cli(
            "budgets",
            "set",
            "--scope",
            "key",
            "--target",
            key["id"],
            "--limit-usd",
            "1",
            "--period",
            "day",
            "--thresholds",
            "50,80",
            url=gateway.url,
        )
        time.sleep(0.8)  # the budget reaches the gateway's cache
        client = openai_client(base_url=gateway.base_url, api_key=key["key"], max_retries=0)
        cost = 0.0
        while cost < 0.55:
            response = client.chat.completions.with_raw_response.create(
                model="mock", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
            cost += float(response.headers["x-llmplane-cost-usd"])
        assert _wait_for(lambda: len(events) == 1)
        time.sleep(1.0)  # more checks pass: the 50 % alert does not fire again
        assert [e["threshold_pct"] for e in events] == [50]
        event = events[0]
        assert event["scope"] == "key" and event["scope_id"] == key["id"]
        assert event["limit_usd"] == 1.0 and event["spent_usd"] >= 0.5
        audit = json.loads(cli("audit", "--type", "budget", "--json", url=gateway.url).stdout)
        assert [e["actor"] for e in audit if e["action"] == "budget.threshold"] == ["system"]
