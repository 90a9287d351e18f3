"""``transfer``: few-shot latency prediction for a new device from a pretrained factor model.

Pretrained on many latency tables (see :mod:`nasloop.transfer`), it needs only the few
cells it is fitted on: their log latencies fix the device's embedding by Bayesian linear
regression under the prior learned from the other devices. The model's columns include
additive op costs with and without dead ops, so with more cells the device's own additive
costs are learnt too. Beside it, a ridge regression on the pretraining tables' principal
components (the "regress on the other tables" view); the prediction is the weighted
geometric mean of the two (``table_weight``, 0 = the factor model alone). Nothing
depends on the device's name.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..space import Arch, arch_index
from .base import Predictor, _num, load_json_state, save_json_state
from .registry import register_predictor


@register_predictor("transfer")
class TransferPredictor(Predictor):
    """Few-shot: a device embedding fitted on a few cells over pretrained cell factors."""

    tags = {"stochastic": False, "iterative": False}

    def __init__(self, *, pretrained: str | None = None, noise_scale: float = 3.0,
                 table_weight: float = 0.5):
        self.pretrained = pretrained
        self.noise_scale = noise_scale
        self.table_weight = table_weight

    def _validate_params(self) -> None:
        if not _num(self.noise_scale) > 0:  # NaN (a bool, a string) fails too
            raise ConfigError(f"noise_scale must be > 0, got {self.noise_scale!r}")
        if not 0 <= _num(self.table_weight) <= 1:
            raise ConfigError(f"table_weight must be between 0 and 1, got {self.table_weight!r}")

    def _model(self):
        from ..transfer.pretrain import default_pretrained, load_pretrained

        return load_pretrained(self.pretrained) if self.pretrained else default_pretrained()

    def _fit(self, x, y, val, progress) -> None:
        from ..transfer.core import adapt, adapt_tables

        if val is not None:  # few-shot: every measured cell is evidence, none is held back
            x, y = list(x) + list(val[0]), np.concatenate([y, val[1]])
        pre = self._model()
        m = pre.model
        idx = np.fromiter((arch_index(a) for a in x), dtype=np.int64)
        ly = np.log(y)
        b, w = adapt(m, idx, ly, noise_scale=float(self.noise_scale))
        self.factors_ = m.factors
        self.offset_, self.weights_ = b, w
        view = adapt_tables(m, idx, ly) if self.table_weight > 0 else None
        # without table components (an older model) or with < 3 cells: the factor model alone
        self.table_factors_ = None if view is None else m.table_factors
        self.table_offset_, self.table_weights_ = (0.0, None) if view is None else view
        self.source_ = {"pretrained": str(pre.meta.get("path", "?")),
                        "tables": [s["name"] for s in pre.meta.get("sources", [])],
                        "ridge_view": view is not None}

    def _predict(self, x: list[Arch]) -> np.ndarray:
        idx = np.fromiter((arch_index(a) for a in x), dtype=np.int64)
        log_ms = self.offset_ + self.factors_[idx] @ self.weights_
        if self.table_factors_ is not None:
            ridge = self.table_offset_ + self.table_factors_[idx] @ self.table_weights_
            log_ms = (1 - self.table_weight) * log_ms + self.table_weight * ridge
        return np.exp(log_ms)

    def _save_state(self, folder: Path) -> None:
        arrays = {"factors": self.factors_.astype(np.float32)}
        if self.table_factors_ is not None:
            arrays["table_factors"] = self.table_factors_.astype(np.float32)
        np.savez_compressed(folder / "factors.npz", **arrays)
        save_json_state(folder, {
            "offset": self.offset_, "weights": self.weights_.tolist(), "source": self.source_,
            "table_offset": self.table_offset_,
            "table_weights": None if self.table_weights_ is None else self.table_weights_.tolist()})

    def _load_state(self, folder: Path) -> None:
        s = load_json_state(folder)
        try:
            with np.load(folder / "factors.npz", allow_pickle=False) as z:
                self.factors_ = np.asarray(z["factors"], dtype=np.float64)
                self.table_factors_ = (np.asarray(z["table_factors"], dtype=np.float64)
                                       if "table_factors" in z.files else None)
        except Exception as e:
            raise DataError(f"{folder / 'factors.npz'} is missing or corrupt ({type(e).__name__}); "
                            "refit the predictor") from None
        self.offset_ = float(s["offset"])
        self.weights_ = np.asarray(s["weights"], dtype=np.float64)
        self.source_ = s.get("source", {})
        self.table_offset_ = float(s.get("table_offset", 0.0))
        tw = s.get("table_weights")
        self.table_weights_ = None if tw is None else np.asarray(tw, dtype=np.float64)
        if (self.factors_.shape[1:] != self.weights_.shape
                or (self.table_factors_ is None) != (self.table_weights_ is None)
                or (self.table_factors_ is not None
                    and self.table_factors_.shape[1:] != self.table_weights_.shape)):
            raise DataError(f"{folder}: factors and weights disagree; refit the predictor")

