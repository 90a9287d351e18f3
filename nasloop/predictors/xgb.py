"""Gradient-boosted trees (XGBoost) on the paper's one-hot op encoding."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..space import Arch
from .base import Predictor, _num, _require, _whole
from .features import onehot, rich
from .registry import register_predictor


@register_predictor("xgboost")
class XGBoostPredictor(Predictor):
    """XGBoost regressor; ``features="onehot"`` (paper) or ``"rich"`` (live edges, FLOPs)."""

    tags = {"stochastic": True, "iterative": False}

    # n_jobs=1: on a busy machine OpenMP threads wait on each other. At load 3 on the 2-core
    # VM a 900-cell fit took 0.24 s with one thread against 0.61 s with two
    # (``benchmarks/threads.py``, session 17), and ``auto`` fits XGBoost beside its GCN
    # workers, which makes such a machine. The predictions are the same either way
    def __init__(self, *, n_estimators: int = 500, max_depth: int = 6, learning_rate: float = 0.05,
                 subsample: float = 0.9, features: str = "onehot", seed: int = 0, n_jobs: int = 1):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.features = features
        self.seed = seed
        self.n_jobs = n_jobs

    def _validate_params(self) -> None:
        if self.features not in ("onehot", "rich"):
            raise ConfigError(f"features must be 'onehot' or 'rich', got {self.features!r}")
        checks = [("n_estimators", _whole(self.n_estimators, 1), "a whole number >= 1"),
                  ("max_depth", _whole(self.max_depth, 0), "a whole number >= 0"),
                  ("learning_rate", _num(self.learning_rate) > 0, "a number > 0"),
                  ("subsample", 0 < _num(self.subsample) <= 1, "a number in (0, 1]"),
                  ("seed", _whole(self.seed, 0) and self.seed < 2**32, "a whole number in [0, 2**32)"),
                  ("n_jobs", _whole(self.n_jobs, 1), "a whole number >= 1")]
        _require("xgboost", self, checks)

    def _x(self, x: list[Arch]) -> np.ndarray:
        return onehot(x) if self.features == "onehot" else rich(x)

    def _fit(self, x, y, val, progress) -> None:
        import xgboost as xgb

        callbacks = []
        if progress is not None:  # a long fit shows its trees, like the GCN its epochs
            total = int(self.n_estimators)

            class _Progress(xgb.callback.TrainingCallback):
                def after_iteration(self, model, epoch: int, evals_log) -> bool:
                    progress(epoch + 1, total, {})
                    return False  # never stop early

            callbacks.append(_Progress())
        self.model_ = xgb.XGBRegressor(
            n_estimators=int(self.n_estimators), max_depth=int(self.max_depth),
            learning_rate=float(self.learning_rate), subsample=float(self.subsample),
            random_state=int(self.seed), n_jobs=int(self.n_jobs), tree_method="hist",
            callbacks=callbacks or None)
        try:
            self.model_.fit(self._x(x), y)
        finally:  # the callback holds the caller's progress bar: not part of the model
            self.model_.callbacks = None

    def _predict(self, x: list[Arch]) -> np.ndarray:
        return self.model_.predict(self._x(x))

    def _save_state(self, folder: Path) -> None:
        self.model_.save_model(str(folder / "model.json"))  # XGBoost's own JSON: no code

    def _load_state(self, folder: Path) -> None:
        import xgboost as xgb

        self.model_ = xgb.XGBRegressor()
        self.model_.load_model(str(folder / "model.json"))
