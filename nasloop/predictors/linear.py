"""Least-squares baselines: ``linear`` on the one-hot encoding, ``flops`` on FLOPs/params."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..space import Arch
from .base import Predictor, load_json_state, save_json_state
from .features import flops_params, onehot
from .registry import register_predictor


class _LeastSquares(Predictor):
    """Ordinary least squares with intercept (optionally ridge) on a fixed feature map."""

    tags = {"stochastic": False, "iterative": False}

    def __init__(self, *, ridge: float = 1e-6):
        self.ridge = ridge

    def _features(self, x: list[Arch]) -> np.ndarray:
        raise NotImplementedError

    def _validate_params(self) -> None:
        if (not isinstance(self.ridge, (int, float)) or isinstance(self.ridge, bool)
                or not np.isfinite(self.ridge) or self.ridge < 0):
            raise ConfigError(f"ridge must be a number >= 0, got {self.ridge!r}")

    def _design(self, x: list[Arch]) -> np.ndarray:
        f = self._features(x)
        return np.concatenate([f, np.ones((len(f), 1))], axis=1)

    def _fit(self, x, y, val, progress) -> None:
        a = self._design(x)
        reg = float(self.ridge) * np.eye(a.shape[1])
        reg[-1, -1] = 0.0  # never shrink the intercept
        self.coef_ = np.linalg.solve(a.T @ a + reg, a.T @ y)

    def _predict(self, x: list[Arch]) -> np.ndarray:
        return self._design(x) @ self.coef_

    def _save_state(self, folder: Path) -> None:
        save_json_state(folder, {"coef": self.coef_.tolist()})

    def _load_state(self, folder: Path) -> None:
        self.coef_ = np.asarray(load_json_state(folder)["coef"], dtype=np.float64)


@register_predictor("linear")
class LinearPredictor(_LeastSquares):
    """Linear regression on the one-hot op encoding (the paper's baseline)."""

    def _features(self, x: list[Arch]) -> np.ndarray:
        return onehot(x)


@register_predictor("flops")
class FlopsPredictor(_LeastSquares):
    """Latency as a linear function of FLOPs and parameters: the proxy of the paper's Fig. 1."""

    def _features(self, x: list[Arch]) -> np.ndarray:
        return flops_params(x)
