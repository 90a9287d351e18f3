"""Latency units. nasloop works in milliseconds everywhere internally.

Tables come in seconds (BRP-NAS) or milliseconds (HELP, user CSVs); converting at the
loader boundary keeps the unit explicit in exactly one place.
"""
from __future__ import annotations

import math
import re

from .errors import NasloopError

#: factor from each accepted unit to milliseconds
_TO_MS = {"s": 1e3, "sec": 1e3, "ms": 1.0, "us": 1e-3, "µs": 1e-3}

_BUDGET_RE = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Zµ]+)\s*$")


class BudgetError(NasloopError, ValueError):
    """A latency budget that does not parse."""


def format_ms(ms: float, sep: str = " ") -> str:
    """A latency as a person writes it: ``5 ms``, ``0.25 ms``, ``1000 s`` (never ``1e+06ms``).

    ``sep=""`` gives the form an option takes back (``--budget 5ms``), for hints to copy.
    """
    ms = float(ms)
    if math.isfinite(ms) and abs(ms) >= 1e3:
        return f"{ms / 1e3:g}{sep}s"
    return f"{ms:g}{sep}ms"


def seconds_to_ms(value: float) -> float:
    return float(value) * 1e3


def parse_budget(text: str | float) -> float:
    """Parse ``5ms``, ``5 ms``, ``0.005s`` or ``5000us`` into milliseconds.

    A bare number is refused: a unit left implicit is how seconds end up compared
    with milliseconds.
    """
    if isinstance(text, (int, float)):
        value = float(text)
        unit = "ms"
    else:
        m = _BUDGET_RE.match(str(text))
        if not m or m.group(2).lower() not in _TO_MS:
            raise BudgetError(
                f"budget {text!r} is not a latency: write a number with a unit, "
                "e.g. 5ms, 5 ms, 0.005s or 5000us")
        value, unit = float(m.group(1)), m.group(2).lower()
    ms = value * _TO_MS[unit]
    if not math.isfinite(ms) or ms <= 0:
        raise BudgetError(f"budget {text!r} must be a finite positive latency, e.g. 5ms")
    return ms
