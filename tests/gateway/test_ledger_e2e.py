"""The usage ledger under load, across shutdown, and as reported by ``llmplane spend``."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import openai
import pytest

from llmplane.testing.upstream import UpstreamSimulator
from tests.helpers import (
    ADMIN_KEY,
    GatewayProcess,
    async_openai_client,
    cli,
    openai_client,
    simulator_model,
)
from tests.postgres import fresh_database


def test_burst_of_500_concurrent_calls_writes_exactly_500_rows(
    tmp_path: Path, upstream_simulator: UpstreamSimulator
) -> None:
    models = [
        simulator_model("sim", upstream_simulator.url),
        {"name": "mock", "deployments": [{"provider": "mock"}]},
    ]
    gateway = GatewayProcess(tmp_path, models).start()
    try:
        key = json.loads(
            cli("keys", "create", "--name", "burst", "--json", url=gateway.url).stdout
        )["key"]

        async def burst() -> list[int]:
            client = async_openai_client(base_url=gateway.base_url, api_key=key, max_retries=0)
            async with client:

                async def one(i: int) -> int:
                    reply = await client.chat.completions.create(
                        model="sim" if i % 2 else "mock",
                        messages=[{"role": "user", "content": f"request {i}"}],
                        stream=i % 5 == 0,
                    )
                    if i % 5 == 0:
                        return sum([1 async for _ in reply])
                    return 1

                return await asyncio.gather(*(one(i) for i in range(500)))

        assert all(asyncio.run(burst()))
    finally:
        assert gateway.stop() == 0
    rows = gateway.sql(
        "SELECT count(*), count(DISTINCT request_id), min(status), max(status) FROM usage_ledger"
    )
    by_model = dict(gateway.sql("SELECT model, count(*) FROM usage_ledger GROUP BY model"))
    assert rows == [(500, 500, 200, 200)]
    assert by_model == {"sim": 250, "mock": 250}


def test_spend_reports_totals_by_key_and_model(tmp_path: Path) -> None:
    gateway = GatewayProcess(
        tmp_path,
        [
            {
                "name": "mock",
                "deployments": [{"provider": "mock"}],
                "price": {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0},
            },
            {
                "name": "mock-embed",
                "deployments": [{"provider": "mock"}],
                "price": {"input_per_mtok": 100.0, "output_per_mtok": 0.0},
            },
        ],
    )
    with gateway:
        keys = {
            name: json.loads(
                cli("keys", "create", "--name", name, "--json", url=gateway.url).stdout
            )
            for name in ("alpha", "beta")
        }
        expected_cost = 0.0
        for name, calls in (("alpha", 3), ("beta", 1)):
            client = openai_client(base_url=gateway.base_url, api_key=keys[name]["key"])
            for _ in range(calls):
                response = client.chat.completions.with_raw_response.create(
                    model="mock", messages=[{"role": "user", "content": "price me"}]
                )
                expected_cost += float(response.headers["x-llmplane-cost-usd"])
        embed = openai_client(base_url=gateway.base_url, api_key=keys["beta"]["key"])
        response = embed.embeddings.with_raw_response.create(model="mock-embed", input="a b c")
        expected_cost += float(response.headers["x-llmplane-cost-usd"])

        summary = json.loads(cli("spend", "--json", url=gateway.url).stdout)
        table = cli("spend", url=gateway.url).stdout

    by_key = {row["name"]: row for row in summary["by_key"]}
    assert by_key["alpha"]["requests"] == 3
    assert by_key["beta"]["requests"] == 2
    by_model = {row["model"]: row for row in summary["by_model"]}
    assert by_model["mock"]["requests"] == 4 and by_model["mock-embed"]["requests"] == 1
    # "price me" → 5 prompt tokens, "This is a mock reply to: price me" → 9 completion tokens
    assert by_model["mock"]["completion_tokens"] == 4 * 9
    assert summary["total"]["cost_usd"] == round(expected_cost, 9)
    assert "alpha" in table and "mock-embed" in table


def test_graceful_shutdown_finishes_an_inflight_stream(
    tmp_path: Path, upstream_simulator: UpstreamSimulator
) -> None:
    upstream_simulator.configure(tokens_per_second=20)
    gateway = GatewayProcess(tmp_path, [simulator_model("sim", upstream_simulator.url)]).start()
    client = openai_client(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0)
    stream = client.chat.completions.create(
        model="sim", messages=[{"role": "user", "content": "a b c d e f g h i j"}], stream=True
    )
    first = next(iter(stream))
    stopper = threading.Thread(target=gateway.stop)
    started = time.monotonic()
    stopper.start()
    rest = list(stream)
    stopper.join()
    text = (first.choices[0].delta.content or "") + "".join(
        c.choices[0].delta.content or "" for c in rest if c.choices
    )
    assert text == "This is a mock reply to: a b c d e f g h i j"
    assert rest[-1].choices[0].finish_reason == "stop"
    assert time.monotonic() - started > 0.3  # the stream was still running when asked to stop
    assert gateway.sql("SELECT status, stream FROM usage_ledger") == [(200, True)]


def test_gateway_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    database = fresh_database(postgres_url)
    gateway = GatewayProcess(
        tmp_path,
        [{"name": "mock", "deployments": [{"provider": "mock"}]}],
        env={"LLMPLANE_DATABASE_URL": database},
    )
    with gateway:
        key = json.loads(cli("keys", "create", "--name", "pg", "--json", url=gateway.url).stdout)
        client = openai_client(base_url=gateway.base_url, api_key=key["key"], max_retries=0)
        for user in ("alice", "x" * 500, None):  # an over-long user must not poison the ledger
            client.chat.completions.create(
                model="mock", messages=[{"role": "user", "content": "pg"}], user=user or openai.omit
            )
        summary = json.loads(cli("spend", "--json", url=gateway.url).stdout)
        assert summary["by_key"][0]["name"] == "pg" and summary["by_key"][0]["requests"] == 3
        cli("keys", "revoke", "pg", url=gateway.url)
        with pytest.raises(openai.AuthenticationError):
            client.models.list()
    assert not gateway.db_path.exists()  # nothing went to SQLite
    assert gateway.sql("SELECT count(*) FROM usage_ledger") == [(3,)]


def test_requests_are_attributed_to_user_and_tags(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path, [{"name": "mock", "deployments": [{"provider": "mock"}]}])
    with gateway:
        client = openai_client(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0)
        client.chat.completions.create(
            model="mock",
            messages=[{"role": "user", "content": "tag me"}],
            metadata={"feature": "search"},
            extra_headers={
                "x-llmplane-tags": "env=prod, feature=override",
                "x-llmplane-user": "header-user",
            },
        )
        client.chat.completions.create(
            model="mock", messages=[{"role": "user", "content": "tag me"}], user="body-user"
        )
        by_tag = json.loads(cli("spend", "--by", "tag", "--json", url=gateway.url).stdout)
        by_user = json.loads(cli("spend", "--by", "user", "--json", url=gateway.url).stdout)
    assert {r["tag"]: r["requests"] for r in by_tag["rows"]} == {
        "feature=override": 1,
        "env=prod": 1,
    }
    assert {r["user"] for r in by_user["rows"]} == {"header-user", "body-user"}
    rows = gateway.sql("SELECT user_id, tags FROM usage_ledger ORDER BY id")
    assert rows[0][0] == "header-user"
    assert json.loads(rows[0][1]) == {"feature": "override", "env": "prod"}
    assert rows[1] == ("body-user", None)
