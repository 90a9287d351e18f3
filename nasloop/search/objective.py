"""A user's objective: ``--objective-fn module:function`` or ``path/to/file.py:function``.

Real searches score networks by training them, which nasloop cannot ship; the user's
function ``f(arch_string) -> float`` (or ``f(arch_string, seed=...)``) is maximised instead.
It is loaded before anything costly, so a typo fails at once with one line. One network
failing (an exception, NaN) is recorded on its trial and the search goes on; a function
returning something that is not a number is a bug and stops the search with one line.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import numbers
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..space import Arch

#: user attribute of a trial whose evaluation failed: its message (the network is not retried)
ERROR_ATTR = "nasloop_error"
#: how many networks in a row may fail before a worker gives up (the function is broken)
MAX_CONSECUTIVE_FAILURES = 5


class ObjectiveFailed(Exception):
    """One network's evaluation failed (an exception, NaN): recorded on its trial, not fatal."""


def _load_module(module: str, spec: str):
    if module.endswith(".py") or "/" in module or "\\" in module:
        path = Path(module).expanduser()
        if not path.is_file():
            raise ConfigError(f"--objective-fn {spec}: file {path} does not exist; give "
                              "path/to/file.py:function or module:function")
        name = f"nasloop_user_objective_{abs(hash(str(path.resolve())))}"
        ms = importlib.util.spec_from_file_location(name, path)
        if ms is None or ms.loader is None:
            raise ConfigError(f"--objective-fn {spec}: {path} is not a Python file")
        mod = importlib.util.module_from_spec(ms)
        sys.modules[name] = mod  # dataclasses and pickling look modules up by name
        try:
            ms.loader.exec_module(mod)
        except BaseException:
            sys.modules.pop(name, None)  # no half-imported module left behind
            raise
        return mod
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # like `python -m`: modules of the current folder
    return importlib.import_module(module)


def load_function(spec: str) -> Callable[..., object]:
    """The callable named by ``module:function`` or ``file.py:function``; one-line errors."""
    module, sep, func = spec.rpartition(":")
    if not sep or not module or not func.isidentifier():
        raise ConfigError(f"--objective-fn {spec!r}: give module:function or "
                          "path/to/file.py:function, e.g. mytrain:accuracy")
    try:
        mod = _load_module(module, spec)
    except ConfigError:
        raise
    except BaseException as e:  # noqa: BLE001  (a user's module can raise anything on import)
        if isinstance(e, KeyboardInterrupt):
            raise
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise ConfigError(f"--objective-fn {spec}: cannot import {module!r} "
                          f"({type(e).__name__}: {first}); check the name, and run from the "
                          "folder that holds it or give path/to/file.py:function") from None
    fn = getattr(mod, func, None)
    if fn is None:
        raise ConfigError(f"--objective-fn {spec}: {module!r} has no attribute {func!r}; "
                          "name a function defined in it")
    if not callable(fn):
        raise ConfigError(f"--objective-fn {spec}: {func!r} is a {type(fn).__name__}, not a "
                          "function")
    return fn


def _takes_seed(fn: Callable[..., object]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "seed" or p.kind == p.VAR_KEYWORD for p in params)


def as_number(value: object, spec: str, arch: str) -> float:
    """The function's answer as a float; a non-number is a bug in it: one line, fatal."""
    v = value
    if hasattr(v, "item") and not isinstance(v, (numbers.Real, np.generic)):
        try:
            v = v.item()  # a 0-d tensor or array
        except (TypeError, ValueError):
            pass
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Real, np.number)):
        raise ConfigError(f"--objective-fn {spec} returned {type(value).__name__} "
                          f"{str(value)[:40]!r} for {arch}; it must return a number (the score "
                          "to maximise, e.g. validation accuracy)")
    return float(v)


class UserObjective:
    """Calls the user's function on one cell at a time; used as ``run_search``'s accuracy.

    ``label`` names it in outputs and in the study's recorded settings (``fn:SPEC``), so a
    worker with another objective is refused.
    """

    #: a user's objective is never asked about the whole space (no optimum, no regret)
    exhaustive = False

    def __init__(self, fn: Callable[..., object], spec: str, seed: int = 0) -> None:
        self.fn, self.spec, self.seed = fn, spec, int(seed)
        self._seed_kw = _takes_seed(fn)
        self.calls = 0

    @property
    def label(self) -> str:
        return f"fn:{self.spec}"

    def score(self, arch: Arch) -> float:
        """One evaluation; :class:`ObjectiveFailed` on an exception or a non-finite answer."""
        s = str(arch)
        self.calls += 1
        try:
            v = self.fn(s, seed=self.seed) if self._seed_kw else self.fn(s)
        except (ConfigError, KeyboardInterrupt):
            raise
        except Exception as e:  # noqa: BLE001  (a training run can fail in any way)
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise ObjectiveFailed(f"{type(e).__name__}: {first}") from e
        x = as_number(v, self.spec, s)
        if not math.isfinite(x):
            raise ObjectiveFailed(f"returned {x} for {s}")
        return x

    def __call__(self, cells: Sequence[Arch]) -> np.ndarray:
        return np.array([self.score(a) for a in cells], dtype=np.float64)


def load_objective(spec: str, seed: int = 0) -> UserObjective:
    """``--objective-fn SPEC`` as an objective for :func:`~nasloop.search.run_search`."""
    return UserObjective(load_function(spec), spec, seed)


def objective_description(label: str) -> str:
    return f"user objective {label[3:]} (maximised)" if label.startswith("fn:") else label
