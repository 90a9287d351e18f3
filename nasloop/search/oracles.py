"""Latency oracles: anything that answers ``latency(archs) -> ms array``.

Three kinds, picked by a spec string through :func:`get_oracle` (optuna's
``get_storage`` idea: one normalising entry point):

* ``"true"``: the device's measured table (validation, and the upper bound of search);
* a path to a saved predictor folder;
* a registered predictor name, fitted on the spot on ``train`` seeded random measured
  cells of the device and cached on disk, so the next search on that device starts at once.

Predictor oracles predict the whole space once, in one batch, and answer from that array.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..data.tables import LatencyTable
from ..errors import ConfigError, DataError
from ..predictors import Predictor, list_predictors, load_predictor
from ..predictors.base import fair_test_hint
from ..splits import SplitSpec, fit_on_split, split_cells  # noqa: F401  (re-exported)
from ..space import (NUM_CELLS, Arch, ArchLike, arch_from_index, arch_index,
                     canonical_representatives, coerce_archs)

CACHE_ENV = "NASLOOP_CACHE"
#: the BRP-NAS GCN with nasloop's training recipe: fits in 1-2 min, about as accurate as
#: the paper's batch-1 recipe (10-15 min here); ``--oracle gcn`` gives the paper's
DEFAULT_ORACLE = "auto"


@dataclass(frozen=True)
class Calibration:
    """Measured cells the oracle's predictor did not train on, with their true latency.

    ``predicted_ms``, when given, are out-of-fold predictions of the same cells (the
    predictor was fitted on them, so its own answers there would be in-sample).
    """

    cells: tuple[Arch, ...]
    true_ms: tuple[float, ...]
    source: str = "validation cells of the oracle's split"
    predicted_ms: tuple[float, ...] | None = None


class LatencyOracle(ABC):
    """Answers the latency (ms) of cells; subclasses implement :meth:`_compute`."""

    name: str = "oracle"
    #: whether answers may be shared between isomorphic cells
    canonical_cache: bool = True
    #: whether answers are the true latencies themselves (no margin is ever needed)
    exact: bool = False
    #: cells held out from the predictor's fit, for a conformal margin (``--confidence``)
    calibration: Calibration | None = None
    #: cell index -> latency measured on the device: a search takes these as they are, with
    #: no margin (a predictor fitted on few cells need not reproduce them)
    measured: dict[int, float] | None = None

    def __init__(self) -> None:
        self._cache: dict[int, float] = {}  # by cell index (class representative)
        self.evaluations = 0  # distinct (canonical) cells computed

    def latency_all(self) -> np.ndarray:
        """The answer for every cell, in index order (a search asks for all of them at once)."""
        return self._by_index(list(range(NUM_CELLS)))

    def latency(self, archs: Sequence[ArchLike]) -> np.ndarray:
        return self._by_index([arch_index(a) for a in coerce_archs(archs)])

    def _by_index(self, keys: list[int]) -> np.ndarray:
        """Answers for cell indices, each computed once (per class with ``canonical_cache``)."""
        if self.canonical_cache:
            # every cell is answered by its class representative, so the answer does not
            # depend on which isomorph was asked first
            reps = canonical_representatives()
            keys = [int(reps[k]) for k in keys]
        todo: dict[int, Arch] = {}
        for k in keys:
            if k not in self._cache and k not in todo:
                todo[k] = arch_from_index(k)
        if todo:
            vals = self._compute(list(todo.values()))
            self._cache.update(zip(todo.keys(), (float(v) for v in vals)))
            self.evaluations += len(todo)
        return np.array([self._cache[k] for k in keys], dtype=np.float64)

    @abstractmethod
    def _compute(self, archs: list[Arch]) -> np.ndarray: ...


class TableOracle(LatencyOracle):
    """The measured table itself; unmeasured cells answer NaN."""

    canonical_cache = False  # each cell has its own measurement
    exact = True

    def __init__(self, table: LatencyTable):
        super().__init__()
        self.table = table
        self.name = "true"

    def _compute(self, archs: list[Arch]) -> np.ndarray:
        return self.table.lookup(archs)


class PredictorOracle(LatencyOracle):
    """A fitted :class:`~nasloop.predictors.Predictor`.

    With ``precompute`` (the default) the first question predicts one representative of
    every isomorphism class in a single batch (6,466 cells; about a second for the GCN) and
    every later answer is an array lookup. A search asks one cell per trial, and per-call
    model overhead would otherwise dominate it.

    Every cell gets the predictor's own answer for it: a predictor that sees dead ops
    (``auto``, ``prune_dead=false``) may rightly tell isomorphs apart, so answers are
    never shared across an isomorphism class (one predictor, one answer per arch).
    """

    canonical_cache = False

    def __init__(self, predictor: Predictor, name: str | None = None, precompute: bool = True):
        super().__init__()
        self.predictor = predictor
        self.name = name or predictor.name
        self.precompute = precompute
        self._all: np.ndarray | None = None

    def latency(self, archs: Sequence[ArchLike]) -> np.ndarray:
        if not self.precompute:
            return super().latency(archs)
        return self.predict_all()[[arch_index(a) for a in coerce_archs(archs)]]

    def latency_all(self) -> np.ndarray:
        return self.predict_all() if self.precompute else super().latency_all()

    def predict_all(self) -> np.ndarray:
        """Predicted latency of every cell (index order), in one batch."""
        if self._all is None:
            self._all = self._by_index(list(range(NUM_CELLS)))
            self._all.flags.writeable = False
        return self._all

    def _compute(self, archs: list[Arch]) -> np.ndarray:
        return self.predictor.predict(archs)


def default_cache_dir(cache_dir: str | Path | None = None) -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nasloop"


def fit_on_device(name: str, table: LatencyTable, *, train: int = 900, val: int = 100,
                  seed: int = 0, params: dict | None = None,
                  progress: Callable[[int, int, dict], None] | None = None
                  ) -> tuple[Predictor, dict]:
    """Fit predictor ``name`` on a seeded random split of ``table`` (see :mod:`nasloop.splits`)."""
    return fit_on_split(name, table, SplitSpec(train, val, seed), params=params, progress=progress)


@functools.lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    """A hash of the code a fitted predictor depends on: a cached oracle fitted by other
    code (say, ``auto`` before its refit) is not reused, even within one version."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted([*(root / "predictors").glob("*.py"), root / "graph.py",
                     root / "space.py", root / "splits.py", *(root / "transfer").glob("*.py")]):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def _cache_key(table: LatencyTable, name: str, params: dict, train: int, val: int, seed: int) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(table.latency_ms).tobytes())
    h.update(json.dumps([name, params, train, val, seed, __version__, _code_fingerprint()],
                        sort_keys=True, default=str).encode())
    return h.hexdigest()[:20]


def oracle_label(spec: str | None) -> str:
    """The name an oracle spec gets (as recorded in a study), known before any fitting."""
    spec = spec or DEFAULT_ORACLE
    if spec != "true" and Path(spec).expanduser().exists():
        return f"file:{Path(spec).expanduser().name}"
    return spec


def oracle_split(table: LatencyTable, train: int | None, val: int = 100) -> tuple[int, int]:
    """``(train, val)`` cells for a predictor oracle on ``table``: ``train`` (default 900)
    and ``val`` validation cells, fewer on a small table (a user's board): by default a
    tenth of its cells (at least one) validates, the rest trains; the validation cells
    are whatever ``train`` leaves, up to ``val``."""
    n = len(table.cells())
    hold = max(1, min(val, n // 10))
    if train is None:
        train = min(900, n - hold)
    if train < 1 or train >= n:
        raise ConfigError(f"--train {train}: {table.name} has {n} measured cells, and a "
                          f"predictor oracle keeps at least one to validate on; give --train "
                          f"{max(1, n - 1)} or fewer ({max(1, n - hold)} keeps a tenth), or "
                          "--oracle true")
    return int(train), int(min(val, n - train))


def get_oracle(spec: str | None, table: LatencyTable, *, train: int | None = 900, val: int = 100,
               seed: int = 0, params: dict | None = None, cache_dir: str | Path | None = None,
               use_cache: bool = True,
               progress: Callable[[int, int, dict], None] | None = None) -> LatencyOracle:
    """Turn an oracle spec (``true``, a predictor folder, a predictor name) into an oracle.
    A name is fitted on :func:`oracle_split`'s cells (``train=None``: as many as fit)."""
    spec = spec or DEFAULT_ORACLE
    if isinstance(spec, LatencyOracle):
        return spec
    if spec == "true":
        return TableOracle(table)
    path = Path(spec).expanduser()
    if path.exists():
        pred = load_predictor(path)
        fitted_on = getattr(pred, "fit_info_", {}).get("device")
        if fitted_on and fitted_on != table.name:  # allowed (a transfer), never silent
            warnings.warn(f"--oracle {spec} was fitted on {fitted_on}; its latencies are "
                          f"{fitted_on}'s, not {table.name}'s (the true checks read "
                          f"{table.name})", stacklevel=2)
        return PredictorOracle(pred, name=oracle_label(spec))
    if spec not in list_predictors():
        names = ", ".join(list_predictors())
        raise ConfigError(f"unknown oracle {spec!r}: use 'true', the folder of a saved predictor, "
                          f"or a predictor name ({names})")
    params = dict(params or {})
    train, val = oracle_split(table, train, val)
    calibration = _validation_calibration(table, train, val, seed)
    name = table.name.replace(os.sep, "_").replace("/", "_")  # a board named by its path
    folder = default_cache_dir(cache_dir) / f"{spec}-{name}-{_cache_key(table, spec, params, train, val, seed)}"
    if use_cache and (folder / "meta.json").is_file():
        try:
            cached = PredictorOracle(load_predictor(folder), name=spec)
            cached.calibration = calibration
            _warn_if_seen(cached.predictor, table.name, spec)
            return cached
        except DataError:
            pass  # a corrupt cache entry is refitted below
    pred, info = fit_on_device(spec, table, train=train, val=val, seed=seed, params=params,
                               progress=progress)
    _warn_if_seen(pred, table.name, spec)
    try:
        pred.save(folder, **info)
    except OSError as e:  # a read-only cache must not stop the search, but is named
        warnings.warn(f"--cache-dir {default_cache_dir(cache_dir)}: could not keep the fitted "
                      f"predictor there ({e.strerror or e}); it will be refitted next time: "
                      "give a writable --cache-dir", stacklevel=2)
    fitted = PredictorOracle(pred, name=spec)
    fitted.calibration = calibration
    return fitted


def _warn_if_seen(pred: Predictor, device: str, spec: str) -> None:
    """An oracle whose pretrained part learnt this device's table predicts it better than
    it would a new device: the search is easier than a user's would be; say so."""
    if device in pred.pretraining_tables():
        warnings.warn(f"--oracle {spec} on {device}: its pretrained transfer model has seen "
                      f"{device}'s own table, so it predicts better here than on a new device; "
                      f"for a fair test, {fair_test_hint(device)}", stacklevel=3)


def _validation_calibration(table: LatencyTable, train: int, val: int, seed: int
                            ) -> Calibration | None:
    """The validation cells of the split a predictor oracle is fitted on (none: None);
    ``train + val`` fits the table (:func:`oracle_split`)."""
    if val < 1:
        return None
    _, va, _ = split_cells(table, train, val, seed)
    return Calibration(tuple(va), tuple(float(v) for v in table.lookup(va)))


def calibration_cells_needed(confidence: float) -> int:
    """The fewest calibration cells a split-conformal margin at ``confidence`` can use."""
    n = 1
    while math.ceil((n + 1) * confidence) > n:
        n += 1
    return n


def conformal_margin(oracle: LatencyOracle, confidence: float) -> float:
    """Split-conformal safety factor: ``true <= margin * predicted`` with ``confidence``.

    The residuals are ``log(true / predicted)`` on the oracle's calibration cells; the
    factor is ``exp`` of their ceil((n + 1) * confidence)-th smallest value, so that a new
    cell exchangeable with them meets ``true <= margin * predicted`` with probability at
    least ``confidence`` (Vovk et al.; Lei et al. 2018). An exact oracle needs none (1.0).
    """
    if not 0 < confidence < 1:
        raise ConfigError(f"--confidence {confidence:g}: give a probability between 0 and 1, "
                          "e.g. 0.95")
    if oracle.exact:
        return 1.0
    cal = oracle.calibration
    if cal is None or not cal.cells:
        raise ConfigError(f"--confidence needs held-out cells to calibrate oracle {oracle.name!r} "
                          "on: use a predictor name as --oracle (fitted here with --val cells "
                          "held out), not a saved folder")
    pred = np.asarray(cal.predicted_ms if cal.predicted_ms is not None
                      else oracle.latency(list(cal.cells)), dtype=np.float64)
    true = np.asarray(cal.true_ms, dtype=np.float64)
    ok = np.isfinite(pred) & np.isfinite(true) & (pred > 0) & (true > 0)
    r = np.sort(np.log(true[ok] / pred[ok]))
    n = len(r)
    k = math.ceil((n + 1) * confidence)
    if k > n:
        need = calibration_cells_needed(confidence)
        raise ConfigError(f"--confidence {confidence:g} needs at least {need} calibration cells, "
                          f"the oracle has {n}; lower --confidence or calibrate on more cells "
                          "(--val, or --train with --device cpu/cuda)")
    return float(np.exp(r[k - 1]))
