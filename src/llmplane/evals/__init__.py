"""The eval harness: suites of cases run against prompts, models or Python callables
through the gateway, scored, stored and compared with a baseline (see ``scoring`` for the
core types)."""
