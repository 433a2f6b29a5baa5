"""The ASGI gateway: OpenAI-compatible routes, auth, routing and providers."""
