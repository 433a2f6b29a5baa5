"""llmplane: the internal AI platform — one governed OpenAI-compatible endpoint for every model."""

__all__ = ["__version__"]

__version__ = "0.1.0"
