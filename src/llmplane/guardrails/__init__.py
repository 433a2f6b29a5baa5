"""Guardrails: checks and rewrites of what goes to and comes from models, usable on their
own and as gateway policies. :mod:`llmplane.guardrails.pii` redacts PII and secrets
(``pip install 'llmplane[pii]'``)."""
