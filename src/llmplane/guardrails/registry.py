"""Detectors by name: the built-in ones, and the custom checks a platform team registers.

``build_detector("pii", {"entities": ["EMAIL_ADDRESS"]})`` imports the built-in detector
(lazily: Presidio and embedding models are heavy) and calls its class with the options as
keyword arguments, as ``llmplane.yaml`` gives them. A platform team adds its own checks in
Python, in a module the platform config names (never code sent over the API)::

    from llmplane.guardrails import registry

    @registry.register_detector("refund_promises")
    class RefundPromises:
        name = "refund_promises"

        def __init__(self, max_amount: int = 100) -> None: ...
        def check(self, text, context=registry.DEFAULT_CONTEXT): ...

:func:`load_plugins` imports such modules by name (``load_plugins(["mycompany.guards"])``),
each once; importing runs their ``register_detector`` calls. Plugin code is the platform
team's own, installed on the platform's machines and named in its configuration: nothing
that arrives over the API is ever imported, evaluated or executed (LiteLLM's
CVE-2026-40217 ran guardrail code a caller sent).
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from llmplane.guardrails.base import DEFAULT_CONTEXT, Detector

__all__ = [
    "DEFAULT_CONTEXT",
    "PluginError",
    "build_detector",
    "detector_names",
    "load_plugins",
    "register_detector",
]

DetectorFactory = Callable[..., Detector]
_F = TypeVar("_F", bound=Callable[..., Any])

# name -> "module:attribute", imported on first use.
_BUILTIN: dict[str, str] = {
    "pii": "llmplane.guardrails.pii:PiiDetector",
    "secrets": "llmplane.guardrails.pii:SecretsDetector",
    "injection": "llmplane.guardrails.injection:InjectionDetector",
    "blocklist": "llmplane.guardrails.blocklist:BlocklistDetector",
    "system_prompt_leak": "llmplane.guardrails.output:SystemPromptLeakDetector",
    "json_schema": "llmplane.guardrails.output:JsonSchemaDetector",
}
_custom: dict[str, DetectorFactory] = {}
_lock = threading.Lock()
_plugins: dict[str, list[str]] = {}  # module -> the detector names its import registered
_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


class PluginError(ImportError):
    """A plugin module could not be imported; the message names the module."""


def register_detector(name: str) -> Callable[[_F], _F]:
    """Register a custom detector factory (a class or a function returning a detector)
    under ``name``; a built-in name cannot be taken."""

    def register(factory: _F) -> _F:
        if name in _BUILTIN:
            raise ValueError(f"{name!r} is a built-in detector; choose another name")
        with _lock:
            _custom[name] = factory
        return factory

    return register


def detector_names() -> list[str]:
    """Every name :func:`build_detector` accepts."""
    return sorted({*_BUILTIN, *_custom})


def _factory(name: str) -> DetectorFactory:
    with _lock:
        custom = _custom.get(name)
    if custom is not None:
        return custom
    path = _BUILTIN.get(name)
    if path is None:
        known = ", ".join(detector_names())
        raise ValueError(f"unknown detector {name!r} (known: {known})")
    module, _, attribute = path.partition(":")
    factory: DetectorFactory = getattr(importlib.import_module(module), attribute)
    return factory


def build_detector(name: str, options: Mapping[str, Any] | None = None) -> Detector:
    """A new detector ``name`` built with ``options``; ``ValueError`` or ``TypeError``
    says what is wrong with them, ``ImportError`` which extra is missing."""
    detector = _factory(name)(**dict(options or {}))
    if not isinstance(detector, Detector):
        raise TypeError(f"detector {name!r} has no name and check()")
    return detector


def load_plugins(modules: Iterable[str]) -> dict[str, list[str]]:
    """Import each plugin module named (dotted names, as ``import`` takes them), once per
    process, so that its :func:`register_detector` calls run; returns, for each module,
    the detector names its import registered. :class:`PluginError` names the module that
    failed and why (not installed, or an error while importing it)."""
    if isinstance(modules, str):
        raise TypeError("load_plugins takes a list of module names")
    loaded: dict[str, list[str]] = {}
    for module in modules:
        if not _MODULE_NAME.fullmatch(module):
            raise PluginError(f"guardrail plugin {module!r} is not a module name (a.b.c)")
        with _lock:
            known = _plugins.get(module)
        if known is not None:
            loaded[module] = known
            continue
        with _lock:
            before = set(_custom)
        # Not under _lock: the module's register_detector calls take it.
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise PluginError(
                f"guardrail plugin {module!r} could not be imported: {type(exc).__name__}: {exc}"
            ) from exc
        with _lock:
            added = sorted(set(_custom) - before)
            _plugins[module] = added
        loaded[module] = added
    return loaded
