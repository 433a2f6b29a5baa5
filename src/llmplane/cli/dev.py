"""``llmplane dev``: developer tools, such as the upstream simulator."""

from __future__ import annotations

import click


@click.group()
def dev() -> None:
    """Developer tools."""


@dev.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=9000, show_default=True)
@click.option(
    "--latency-ms", type=float, default=0.0, show_default=True, help="Delay before each response."
)
@click.option(
    "--ttft-ms",
    type=float,
    default=0.0,
    show_default=True,
    help="Streams: delay before the first chunk.",
)
@click.option(
    "--tokens-per-second",
    type=float,
    default=0.0,
    show_default=True,
    help="Streams: pace of chunks (0 = as fast as possible).",
)
@click.option("--api-key", default=None, help="Require this bearer key.")
def upstream(
    host: str,
    port: int,
    latency_ms: float,
    ttft_ms: float,
    tokens_per_second: float,
    api_key: str | None,
) -> None:
    """Run the OpenAI-compatible upstream simulator (with fault injection)."""
    from llmplane.testing.upstream import run_cli

    run_cli(host, port, latency_ms, ttft_ms, tokens_per_second, api_key)
