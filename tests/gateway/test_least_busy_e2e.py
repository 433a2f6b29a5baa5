"""least_busy routing reads self-hosted servers' load from their vLLM metrics."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from llmplane.gateway.providers.openai_compat import _vllm_load
from llmplane.testing.upstream import UpstreamSimulator
from tests.helpers import ADMIN_KEY, GatewayProcess, openai_client


def test_vllm_gauges_are_read_from_prometheus_text() -> None:
    text = (
        "# HELP vllm:num_requests_waiting Number of requests waiting.\n"
        'vllm:num_requests_waiting{engine="0",model_name="a"} 3.0\n'
        'vllm:num_requests_waiting{engine="1",model_name="a"} 2.0\n'
        'vllm:kv_cache_usage_perc{engine="0",model_name="a"} 0.25\n'
        'vllm:kv_cache_usage_perc{engine="1",model_name="a"} 0.75\n'
        "process_cpu_seconds_total 12.5\n"
    )
    assert _vllm_load(text) == (5.0, 0.75)
    assert _vllm_load("process_cpu_seconds_total 1\n") is None


def test_least_busy_sends_calls_to_the_server_with_the_shorter_queue(
    tmp_path: Path, upstream_simulator: UpstreamSimulator
) -> None:
    with UpstreamSimulator() as other:
        model = {
            "name": "pool",
            "strategy": "least_busy",
            "retries": 0,
            "deployments": [
                {
                    "provider": "openai",
                    "name": name,
                    "api_base": sim.url,
                    "model": "llama",
                    "load_metrics": {"interval_s": 0.1},
                }
                for name, sim in (("busy-a", upstream_simulator), ("busy-b", other))
            ],
            "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.2},
        }
        upstream_simulator.configure(waiting_requests=40, kv_cache_usage=0.9)
        with GatewayProcess(tmp_path, [model]) as gateway:
            client = openai_client(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0)

            def served_by(calls: int) -> Counter[str]:
                return Counter(
                    client.chat.completions.with_raw_response.create(
                        model="pool", messages=[{"role": "user", "content": "x"}]
                    ).headers["x-llmplane-deployment"]
                    for _ in range(calls)
                )

            time.sleep(0.5)  # the gauges are read
            assert served_by(10) == Counter({"busy-b": 10})
            upstream_simulator.configure(waiting_requests=0, kv_cache_usage=0.1)
            other.configure(waiting_requests=12)
            time.sleep(0.5)
            assert served_by(10) == Counter({"busy-a": 10})
            client.close()
