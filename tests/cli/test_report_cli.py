"""``llmplane report`` against a gateway whose models declare SLOs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from tests.helpers import GatewayProcess, cli, http


def test_report_shows_cost_and_slos_of_real_calls(tmp_path: Path) -> None:
    models = [
        {
            "name": "mock",
            "deployments": [{"provider": "mock"}],
            "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
            "slo": {"latency_p95_ms": 60_000, "error_rate": 0.01, "window_days": 7},
        },
        {
            "name": "quiet",
            "deployments": [{"provider": "mock", "slo": {"ttft_p95_ms": 800}}],
        },
    ]
    with GatewayProcess(tmp_path, models) as gateway:
        for _ in range(3):
            status, _, _ = http(
                "POST",
                f"{gateway.url}/v1/chat/completions",
                {"model": "mock", "messages": [{"role": "user", "content": "hello"}]},
            )
            assert status == 200
        report = json.loads(cli("report", "--weeks", "2", "--json", url=gateway.url).stdout)
        assert report["cost"]["month"] == datetime.now(UTC).strftime("%Y-%m")
        overall = report["cost"]["overall"]
        assert overall["requests"] == 3 and overall["tokens"] > 0
        assert overall["cost_per_mtok_usd"] is not None
        assert len(report["adoption"]["weeks"]) == 2
        deployments = {d["deployment"]: d for d in report["deployments"]}
        mock = deployments["mock[0]"]
        assert (mock["calls"], mock["errors"], mock["error_rate"]) == (3, 0, 0.0)
        assert (mock["window_days"], mock["error_budget_left"], mock["status"]) == (7, 1.0, "pass")
        assert deployments["quiet[0]"]["status"] == "no_data"

        table = cli("report", url=gateway.url).stdout
        for heading in ("WEEK", "USD/1M", "Spend by team", "DEPLOYMENT", "BUDGET%"):
            assert heading in table
        assert "mock[0]" in table and "pass" in table and "no_data" in table
        bad = cli("report", "--month", "March", url=gateway.url, check=False)
        assert bad.returncode == 1 and "2026-11" in bad.stderr
