"""Layer-wise latency: a per-layer cost table summed over the network (ProxylessNAS style).

Two ways to get the per-layer costs:

* ``profile=None`` (benchmark tables, where no layer can be timed): the costs of each
  (stage, op) pair plus a fixed cost for stem, reductions and head are *estimated from the
  training cells* by non-negative least squares over the (stage, op) counts. Because every
  stage repeats the same cell, only the per-op sums over stages are identifiable; the fit
  still yields a valid non-negative table and the predictions are what matter.
* ``profile="cpu"`` / ``"cuda"`` (a device nasloop can run): every distinct layer (stem,
  each op at each stage width, the reduction blocks, the head) is timed in isolation on
  the device and summed; training data are not used at all, unless ``calibrate=True``:
  then one scale and one offset are fitted on the training cells by least squares, to
  absorb what isolated layers leave out (node additions, ``none`` multiplies, call overhead).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..space import Arch
from .base import Predictor, _flag, _require, _whole, load_json_state, save_json_state
from .features import LAYER_OPS, stage_op_counts
from .registry import register_predictor


@register_predictor("layerwise")
class LayerwisePredictor(Predictor):
    """Sum of per-layer latencies; costs fitted by NNLS or profiled on the device."""

    tags = {"stochastic": False, "iterative": False}

    def __init__(self, *, profile: str | None = None, repeats: int = 30, threads: int | None = None,
                 calibrate: bool = False):
        self.profile = profile
        self.repeats = repeats
        self.threads = threads
        self.calibrate = calibrate

    def _validate_params(self) -> None:
        if self.profile not in (None, "cpu", "cuda"):
            raise ConfigError(f"profile must be None, 'cpu' or 'cuda', got {self.profile!r}")
        checks = [("repeats", _whole(self.repeats, 1), "a whole number >= 1"),
                  ("threads", self.threads is None or _whole(self.threads, 1),
                   "null or a whole number >= 1"),
                  ("calibrate", _flag(self.calibrate), "true or false")]
        _require("layerwise", self, checks)

    def _fit(self, x, y, val, progress) -> None:
        if self.profile is None:
            from sklearn.linear_model import LinearRegression

            lr = LinearRegression(positive=True).fit(stage_op_counts(x), y)
            self.layer_ms_ = np.asarray(lr.coef_, dtype=np.float64)
            self.fixed_ms_ = float(max(lr.intercept_, 0.0))
        else:
            from ..measure.profile import profile_layers

            table = profile_layers(self.profile, repeats=self.repeats, threads=self.threads,
                                   progress=progress)
            self.layer_ms_ = np.array([table[f"stage{s}/{op}"] for s in range(3) for op in LAYER_OPS])
            # each op's count is already per-cell * 5 cells in stage_op_counts
            self.fixed_ms_ = float(table["fixed"])
            self.profile_table_ = table
        self.scale_, self.offset_ = 1.0, 0.0
        if self.profile is not None and self.calibrate:
            raw = self._raw(x)
            a, b = np.polyfit(raw, np.asarray(y, dtype=np.float64), 1)
            if a > 0:  # a negative slope would invert the ranking: keep the plain sum
                self.scale_, self.offset_ = float(a), float(b)

    def _raw(self, x: list[Arch]) -> np.ndarray:
        return stage_op_counts(x) @ self.layer_ms_ + self.fixed_ms_

    def _predict(self, x: list[Arch]) -> np.ndarray:
        return self._raw(x) * self.scale_ + self.offset_

    def _save_state(self, folder: Path) -> None:
        save_json_state(folder, {"layer_ms": self.layer_ms_.tolist(), "fixed_ms": self.fixed_ms_,
                                 "scale": self.scale_, "offset": self.offset_,
                                 "profile_table": getattr(self, "profile_table_", None)})

    def _load_state(self, folder: Path) -> None:
        s = load_json_state(folder)
        self.layer_ms_ = np.asarray(s["layer_ms"], dtype=np.float64)
        self.fixed_ms_ = float(s["fixed_ms"])
        self.scale_, self.offset_ = float(s.get("scale", 1.0)), float(s.get("offset", 0.0))
        if s.get("profile_table"):
            self.profile_table_ = s["profile_table"]
