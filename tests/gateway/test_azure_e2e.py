"""Azure OpenAI deployments: the deployment in the path, api-version, the api-key header."""

from __future__ import annotations

from pathlib import Path

from llmplane.testing.upstream import UpstreamSimulator
from tests.canary import canary
from tests.helpers import ADMIN_KEY, GatewayProcess, openai_client

AZURE_KEY = canary("Azure provider key", "azure-")


def test_an_azure_deployment_is_called_the_azure_way(
    tmp_path: Path, upstream_simulator: UpstreamSimulator
) -> None:
    model = {
        "name": "azure-4o",
        "retries": 0,
        "deployments": [
            {
                "provider": "azure",
                "api_base": upstream_simulator.base,
                "api_key": AZURE_KEY,
                "model": "gpt-4o",
                "azure_deployment": "prod-4o",
            }
        ],
        "price": {"input_per_mtok": 2.5, "output_per_mtok": 10.0},
    }
    with GatewayProcess(tmp_path, [model]) as gateway:
        client = openai_client(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0)
        reply = client.chat.completions.create(
            model="azure-4o", messages=[{"role": "user", "content": "hi azure"}]
        )
        chunks = list(
            client.chat.completions.create(
                model="azure-4o", stream=True, messages=[{"role": "user", "content": "s"}]
            )
        )
        client.close()
    assert reply.choices[0].message.content == "This is a mock reply to: hi azure"
    assert any(c.choices and c.choices[0].delta.content for c in chunks)
    sent = [r for r in upstream_simulator.requests if r["path"] == "/v1/chat/completions"]
    assert len(sent) == 2
    for request in sent:
        assert request["headers"]["api-key"] == AZURE_KEY
        assert "authorization" not in request["headers"]  # the key travels only as api-key
