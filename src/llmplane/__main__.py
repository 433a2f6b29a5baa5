"""``python -m llmplane``: the CLI."""

from llmplane.cli.main import main

# Guarded: a spawned child process (the PII redactor's) imports this module again.
if __name__ == "__main__":
    main()
