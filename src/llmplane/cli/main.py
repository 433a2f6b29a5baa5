"""Entry point of the ``llmplane`` command."""

from __future__ import annotations

import click

from llmplane import __version__
from llmplane.cli.admin import keys, spend
from llmplane.cli.dev import dev
from llmplane.cli.up import up


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llmplane")
def cli() -> None:
    """llmplane: the internal AI platform."""


cli.add_command(up)
cli.add_command(keys)
cli.add_command(spend)
cli.add_command(dev)


def main() -> None:
    """Run the CLI."""
    cli()
