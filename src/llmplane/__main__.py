"""``python -m llmplane``: the CLI."""

from llmplane.cli.main import main

main()
