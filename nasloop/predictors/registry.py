"""The predictor registry: names to backend classes, with third-party entry points.

``@register_predictor("name")`` on a :class:`Predictor` subclass adds it;
``create_predictor(name, **params)`` builds one; ``list_predictors()`` lists them. Other
packages add backends through the ``nasloop.predictors`` entry-point group, each entry
point naming a Predictor subclass (registered under the entry point's name).
"""
from __future__ import annotations

import difflib
import fnmatch
from importlib.metadata import entry_points
from typing import Any, TypeVar

from ..errors import ConfigError, NasloopError
from .base import Predictor

ENTRY_POINT_GROUP = "nasloop.predictors"
_REGISTRY: dict[str, type[Predictor]] = {}
_entry_points_loaded = False

P = TypeVar("P", bound=type[Predictor])


class UnknownPredictorError(NasloopError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def register_predictor(name: str):
    """Class decorator: register a Predictor subclass under ``name`` (duplicates refused)."""
    def deco(cls: P) -> P:
        if not (isinstance(cls, type) and issubclass(cls, Predictor)):
            raise TypeError(f"@register_predictor({name!r}) needs a Predictor subclass")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"a predictor named {name!r} is already registered "
                             f"({_REGISTRY[name].__module__}.{_REGISTRY[name].__qualname__})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls
    return deco


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            continue
        try:
            cls = ep.load()
        except Exception as e:  # a broken plugin must not break nasloop
            import warnings
            warnings.warn(f"predictor plugin {ep.name!r} ({ep.value}) failed to load: {e}",
                          stacklevel=2)
            continue
        register_predictor(ep.name)(cls)


def list_predictors(pattern: str = "*") -> list[str]:
    """Registered predictor names matching a glob ``pattern``, sorted."""
    _load_entry_points()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_predictor_class(name: str) -> type[Predictor]:
    _load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        lower = {n.lower(): n for n in _REGISTRY}
        close = ([lower[name.lower()]] if name.lower() in lower else
                 difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.4))
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UnknownPredictorError(
            f"unknown predictor {name!r}{hint}; known: {', '.join(sorted(_REGISTRY))}") from None


def checked_predictor(name: str, **params: Any) -> Predictor:
    """:func:`create_predictor`, with its hyperparameters validated now (``fit`` would do it
    later): a bad ``--set`` fails before any cell is timed or fitted."""
    p = create_predictor(name, **params)
    try:
        p._validate_params()
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"bad hyperparameter value for predictor {name!r} ({e}); "
                          f"check the --set values: {params}") from None
    return p


def create_predictor(name: str, **params: Any) -> Predictor:
    """Build the predictor registered as ``name`` with ``params`` as hyperparameters."""
    cls = get_predictor_class(name)
    unknown = sorted(set(params) - set(cls._param_names()))
    if unknown:
        raise ConfigError(f"predictor {name!r} has no parameter {', '.join(map(repr, unknown))}; "
                          f"its parameters: {', '.join(cls._param_names())}")
    try:
        return cls(**params)
    except TypeError as e:
        raise ConfigError(f"bad parameters for predictor {name!r}: {e}") from None


def describe_predictors() -> list[dict]:
    """Name, one-line summary, class path and default parameters (what ``--set KEY=VALUE``
    can change) of every registered backend (``nasloop predictors``); a plugin class
    without a docstring gets an empty summary."""
    rows = []
    for n in list_predictors():
        cls = get_predictor_class(n)
        doc = (cls.__doc__ or "").strip().splitlines()
        try:
            params = cls().get_params()
        except Exception:  # noqa: BLE001 - a plugin that needs arguments: none listed
            params = {}
        rows.append({"name": n, "class": f"{cls.__module__}.{cls.__qualname__}",
                     "summary": doc[0] if doc else "", "params": params})
    return rows
