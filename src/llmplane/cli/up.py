"""``llmplane up``: serve the gateway on the embedded defaults (or a config file)."""

from __future__ import annotations

import atexit
import logging
import os
import sys
from pathlib import Path

import click

from llmplane.accounting.admin_key import ADMIN_KEY_FILE, ensure_admin_key
from llmplane.cli.phoenix import DEFAULT_PORT as PHOENIX_PORT
from llmplane.cli.phoenix import INSTALL_HINT, PhoenixProcess, phoenix_installed
from llmplane.config.platform import config_path_from, load_platform_config
from llmplane.config.settings import Settings
from llmplane.errors import ConfigError
from llmplane.secret_scrub import known_secrets
from llmplane.telemetry.log_output import configure_logging


@click.command()
@click.option("--host", default=None, help="Interface to listen on.  [default: 127.0.0.1]")
@click.option("--port", type=int, default=None, help="Port to listen on.  [default: 4000]")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    help="llmplane.yaml (else $LLMPLANE_CONFIG; else built-in mock models).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where state lives.  [default: .llmplane]",
)
@click.option(
    "--with-phoenix",
    is_flag=True,
    help="Also start Arize Phoenix on 127.0.0.1 and send the gateway's traces to it "
    "(pip install 'llmplane[phoenix]').",
)
@click.option(
    "--phoenix-port",
    type=click.IntRange(1, 65535),
    default=PHOENIX_PORT,
    show_default=True,
    help="Port of Phoenix's UI and OTLP/HTTP endpoint (with --with-phoenix).",
)
def up(
    host: str | None,
    port: int | None,
    config_file: Path | None,
    data_dir: Path | None,
    with_phoenix: bool,
    phoenix_port: int,
) -> None:
    """Serve the gateway: OpenAI-compatible API at http://HOST:PORT/v1."""
    overrides = {
        k: v for k, v in {"host": host, "port": port, "data_dir": data_dir}.items() if v is not None
    }
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
        platform = load_platform_config(config_path_from(config_file, os.environ))
    except ConfigError as exc:
        click.echo(f"error: invalid configuration: {exc}", err=True)
        sys.exit(2)
    if with_phoenix and not phoenix_installed():
        click.echo(f"error: --with-phoenix needs Arize Phoenix: {INSTALL_HINT}", err=True)
        sys.exit(2)
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    configured = settings.admin_key.get_secret_value() if settings.admin_key else None
    admin_key, created = ensure_admin_key(settings.data_dir, configured)
    writer = configure_logging(
        settings.log_level, settings.log_format, known_secrets(settings, platform, admin_key)
    )
    atexit.register(writer.stop)  # writes what is still queued
    logging.getLogger("alembic").setLevel(logging.WARNING)

    url = f"http://{settings.host}:{settings.port}"
    click.echo(f"llmplane gateway on {url}/v1")
    click.echo(f"  models:   {', '.join(m.name for m in platform.models) or '(none)'}")
    click.echo(
        f"  data:     {settings.data_dir}/ ({settings.resolved_database_url().split(':')[0]})"
    )
    if created:
        click.echo(
            f"  admin key (shown once, saved to {settings.data_dir / ADMIN_KEY_FILE}): {admin_key}"
        )
    elif configured:
        click.echo("  admin key: from LLMPLANE_ADMIN_KEY")
    else:
        click.echo(f"  admin key: in {settings.data_dir / ADMIN_KEY_FILE}")
    if not configured:
        click.echo(
            f'  try:      curl {url}/v1/models -H "Authorization: Bearer $(cat '
            f'{settings.data_dir / ADMIN_KEY_FILE})"'
        )

    phoenix = None
    if with_phoenix:
        phoenix = PhoenixProcess(settings.data_dir / "phoenix", phoenix_port)
        if settings.otel_endpoint:
            click.echo("  note:     --with-phoenix replaces the configured OTLP endpoint")
        settings = settings.model_copy(update={"otel_endpoint": phoenix.otlp_endpoint})
    try:
        if phoenix is not None:
            _start_phoenix(phoenix)
        from llmplane.gateway.server import run_gateway

        run_gateway(settings, platform, admin_key)
    except ConfigError as exc:  # found while wiring (a guardrail detector that cannot be built)
        click.echo(f"error: invalid configuration: {exc}", err=True)
        sys.exit(2)
    finally:
        # Also when the gateway fails: no Phoenix outlives its `llmplane up`.
        if phoenix is not None:
            phoenix.stop()


def _start_phoenix(phoenix: PhoenixProcess, timeout_s: float = 180) -> None:
    """Start Phoenix and wait for it with a line of progress; exit 2 if it cannot start."""
    click.echo(f"  phoenix:  starting on {phoenix.url} ", nl=False)
    try:
        phoenix.start()
        took = phoenix.wait_ready(timeout_s, on_wait=lambda: click.echo(".", nl=False))
    except ConfigError as exc:
        click.echo("")
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f" ready in {took:.1f} s (log: {phoenix.log_path})")
    click.echo(f"  traces:   {phoenix.url} (Phoenix UI; spans to {phoenix.url}/v1/traces)")
