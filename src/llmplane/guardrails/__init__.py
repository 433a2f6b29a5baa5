"""Guardrails: checks and rewrites of what goes to and comes from models, usable on their
own and as gateway policies. :mod:`llmplane.guardrails.pii` finds PII and secrets (the
``pii`` detector, ``pip install 'llmplane[pii]'``; the ``secrets`` detector needs nothing)
and redacts stored request logs; :mod:`llmplane.guardrails.datasets` holds the labelled
sets they are measured on."""
