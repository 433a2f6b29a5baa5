"""Checks of a scorer's options, as a suite file gives them: each names the option and says
what it must be, so that ``build_scorer`` can prefix the scorer's name and a suite author
sees ``scorer 'numeric': option 'abs_tol' must be a number >= 0, not 'x'``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def boolean(name: str, value: Any) -> bool:
    """A true/false option."""
    if not isinstance(value, bool):
        raise TypeError(f"option {name!r} must be true or false, not {_shown(value)}")
    return value


def number(
    name: str, value: Any, *, minimum: float | None = None, maximum: float | None = None
) -> float:
    """A finite number, within bounds when given."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"option {name!r} must be a number, not {_shown(value)}")
    if not math.isfinite(value):
        raise ValueError(f"option {name!r} must be a finite number, not {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"option {name!r} must be >= {minimum:g}, not {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"option {name!r} must be <= {maximum:g}, not {value!r}")
    return float(value)


def integer(name: str, value: Any, *, minimum: int, maximum: int) -> int:
    """A whole number within bounds."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"option {name!r} must be a whole number, not {_shown(value)}")
    if not minimum <= value <= maximum:
        raise ValueError(f"option {name!r} must be between {minimum} and {maximum}, not {value}")
    return value


def text(name: str, value: Any, *, empty: bool = False) -> str:
    """A string (non-empty unless ``empty``)."""
    if not isinstance(value, str):
        raise TypeError(f"option {name!r} must be a string, not {_shown(value)}")
    if not empty and not value:
        raise ValueError(f"option {name!r} must not be empty")
    return value


def choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """One of a few strings."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"option {name!r} must be one of {allowed}, not {_shown(value)}")
    return str(value)


def strings(name: str, value: Any) -> tuple[str, ...]:
    """A string or a non-empty list of strings."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and value and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise TypeError(f"option {name!r} must be a string or a list of strings, not {_shown(value)}")
