"""``transfer``: few-shot latency prediction for a new device from a pretrained factor model.

Pretrained on many latency tables (see :mod:`nasloop.transfer`), it needs only the few
cells it is fitted on: their log latencies fix the device's embedding by Bayesian linear
regression under the prior learned from the other devices (``prior="mixture"``: a
component per pretraining device and one for their population, weighted by how well each
explains the cells; ``"population"``: the population's alone, as before session 10). The model's columns include
additive op costs with and without dead ops, so with more cells the device's own additive
costs are learnt too. Beside it, a ridge regression on the pretraining tables' principal
components (the "regress on the other tables" view); the prediction is the weighted
geometric mean of the two (``table_weight``, 0 = the factor model alone). With
``select=True`` an additive model fitted from scratch replaces both when cross-validation
on the fitted cells prefers it. Nothing depends on the device's name.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..space import Arch, arch_index
from .base import Predictor, _num, cross_val_predict, load_json_state, save_json_state
from .registry import register_predictor


#: ``select=True``: the additive models that may replace the transfer model, the folds and
#: the margin of the choice, and the fewest cells it is tried on
SELECT_CANDIDATES = ("layerwise", "linear")
SELECT_FOLDS, SELECT_MARGIN, SELECT_MIN_CELLS = 10, 0.1, 10


@register_predictor("transfer")
class TransferPredictor(Predictor):
    """Few-shot: a device embedding fitted on a few cells over pretrained cell factors."""

    tags = {"stochastic": False, "iterative": False}

    def __init__(self, *, pretrained: str | None = None, noise_scale: float = 3.0,
                 table_weight: float = 0.5, select: bool = False, prior: str = "mixture"):
        self.pretrained = pretrained
        self.noise_scale = noise_scale
        self.table_weight = table_weight
        self.select = select
        self.prior = prior

    def _validate_params(self) -> None:
        if not _num(self.noise_scale) > 0:  # NaN (a bool, a string) fails too
            raise ConfigError(f"noise_scale must be > 0, got {self.noise_scale!r}")
        if not 0 <= _num(self.table_weight) <= 1:
            raise ConfigError(f"table_weight must be between 0 and 1, got {self.table_weight!r}")
        if not isinstance(self.select, (bool, np.bool_)):
            raise ConfigError(f"select must be true or false, got {self.select!r}")
        from ..transfer.core import PRIORS

        if self.prior not in PRIORS:
            raise ConfigError(f"prior must be one of {', '.join(PRIORS)}, got {self.prior!r}")

    def _model(self):
        from ..transfer.pretrain import default_pretrained, load_pretrained

        return load_pretrained(self.pretrained) if self.pretrained else default_pretrained()

    def _fit(self, x, y, val, progress) -> None:
        from ..transfer.core import adapt_mixture, adapt_tables

        if val is not None:  # few-shot: every measured cell is evidence, none is held back
            x, y = list(x) + list(val[0]), np.concatenate([y, val[1]])
        pre = self._model()
        m = pre.model
        idx = np.fromiter((arch_index(a) for a in x), dtype=np.int64)
        ly = np.log(y)
        b, w, resp = adapt_mixture(m, idx, ly, noise_scale=float(self.noise_scale),
                                   prior=self.prior)
        self.factors_ = m.factors
        self.offset_, self.weights_ = b, w
        view = adapt_tables(m, idx, ly) if self.table_weight > 0 else None
        # without table components (an older model) or with < 3 cells: the factor model alone
        self.table_factors_ = None if view is None else m.table_factors
        self.table_offset_, self.table_weights_ = (0.0, None) if view is None else view
        self.source_ = {"pretrained": str(pre.meta.get("path", "?")),
                        "tables": [s["name"] for s in pre.meta.get("sources", [])],
                        "ridge_view": view is not None,
                        "prior": self.prior if len(resp) else "population"}
        names = [s["name"] for s in pre.meta.get("sources", [])]
        if len(resp) and len(names) == len(resp):  # which seen devices this one resembles
            top = np.argsort(-resp, kind="stable")[:3]
            self.source_["nearest_tables"] = {names[i]: round(float(resp[i]), 3) for i in top
                                              if resp[i] >= 0.01}
            self.source_["population_weight"] = round(max(float(1 - resp.sum()), 0.0), 3)
        self.member_ = None
        if self.select and len(x) >= SELECT_MIN_CELLS:
            self._select(list(x), np.asarray(y, dtype=np.float64))

    def _select(self, x: list[Arch], y: np.ndarray) -> None:
        """Give way to an additive model fitted from scratch when CV on the cells says so.

        On nearly additive devices (the HELP GPUs) ``layerwise`` or ``linear`` on 50 cells
        calibrates better than the pretrained prior (benchmarks/transfer_select.py).
        Each candidate's 10-fold mean |log error| on the fitted cells is compared; the
        transfer model is kept unless another is 10 % lower.
        """
        from .registry import create_predictor

        k = min(SELECT_FOLDS, len(x))
        errors: dict[str, float] = {}
        for name in ("transfer", *SELECT_CANDIDATES):
            template = (TransferPredictor(**{**self.get_params(), "select": False})
                        if name == "transfer" else create_predictor(name))
            try:
                pred = cross_val_predict(template, x, y, folds=k, seed=0)
                errors[name] = float(np.mean(np.abs(np.log(np.maximum(pred, 1e-6) / y))))
            except Exception:  # a candidate that cannot fit these cells is not chosen
                errors[name] = float("inf")
        best = min(SELECT_CANDIDATES, key=lambda c: errors[c])
        chosen = best if errors[best] < errors["transfer"] * (1 - SELECT_MARGIN) else "transfer"
        if chosen != "transfer":
            self.member_ = create_predictor(chosen).fit(x, y)
        self.source_["selection"] = {"chosen": chosen, "cv_log_error": errors,
                                     "folds": k, "margin": SELECT_MARGIN}

    def pretraining_tables(self) -> set[str]:
        if getattr(self, "member_", None) is not None:  # an additive model from scratch
            return set()
        return set(getattr(self, "source_", {}).get("tables", []))

    def _predict(self, x: list[Arch]) -> np.ndarray:
        if getattr(self, "member_", None) is not None:
            return self.member_.predict(x)
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
        if getattr(self, "member_", None) is not None:
            self.member_.save(folder / "member")
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
        if "prior" not in self.source_:  # fitted before the mixture prior (session 10)
            self.prior = "population"
        chosen = self.source_.get("selection", {}).get("chosen", "transfer")
        self.member_ = None
        if chosen != "transfer":
            from .base import load_predictor
            self.member_ = load_predictor(folder / "member")
            if self.member_.name != chosen:
                raise DataError(f"{folder}: the saved member is {self.member_.name!r}, the "
                                f"state says {chosen!r}; refit the predictor")
        self.table_offset_ = float(s.get("table_offset", 0.0))
        tw = s.get("table_weights")
        self.table_weights_ = None if tw is None else np.asarray(tw, dtype=np.float64)
        if (self.factors_.shape[1:] != self.weights_.shape
                or (self.table_factors_ is None) != (self.table_weights_ is None)
                or (self.table_factors_ is not None
                    and self.table_factors_.shape[1:] != self.table_weights_.shape)):
            raise DataError(f"{folder}: factors and weights disagree; refit the predictor")

