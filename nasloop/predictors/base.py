"""The predictor contract every latency backend keeps (scikit-learn manners).

* hyperparameters are explicit keyword arguments of ``__init__``, stored as given;
* ``fit(archs, latencies_ms) -> self``; learned state lives in attributes ending in ``_``;
* ``predict(archs) -> float64 array`` in milliseconds, same order as the input;
* ``save(path)`` writes a folder holding ``meta.json`` (name, params, fit info, versions)
  plus the backend's own payload in a format that cannot execute code on load.
"""
from __future__ import annotations

import inspect
import json
import math
import platform
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .. import __version__
from ..errors import ConfigError, DataError, NasloopError, NotFittedError
from ..space import Arch, ArchLike, coerce_archs

META_FILE = "meta.json"
FORMAT = "nasloop-predictor/1"

#: ``progress(epoch, total, info_dict)`` callback used by iterative backends
ProgressFn = Callable[[int, int, dict], None]


class Predictor(ABC):
    """Base class: subclasses implement ``_fit``, ``_predict``, ``_save_state``, ``_load_state``."""

    #: registry name, set by :func:`~nasloop.predictors.registry.register_predictor`
    name: ClassVar[str] = "?"
    #: capabilities as data: ``stochastic`` (seed matters), ``iterative`` (reports progress)
    tags: ClassVar[dict[str, Any]] = {}

    # ----- parameters ---------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind == p.KEYWORD_ONLY or
                (p.name != "self" and p.kind == p.POSITIONAL_OR_KEYWORD)]

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> "Predictor":
        valid = set(self._param_names())
        for k, v in params.items():
            if k not in valid:
                raise ConfigError(f"predictor {self.name!r} has no parameter {k!r}; "
                                  f"its parameters: {', '.join(sorted(valid))}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ----- fit / predict ------------------------------------------------------------
    def fit(self, archs: Sequence[ArchLike], latencies: Sequence[float], *,
            val: tuple[Sequence[ArchLike], Sequence[float]] | None = None,
            progress: ProgressFn | None = None) -> "Predictor":
        """Fit on cells and their latencies in ms; ``val`` drives early stopping where used."""
        x, y = _check_training(archs, latencies, "training")
        v = _check_training(*val, "validation") if val is not None and len(val[0]) else None
        self._validate_params()
        self._fit(x, y, v, progress)
        self.fitted_ = True
        self.fit_info_: dict[str, Any] = {"train_cells": len(x), "val_cells": len(v[0]) if v else 0}
        return self

    def predict(self, archs: Sequence[ArchLike]) -> np.ndarray:
        """Predicted latency (ms) of each cell, float64, in input order."""
        self._check_fitted()
        x = coerce_archs(archs)
        if not x:
            return np.zeros(0, dtype=np.float64)
        return np.asarray(self._predict(x), dtype=np.float64).reshape(len(x))

    def _check_fitted(self) -> None:
        if not getattr(self, "fitted_", False):
            raise NotFittedError(f"this {self.name!r} predictor is not fitted yet: call fit() "
                                 "or load a saved predictor first")

    def _validate_params(self) -> None:
        """Hook: raise ConfigError for bad hyperparameters (checked in fit, not __init__)."""

    def pretraining_tables(self) -> set[str]:
        """The latency tables a fitted predictor learnt from beyond its own cells (a
        pretrained model's sources): test metrics on one of them are optimistic
        (:func:`fair_test_hint` says how to avoid it)."""
        return set()

    @abstractmethod
    def _fit(self, x: list[Arch], y: np.ndarray, val: tuple[list[Arch], np.ndarray] | None,
             progress: ProgressFn | None) -> None: ...

    @abstractmethod
    def _predict(self, x: list[Arch]) -> np.ndarray: ...

    # ----- persistence --------------------------------------------------------------
    @abstractmethod
    def _save_state(self, folder: Path) -> None:
        """Write learned state into ``folder`` (JSON, torch state dict, XGBoost JSON...)."""

    @abstractmethod
    def _load_state(self, folder: Path) -> None:
        """Read what :meth:`_save_state` wrote, never executing code."""

    def save(self, path: str | Path, **fit_info: Any) -> Path:
        """Save to folder ``path``; ``fit_info`` (device, split, metrics) is recorded in meta."""
        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self._save_state(folder)
        info = {**getattr(self, "fit_info_", {}), **fit_info}
        self.fit_info_ = info
        meta = {"format": FORMAT, "predictor": self.name, "params": self.get_params(),
                "fit_info": info, "nasloop_version": __version__, "libraries": _versions()}
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, default=_json_default))
        return folder


def fair_test_hint(device: str) -> str:
    """How to test on ``device`` a model whose pretraining saw its table: without it."""
    return (f"pretrain without it (nasloop pretrain --exclude {device} --out m.npz; exclude "
            "its sister tables too) and pass --set pretrained=m.npz")


def cross_val_predict(predictor: Predictor, archs: list[Arch], y: np.ndarray, *,
                      folds: int = 10, seed: int = 0, rng: np.random.Generator | None = None,
                      fit: Callable[[Predictor, list[Arch], np.ndarray], Any] | None = None,
                      on_fold: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Out-of-fold predictions: each cell predicted by a copy fitted without its fold.

    With few measured cells nothing can be held out of the final fit, yet a margin needs
    residuals on cells the model has not seen: these are they (cross-conformal, Vovk 2015).
    ``folds`` >= the number of cells means leave-one-out. Copies get the same parameters.
    ``rng`` (instead of ``seed``) draws the folds from a caller's generator; ``fit(copy,
    cells, y)`` replaces ``copy.fit`` (``auto`` early-stops its GCNs); ``on_fold(f, k)``
    is called before each fold, for a progress bar.
    """
    y = np.asarray(y, dtype=np.float64)
    n = len(archs)
    if n < 2:
        raise ConfigError(f"cross-validation needs at least 2 cells, got {n}")
    k = min(int(folds), n)
    order = (rng if rng is not None else np.random.default_rng(seed)).permutation(n)
    out = np.full(n, np.nan)
    for f in range(k):
        if on_fold is not None:
            on_fold(f, k)
        held = order[f::k]
        keep = np.setdiff1d(order, held)
        copy = type(predictor)(**predictor.get_params())
        kx, ky = [archs[i] for i in keep], y[keep]
        if fit is None:
            copy.fit(kx, ky)
        else:
            fit(copy, kx, ky)
        out[held] = copy.predict([archs[i] for i in held])
    return out


def is_predictor_folder(path: str | Path) -> bool:
    """Whether ``path`` holds a saved nasloop predictor (a ``meta.json`` of this format):
    the only kind of folder ``fit-predictor --force`` may replace."""
    meta_file = Path(path) / META_FILE
    try:
        return json.loads(meta_file.read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def load_predictor(path: str | Path) -> Predictor:
    """Restore a predictor saved with :meth:`Predictor.save`; identical predictions."""
    from .registry import UnknownPredictorError, get_predictor_class

    folder = Path(path)
    meta_file = folder / META_FILE
    if not folder.exists():
        raise DataError(f"{folder} does not exist: give the folder of a saved predictor "
                        "('nasloop fit-predictor --out PATH' makes one)")
    if not meta_file.is_file():
        raise DataError(f"{folder} is not a saved nasloop predictor (no {META_FILE}); "
                        "create one with 'nasloop fit-predictor --out PATH'")
    try:
        meta = json.loads(meta_file.read_text())
        name, params = meta["predictor"], dict(meta["params"])
    except KeyError as e:
        raise DataError(f"{meta_file} is corrupt (no {e.args[0]!r} entry); refit the "
                        "predictor") from None
    except (ValueError, TypeError, AttributeError) as e:
        raise DataError(f"{meta_file} is corrupt ({e}); refit the predictor") from None
    if meta.get("format") != FORMAT:
        raise DataError(f"{meta_file}: unknown format {meta.get('format')!r}")
    if meta.get("nasloop_version") != __version__:
        warnings.warn(f"{folder} was saved by nasloop {meta.get('nasloop_version')}, this is "
                      f"{__version__}; predictions may differ. Refit to be sure.", stacklevel=2)
    try:
        cls = get_predictor_class(name)
    except UnknownPredictorError as e:  # the name came from the file, not from the user
        raise DataError(f"{meta_file} names {e}; the folder is corrupt or from another "
                        "version: refit it") from None
    try:
        obj = cls(**params)
        obj._validate_params()  # parameters edited into the file are checked as --set's are
        obj._load_state(folder)
        obj.fitted_ = True
        # a state that loads but cannot answer (wrong shapes, NaN weights) is corrupt too
        if not np.all(np.isfinite(obj.predict([Arch((3,) * 6)]))):
            raise ValueError("it predicts a non-finite latency")
    except ConfigError as e:
        raise DataError(f"{meta_file}: {e}; the folder is corrupt: refit it") from None
    except NasloopError:
        raise
    except Exception as e:  # e.g. XGBoost's multi-line C++ error: keep its first line
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise DataError(f"cannot load predictor state from {folder} ({type(e).__name__}: "
                        f"{first}); the folder is corrupt: refit it with "
                        "'nasloop fit-predictor --out FOLDER'") from None
    obj.fit_info_ = meta.get("fit_info", {})
    return obj


def _whole(v: object, lo: int) -> bool:
    """``v`` is a whole number >= ``lo`` (a bool or a fraction is not)."""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= lo


def _require(owner: str, obj: object, checks: list[tuple[str, bool, str]]) -> None:
    """Raise a ConfigError for the first ``(parameter, valid?, what it must be)`` that
    fails: "owner: key must be rule, got value"."""
    for key, ok, rule in checks:
        if not ok:
            raise ConfigError(f"{owner}: {key} must be {rule}, got {getattr(obj, key)!r}")


def _flag(v: object) -> bool:
    """``v`` is true or false (``--set x=False`` arrives as the string 'False', which is
    truthy: refused, not read as true)."""
    return isinstance(v, (bool, np.bool_))


def _num(v: object) -> float:
    """``v`` as a float, NaN (which fails every comparison) when it is not a number."""
    ok = isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
    return float(v) if ok else math.nan


def _check_training(archs: Sequence[ArchLike], latencies: Sequence[float],
                    what: str) -> tuple[list[Arch], np.ndarray]:
    x = coerce_archs(archs)
    y = np.asarray(latencies, dtype=np.float64).reshape(-1)
    if len(x) != len(y):
        raise DataError(f"{what}: {len(x)} archs but {len(y)} latencies")
    if len(x) == 0:
        raise DataError(f"{what}: no cells to fit on")
    bad = np.flatnonzero(~np.isfinite(y) | (y <= 0))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{what} latency #{i} ({x[i]}) is {y[i]}: latencies must be positive "
                        f"finite ms ({bad.size} bad value(s))")
    return x, y


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("torch", "xgboost", "sklearn"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return out


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, float) and math.isnan(o):
        return None
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_json_state(folder: Path, state: dict) -> None:
    (folder / "state.json").write_text(json.dumps(state, default=_json_default))


def load_json_state(folder: Path) -> dict:
    try:
        return json.loads((folder / "state.json").read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{folder / 'state.json'} is missing or corrupt: {e}") from None
