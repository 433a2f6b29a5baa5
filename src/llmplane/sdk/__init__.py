"""llmplane's client library for product teams (small and dependency-light: the standard
library and llmplane's own template code).

- :class:`Prompts`: registered prompts by name and label or version, cached in memory
  as the gateway's ``Cache-Control`` and ``ETag`` allow, rendered with the gateway's own
  template code, and served from the cache when the gateway cannot be reached.
"""

from llmplane.sdk.prompts import PromptFetchError, Prompts, PromptVersion, StalePromptWarning

__all__ = ["PromptFetchError", "PromptVersion", "Prompts", "StalePromptWarning"]
