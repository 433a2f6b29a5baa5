"""Entry point of the ``llmplane`` command."""

from __future__ import annotations

import os

import click

from llmplane import __version__
from llmplane.cli.admin import keys, spend
from llmplane.cli.dev import dev
from llmplane.cli.evals import eval_group
from llmplane.cli.guardrails import guardrails
from llmplane.cli.incidents import changes, incidents
from llmplane.cli.logs import logs
from llmplane.cli.prompts import prompts
from llmplane.cli.report import report
from llmplane.cli.teams import audit, budgets, services, teams
from llmplane.cli.up import up


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llmplane")
def cli() -> None:
    """llmplane: the internal AI platform."""


cli.add_command(up)
cli.add_command(keys)
cli.add_command(spend)
cli.add_command(dev)
cli.add_command(teams)
cli.add_command(services)
cli.add_command(budgets)
cli.add_command(audit)
cli.add_command(report)
cli.add_command(incidents)
cli.add_command(changes)
cli.add_command(logs)
cli.add_command(guardrails)
cli.add_command(prompts)
cli.add_command(eval_group)


# Nothing may reach the network at import or start except configured upstreams: dependencies
# that would fetch price maps, models or send telemetry are told not to (an explicit
# setting in the environment still wins).
_OFFLINE_DEFAULTS = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
    "DO_NOT_TRACK": "1",
}


def main() -> None:
    """Run the CLI."""
    for name, value in _OFFLINE_DEFAULTS.items():
        os.environ.setdefault(name, value)
    cli()
