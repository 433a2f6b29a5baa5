"""Upstream providers: the OpenAI-compatible fast path and the built-in mock."""
