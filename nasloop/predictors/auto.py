"""``auto``: the default predictor, chosen per device from the device's own cells.

Devices differ: on some, latency is close to additive over the ops (a linear model is
near perfect), on others dead ops cost nothing and ops interact (the GCN wins). No single
backend is best everywhere, and nothing about a device but its measured cells may decide.
So ``auto`` fits every candidate backend on the training cells, scores each on the
validation cells (which no candidate has seen: the GCNs early-stop on a slice of the
training cells), and keeps the best one, or a blend of the best two where the blend
scores better on validation (hedged: the second member keeps half the weight chosen) and
leaves no fewer validation cells within 10 %.
The criterion is the mean absolute log error (about the mean relative error, what the %
within 1/5/10 metrics reward). Once chosen, each member
is refitted on the training and validation cells together (``refit=True``; a GCN then
early-stops on a fresh tenth of them): the choice needs the validation cells unseen, the
final model does not. With ``pair=True`` a stochastic member (a GCN) keeps the model
fitted for the choice beside its refit and predicts their geometric mean: two trainings
of the same network average out part of each one's variance, and the first is already
paid for. With few labelled cells (below ``transfer_below``) the choice is made out of
fold on all of them, and the pretrained ``transfer`` model is a candidate too, kept first
unless a backend fitted from scratch scores ``transfer_margin`` lower (and even then kept
in a blend, ``transfer_share``): it has learnt from other devices what 20 cells cannot
teach. On more cells (``transfer_blend``) the choice is blended with ``transfer`` when the
validation cells prefer the blend: a model of this device's cells and one of the other
devices' tables err on different networks. What was tried, the validation scores and the
choice are saved in the predictor's ``state.json`` and reported in ``choice_``.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..metrics import class_log_loss, latency_metrics, log_loss, within
from ..space import Arch, network_ids
from .base import Predictor, _num, cross_val_predict, load_json_state, save_json_state
from .pool import FitJob, default_workers, fit_all, quick_fits, side_by_side
from .registry import create_predictor, register_predictor

#: what ``auto`` tries by default: name -> (registered backend, parameters)
DEFAULT_CANDIDATES: dict[str, tuple[str, dict[str, Any]]] = {
    "linear": ("linear", {}),
    "layerwise": ("layerwise", {}),
    "xgboost": ("xgboost", {}),
    # a moving average over 10 epochs, not gcn_plus's 5: validation log error 0.49 % lower
    # over 24 runs (``benchmarks/gcn_ema.py``, session 11), affordable since the GCN fits
    # and their refits run side by side (``workers``, session 13)
    "gcn_plus": ("gcn_plus", {"ema": 10}),
    # batch 32 for speed: on help_silver_4114 seed 0 its validation log error matches
    # batch 4's (MAPE 7.67 vs 7.61 %) at half the fit time; acc_10 favours batch 4 (66 vs
    # 71 %). docs/results.md, "What changed"
    "gcn_residual": ("gcn_plus", {"prune_dead": False, "base": "linear", "batch_size": 32,
                                  "lr": 3e-3, "ema": 10}),
    # dead op nodes kept, their messages gated by a learned weight (``dead_gate``): on
    # help_pixel3 (dead ops cost time, latency far from additive) validation log error
    # 45-60 % below both other GCNs; batch 32 as gcn_residual, about 20 s a fit
    # (``benchmarks/gcn_ema.py``, session 14)
    "gcn_gated": ("gcn_plus", {"prune_dead": False, "dead_gate": True, "batch_size": 32,
                               "lr": 3e-3, "ema": 10}),
}
#: blend weights tried for the best two candidates (geometric mean of predictions)
BLEND_WEIGHTS = tuple(np.round(np.linspace(0.1, 0.9, 9), 2))
#: a blend is kept only when it lowers the validation loss by this fraction
BLEND_MARGIN = 0.02
#: the kept blend's second member gets this share of the weight chosen on validation (the
#: rest goes to the best candidate): a weight fitted on 100 cells overfits them, and a
#: partner that fails on networks unlike the validation cells costs less. Chosen over
#: never blending, wider margins, a bootstrap test and a 0.1 cap on the 31 runs where the
#: old rule blended, both splits (``benchmarks/blend_rule.py``; docs/results.md)
BLEND_SHRINK = 0.5
#: a kept blend must leave at least as many validation cells within this relative error
#: as the best candidate alone: over the 31 blended runs of ``benchmarks/blend_rule.py``
#: (rule ``half_acc10``) it dropped 4 grouped-split blends, acc_10 +0.42 on average and
#: the worst loss against never blending 8.5 points instead of 10.6 (session 12)
ACC_BOUND = 0.10
#: folds of the small-data choice (fewer than ``cv_below`` labelled cells)
CV_FOLDS = 5
#: below this many labelled cells ``transfer`` (a factor model pretrained on other devices'
#: tables) joins the default candidates, when a pretrained model is at hand (the shipped
#: one, or ``pretrained=PATH``). With 10-100 cells it
#: ranks and calibrates far better than any backend fitted from scratch (leave one family
#: out: docs/results.md, "`auto` with `transfer` on few cells"); at 900 cells it is below
#: them on most tables (its factor basis caps it), so there it is not a candidate; it is
#: tried beside the choice instead (``transfer_blend``)
TRANSFER_BELOW = 200
#: ``transfer`` stays first unless a candidate fitted from scratch scores this fraction
#: lower: out-of-fold scores on 10-20 cells are noisy, and a lucky fold can hand the choice
#: to a model of 10 cells over one that learnt from 28 other devices (the same margin as
#: ``transfer``'s own ``select``)
TRANSFER_MARGIN = 0.1
#: when a candidate fitted from scratch still leads the few-cell choice, it is blended with
#: ``transfer`` (geometric mean), ``transfer`` weighing this much: on 10-20 cells a lucky
#: fold can crown a model that ranks the device's networks at random (mobile_dsp_685, 10
#: cells: ``linear``, Spearman 0.20; edgetpu_large, 20 cells: 0.03-0.09), and the
#: pretrained half bounds that loss. Over the leave-one-family-out draws (81 per K) mean
#: Spearman 0.921 -> 0.935 (10 cells) and 0.944 -> 0.951 (20), acc_10 -1.1 / -0.3
#: points, 50 cells unchanged; `auto` is then above ``transfer`` alone on both at every K
#: (``benchmarks/small_choice.py``; docs/results.md, session 19). 0: the leader alone, or
#: the usual blend
TRANSFER_SHARE = 0.5
#: on ``transfer_below`` or more labelled cells the choice (one backend or a blend) is
#: blended with the pretrained ``transfer`` model where the validation cells say so (the
#: weight with the lowest validation log error, kept if it beats the choice alone by
#: ``BLEND_MARGIN`` and leaves as many validation cells within 10 %): the factor model
#: learnt from other devices errs elsewhere than a model of this device's 900 cells
#: (``benchmarks/transfer_blend.py``; docs/results.md, session 20)
TRANSFER_BLEND = True
#: after that blend, the prediction is held within a band of ``transfer``'s (log units:
#: 0.1 keeps it within about 10 % of it) where the validation cells say so (the band with
#: the lowest validation log error, the widest on ties, kept on the same margin and 10 %
#: check): the model of this device's cells is right on most networks, but where it is
#: far off the other devices' tables know better. On the BRP-NAS phone tables its rare
#: large misses cost it the ranking (Spearman 0.962 against ``transfer``'s 0.980 on
#: mobile_cpu_a53); within a band of 0.1 it ranks 0.979 and keeps 96.1 % of test cells
#: within 10 % (``benchmarks/transfer_blend.py``; docs/results.md, session 21)
TRANSFER_BAND = True
#: the bands tried (log units)
TRANSFER_BANDS = (0.05, 0.1, 0.15, 0.2, 0.3)
#: ``transfer``'s weight set apart for cells whose network (canonical key) is among the
#: labelled cells and for the rest, where the validation cells of each kind say so (each
#: kind's weight kept on the margin and the 10 % check against the one weight, and the
#: whole kept only if its validation error, band included, is the lower): on a network it
#: has seen, the model of this device's cells is at the isomorphs' own spread, and on
#: one it has not, the other devices' tables have timed it. Replayed on 42 recorded fits
#: (random split): desktop_gpu acc_1 / acc_5 38.7 / 92.3 -> 46.3 / 93.7, no run lower by
#: more than 0.06 of acc_10 (docs/results.md, session 21)
TRANSFER_KINDS = True
#: a kind needs this many validation cells for a weight of its own
KIND_MIN = 20
#: keep a refitted stochastic member's choice-stage model beside its refit, averaged
#: (``benchmarks/refit_pair.py``; docs/results.md, "The refit pair")
PAIR = True
#: refit an iterative member on every labelled cell, replaying the epochs and lr halvings
#: its choice-stage fit early-stopped at, instead of holding a tenth out to stop on
REFIT_ALL = False


#: a stochastic member's refit that fits the labelled cells worse than its choice-stage
#: model predicted the validation cells is dropped for that model (``_failed_refits``)
REFIT_CHECK = True

#: no member prediction below this share of the smallest labelled latency enters a blend
FLOOR_SHARE = 0.5
#: members whose predictions are floored: ``transfer`` predicts in log space (always > 0),
#: and from few cells the smallest labelled latency is far above the fastest networks'
UNFLOORED = ("transfer",)


def geometric_blend(preds: list[np.ndarray], weights: list[float],
                    floor: float | list[float] = 1e-9) -> np.ndarray:
    """The weighted geometric mean of predictions: how ``auto`` blends its members.

    Each prediction is raised to ``floor`` first (one value, or one per member). ``auto``
    passes half its smallest labelled latency, so none of its predictions goes below that:
    a member that predicts 0 or less for a cell (XGBoost and linear fit latency itself,
    and can) would otherwise enter the mean as 1e-9 ms and divide the blend by about 3 on
    that cell even at a 0.05 share (session 12: 3.6 % of XGBoost's predictions on
    edgetpu_large). A ``transfer`` member is not floored (``UNFLOORED``).
    """
    floors = floor if isinstance(floor, (list, tuple)) else [floor] * len(preds)
    return np.exp(sum(w * np.log(np.maximum(p, f)) for p, w, f in zip(preds, weights, floors)))


def grid_blend(vy: np.ndarray, a: np.ndarray, b: np.ndarray,
               floors: list[float] | None = None) -> tuple[float, float]:
    """``(log loss, weight of a)`` of the geometric blend of ``a`` and ``b`` with the lowest
    log loss against ``vy``, ``a``'s weight on the ``BLEND_WEIGHTS`` grid: how ``auto``
    weighs the best two candidates, and its choice against ``transfer``."""
    return min((log_loss(vy, geometric_blend([a, b], [w, 1 - w], floors or 1e-9)), float(w))
               for w in BLEND_WEIGHTS)


def band_clip(pred: np.ndarray, anchor: np.ndarray, band: float) -> np.ndarray:
    """``pred`` held within a factor ``exp(band)`` of ``anchor``, either way: how ``auto``
    keeps its prediction near ``transfer``'s (``transfer_band``)."""
    anchor = np.asarray(anchor, dtype=np.float64)
    gap = np.log(np.maximum(np.asarray(pred, dtype=np.float64), 1e-12) / anchor)
    return anchor * np.exp(np.clip(gap, -band, band))


def grid_band(vy: np.ndarray, pred: np.ndarray, anchor: np.ndarray, min_within: int = 0
              ) -> tuple[float, float] | None:
    """``(log loss, band)`` of the band on the ``TRANSFER_BANDS`` grid with the lowest log
    loss against ``vy`` (the widest on ties) among those leaving at least ``min_within``
    cells within ``ACC_BOUND``; None when none does."""
    ok = [(log_loss(vy, c), -b) for b in TRANSFER_BANDS
          if within(vy, c := band_clip(pred, anchor, b), ACC_BOUND).sum() >= min_within]
    return (min(ok)[0], -min(ok)[1]) if ok else None


def keep_band(vy: np.ndarray, now: np.ndarray, now_loss: float, anchor: np.ndarray,
              record: dict | None = None) -> tuple[float | None, float]:
    """The band around ``anchor`` kept for the prediction ``now`` (None: none) and the
    validation loss after it: the best of those leaving as many validation cells within
    ``ACC_BOUND`` as ``now`` (:func:`grid_band`), kept on ``BLEND_MARGIN``; the check is
    written into ``record``."""
    n_now = int(within(vy, now, ACC_BOUND).sum())
    found = grid_band(vy, now, anchor, n_now)
    b_loss, band = found or (None, None)
    b_kept = found is not None and b_loss < now_loss * (1 - BLEND_MARGIN)
    if record is not None:
        record.update(band=band, band_val_log_loss=b_loss, band_within=None if band is None
                      else int(within(vy, band_clip(now, anchor, band), ACC_BOUND).sum()),
                      band_best_within=n_now, band_kept=b_kept)
    return (band, b_loss) if b_kept else (None, now_loss)


def refit_dropped(choice: dict) -> dict[str, dict]:
    """The members of a fitted ``choice_`` whose refit ``refit_check`` dropped (their
    choice-stage model predicts alone), each with its check: read by ``evaluate`` and the
    CLI's table from this one place."""
    return {label: row["refit_check"] for label, row in choice.get("tried", {}).items()
            if isinstance(row, dict) and (row.get("refit_check") or {}).get("kept") is False}


def _kind_weight(vy: np.ndarray, pred: np.ndarray, anchor: np.ndarray, w0: float) -> float:
    """The anchor's weight for one kind of cells: the lowest log loss on the grid (0
    included), kept if it beats ``w0`` there by ``BLEND_MARGIN`` and leaves as many cells
    within ``ACC_BOUND``; else ``w0``."""
    at = lambda w: geometric_blend([pred, anchor], [1 - w, w])
    l0 = log_loss(vy, at(w0))
    lw, w = min((log_loss(vy, at(w)), float(w)) for w in (0.0, *BLEND_WEIGHTS))
    keep = (lw < l0 * (1 - BLEND_MARGIN)
            and within(vy, at(w), ACC_BOUND).sum() >= within(vy, at(w0), ACC_BOUND).sum())
    return w if keep else w0


def network_keys(x: list[Arch]) -> set[int]:
    """The networks among ``x``: each cell's isomorphism class (canonical key)."""
    return set(network_ids(x).tolist())


def seen_mask(x: list[Arch], keys: set[int]) -> np.ndarray:
    """Which cells of ``x`` are networks among ``keys``."""
    return np.isin(network_ids(x), np.fromiter(keys, dtype=np.int64, count=len(keys)))


def kind_blend(pred: np.ndarray, anchor: np.ndarray, seen: np.ndarray,
               kinds: dict[str, float]) -> np.ndarray:
    """The geometric blend of ``pred`` with ``anchor`` (``transfer``), the anchor weighing
    ``kinds["seen"]`` on seen cells and ``kinds["unseen"]`` on the rest."""
    w = np.where(seen, kinds["seen"], kinds["unseen"])
    return np.exp((1 - w) * np.log(pred) + w * np.log(np.asarray(anchor, dtype=np.float64)))


def keep_kinds(vy: np.ndarray, pred: np.ndarray, anchor: np.ndarray, seen: np.ndarray,
               w0: float, loss: float, band: bool = True, record: dict | None = None
               ) -> tuple[dict[str, float], float | None, float] | None:
    """``transfer_kinds``: the anchor's weight in its blend with the choice ``pred`` (its
    validation prediction), one on the cells whose network is among the training cells
    (``seen``) and one on the rest, each by :func:`_kind_weight` from the one weight
    ``w0`` (a kind of fewer than ``KIND_MIN`` cells keeps it), then the band chosen again
    (``band``). Returns ``(kinds, band, loss)`` when that lowers ``loss``, the validation
    loss of the one weight with its band, else None; the check is written into
    ``record``. One rule for ``auto`` and the replay in ``benchmarks/``."""
    record = {} if record is None else record
    ws, wu = (_kind_weight(vy[m], pred[m], anchor[m], w0) if m.sum() >= KIND_MIN else w0
              for m in (seen, ~seen))
    record.update(seen_cells=int(seen.sum()), seen_weight=ws, unseen_weight=wu,
                  kinds_kept=False)
    if (ws, wu) == (w0, w0):
        return None
    kinds = {"seen": ws, "unseen": wu}
    kb, sub = kind_blend(pred, anchor, seen, kinds), {}
    k_band, k_loss = (keep_band(vy, kb, log_loss(vy, kb), anchor, sub) if band
                      else (None, log_loss(vy, kb)))
    record.update(kinds_val_log_loss=k_loss, kinds_kept=k_loss < loss)
    if k_loss >= loss:
        return None
    record.update(sub)  # the band recorded is the one in use
    return kinds, k_band, k_loss


Cells = tuple[list[Arch], np.ndarray]


@dataclass
class _Draw:
    """The cells of one ``auto`` fit: the choice's training cells ``x, y``, the cells it
    is scored on ``vx, vy``, an iterative candidate's ``(train, stop)`` slices ``early``,
    every labelled cell ``all_x, all_y`` and the refit's slices ``refit_early`` (None when
    the choice is out of fold, ``cv``, on few cells)."""

    x: list[Arch]
    y: np.ndarray
    vx: list[Arch]
    vy: np.ndarray
    early: tuple[Cells, Cells]
    all_x: list[Arch]
    all_y: np.ndarray
    refit_early: tuple[Cells, Cells] | None
    cv: bool
    rng: np.random.Generator

    @cached_property
    def val_seen(self) -> np.ndarray:
        """Which validation cells are networks among the choice's training cells."""
        return seen_mask(self.vx, network_keys(self.x))


@dataclass
class _Fits:
    """What the choice produced: each candidate's record (``tried``), the fitted ones and
    their validation predictions, and refits started beside the choice (or why not)."""

    tried: dict[str, dict[str, Any]] = field(default_factory=dict)
    fitted: dict[str, Predictor] = field(default_factory=dict)
    val_pred: dict[str, np.ndarray] = field(default_factory=dict)
    refit: dict[str, Predictor] = field(default_factory=dict)
    refit_failed: dict[str, str] = field(default_factory=dict)


class _JobBar:
    """Several fits running side by side as one stretch of a progress bar: job ``i`` at
    epoch ``e`` of ``n`` fills its share of ``span`` units after ``start``; the label
    names the jobs still running."""

    def __init__(self, progress: Callable | None, names: list[str], start: int, span: int,
                 units: int):
        self.progress, self.names = progress, names
        self.start, self.span, self.units = start, span, units
        self.frac = [0.0] * len(names)

    @property
    def on_job(self) -> Callable[[int, int, int], None] | None:
        return None if self.progress is None else self._update

    def _update(self, i: int, e: int, n: int) -> None:
        self.frac[i] = e / max(n, 1)
        running = [self.names[j] for j, f in enumerate(self.frac) if 0 < f < 1]
        share = sum(self.frac) / max(len(self.names), 1)
        self.progress(self.start + int(self.span * share), self.units,
                      {"candidate": ", ".join(running) or self.names[i]})


def _hold_out(x: list[Arch], y: np.ndarray, fraction: float, rng: np.random.Generator
              ) -> tuple[tuple[list[Arch], np.ndarray], tuple[list[Arch], np.ndarray]]:
    """``(rest, held)``: a seeded ``fraction`` of the cells (at least one) held out."""
    perm = rng.permutation(len(x))
    k = max(1, int(round(len(x) * float(fraction))))
    return ([x[i] for i in perm[k:]], y[perm[k:]]), ([x[i] for i in perm[:k]], y[perm[:k]])


def _fit_cells(p: Predictor, x: list[Arch], y: np.ndarray,
               early_stop: Callable[[], tuple[tuple[list[Arch], np.ndarray],
                                              tuple[list[Arch], np.ndarray]]]
               ) -> tuple[list[Arch], np.ndarray, tuple[list[Arch], np.ndarray] | None]:
    """``(x, y, val)`` that ``p`` fits on: an iterative backend trains on
    ``early_stop()``'s first part and early-stops on its second (cells it never trains
    on); others use every cell. ``early_stop`` is called only for an iterative backend,
    so seeded draws stay put."""
    if p.tags.get("iterative"):
        (rest_x, rest_y), held = early_stop()
        return rest_x, rest_y, held
    return x, y, None


def _fit_member(p: Predictor, x: list[Arch], y: np.ndarray,
                early_stop: Callable[[], tuple[tuple[list[Arch], np.ndarray],
                                               tuple[list[Arch], np.ndarray]]],
                progress: Callable | None) -> None:
    """Fit ``p`` here on the cells :func:`_fit_cells` gives it."""
    fx, fy, val = _fit_cells(p, x, y, early_stop)
    p.fit(fx, fy, val=val, progress=progress if val is not None else None)


@register_predictor("auto")
class AutoPredictor(Predictor):
    """Picks (or blends) the best backend for this device by validation: the default."""

    tags = {"stochastic": True, "iterative": True}

    def __init__(self, *, candidates: list[str] | None = None,
                 candidate_params: dict[str, dict[str, Any]] | None = None,
                 holdout: float = 0.1, blend: bool = True, refit: bool = True,
                 pair: bool = PAIR, refit_all: bool = REFIT_ALL, cv_below: int = 200,
                 transfer_below: int = TRANSFER_BELOW, pretrained: str | None = None,
                 transfer_margin: float = TRANSFER_MARGIN,
                 transfer_share: float = TRANSFER_SHARE,
                 transfer_blend: bool = TRANSFER_BLEND, transfer_band: bool = TRANSFER_BAND,
                 transfer_kinds: bool = TRANSFER_KINDS,
                 refit_check: bool = REFIT_CHECK,
                 workers: int | None = None,
                 seed: int = 0):
        self.candidates = candidates
        self.candidate_params = candidate_params
        self.holdout = holdout
        self.cv_below = cv_below
        self.transfer_below = transfer_below
        self.pretrained = pretrained
        self.transfer_margin = transfer_margin
        self.transfer_share = transfer_share
        self.transfer_blend = transfer_blend
        self.transfer_band = transfer_band
        self.transfer_kinds = transfer_kinds
        self.blend = blend
        self.refit = refit
        self.pair = pair
        self.refit_all = refit_all
        self.refit_check = refit_check
        self.workers = workers
        self.seed = seed

    # ----- configuration ------------------------------------------------------------
    def _specs(self, transfer: bool = False, transfer_only: bool = False
               ) -> dict[str, tuple[str, dict[str, Any]]]:
        """Candidate label -> (backend, params) after the user's choices; the default set
        with ``transfer`` added (few cells), or ``transfer`` alone (fewer cells than the
        out-of-fold choice needs: one held-out cell would pick among seven models)."""
        names = list(DEFAULT_CANDIDATES) if self.candidates is None else list(self.candidates)
        if self.candidates is None and (transfer or transfer_only):
            names = ["transfer"] if transfer_only else names + ["transfer"]
        extra = dict(self.candidate_params or {})
        specs = {}
        for label in names:
            backend, params = DEFAULT_CANDIDATES.get(label, (label, {}))
            if backend == "transfer" and self.pretrained:  # ``pretrained``: its model
                params = {**params, "pretrained": self.pretrained}
            specs[label] = (backend, {**params, **extra.get(label, {})})
        return specs

    def _validate_params(self) -> None:
        from .registry import list_predictors

        if self.candidates is not None and (not isinstance(self.candidates, (list, tuple))
                                            or not self.candidates):
            raise ConfigError("auto: candidates must be a non-empty list of names, "
                              "e.g. --set 'candidates=[\"linear\",\"gcn_plus\"]'")
        for key in ("pair", "refit_all", "blend", "refit", "transfer_blend", "transfer_band",
                    "transfer_kinds", "refit_check"):
            if not isinstance(getattr(self, key), (bool, np.bool_)):
                raise ConfigError(f"auto: {key} must be true or false, got "
                                  f"{getattr(self, key)!r}")
        if not 0 <= _num(self.transfer_margin) < 1:
            raise ConfigError(f"auto: transfer_margin must be in [0, 1), got "
                              f"{self.transfer_margin!r}")
        if not 0 <= _num(self.transfer_share) < 1:
            raise ConfigError(f"auto: transfer_share must be in [0, 1), got "
                              f"{self.transfer_share!r}")
        if not 0 < float(self.holdout) < 0.5:
            raise ConfigError(f"auto: holdout must be in (0, 0.5), got {self.holdout!r}")
        for key in ("cv_below", "transfer_below"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"auto: {key} must be a whole number >= 0, got {v!r}")
        if self.workers is not None and (not isinstance(self.workers, int)
                                         or isinstance(self.workers, bool) or self.workers < 1):
            raise ConfigError(f"auto: workers must be null (one per core, at most 4) or a "
                              f"whole number >= 1, got {self.workers!r}")
        if not isinstance(self.candidate_params or {}, dict):
            raise ConfigError("auto: candidate_params must map a candidate to its parameters")
        known = set(list_predictors()) - {"auto"}
        for label, (backend, params) in self._specs(transfer=True).items():
            if backend not in known:
                raise ConfigError(f"auto: unknown candidate {label!r}; use one of "
                                  f"{', '.join(sorted(set(DEFAULT_CANDIDATES) | known))}")
            create_predictor(backend, **params)._validate_params()

    def _make(self, label: str) -> Predictor:
        backend, params = self.specs_[label]
        p = create_predictor(backend, **params)
        if "seed" in p.get_params() and "seed" not in params:
            p.set_params(seed=int(self.seed))
        return p

    # ----- fit / predict ------------------------------------------------------------
    @staticmethod
    def _record(tried: dict, label: str, specs: dict, vx: list[Arch], vy: np.ndarray,
                pv: np.ndarray, p: Predictor, seconds: float) -> None:
        """What ``tried`` keeps of a candidate: its validation scores and fit time (the
        score per isomorphism class is recorded, not used: a choice rule to replay)."""
        m = latency_metrics(vy, pv)
        tried[label] = {"backend": specs[label][0], "params": p.get_params(),
                        "val_log_loss": log_loss(vy, pv),
                        "val_class_log_loss": class_log_loss(vx, vy, pv),
                        "val_acc_5": m["acc_5"], "val_acc_10": m["acc_10"],
                        "fit_seconds": seconds}

    def _choose_blend(self, fitted: dict, val_pred: dict, vy: np.ndarray, tried: dict,
                      few_cells: bool = True
                      ) -> tuple[list[str], list[float], float, dict | None]:
        """``(members, weights, validation loss, blend_check)``: the best candidate alone,
        or hedged with the second where that passes ``BLEND_MARGIN`` and the 10 % check;
        a from-scratch leader of a few-cell choice (``few_cells``: below ``transfer_below``)
        with ``transfer`` among the candidates, always blended with it (``transfer_share``)."""
        def rank(k: str) -> float:  # a pretrained candidate leads unless clearly beaten
            margin = 1 - float(self.transfer_margin) if tried[k]["backend"] == "transfer" else 1
            return tried[k]["val_log_loss"] * margin

        ranked = sorted(fitted, key=rank)
        best = ranked[0]
        members, weights, loss = [best], [1.0], tried[best]["val_log_loss"]
        pre = next((k for k in ranked if tried[k]["backend"] == "transfer"), None)
        share = float(self.transfer_share)
        if self.blend and few_cells and pre is not None and best != pre and share > 0:
            # few cells, a from-scratch leader: never without the pretrained model
            pair = [val_pred[best], val_pred[pre]]
            weights = [1 - share, share]
            loss = log_loss(vy, geometric_blend(pair, weights,
                                                self._floors([fitted[best], fitted[pre]])))
            return [best, pre], weights, loss, {"members": [best, pre], "weights": weights,
                                                "val_log_loss": loss, "kept": True,
                                                "rule": "transfer_share"}
        blend_check = None  # the hedged blend that passed the margin, and its 10 % check
        if self.blend and len(ranked) > 1:
            top2 = [val_pred[k] for k in ranked[:2]]
            # the weight with the lowest validation loss; kept if BLEND_MARGIN below the best
            floors = self._floors([fitted[k] for k in ranked[:2]])
            blend_loss, w = grid_blend(vy, top2[0], top2[1], floors)
            if blend_loss < loss * (1 - BLEND_MARGIN):  # hedged: the partner keeps a share
                wb = (1 - w) * BLEND_SHRINK
                hedged = geometric_blend(top2, [1 - wb, wb], floors)
                # and only if it leaves as many validation cells within 10 % as the best
                # alone: the log error rewards shrinking the largest errors, acc_10 leaving
                # near-right predictions alone (a step-function table: docs/results.md)
                n_in, n_best = (int(within(vy, p, ACC_BOUND).sum()) for p in (hedged, top2[0]))
                blend_check = {"members": ranked[:2], "weights": [1 - wb, wb],
                               "val_log_loss": log_loss(vy, hedged), "within": n_in,
                               "best_within": n_best, "kept": n_in >= n_best}
                if blend_check["kept"]:
                    members, weights = ranked[:2], [1 - wb, wb]
                    loss = blend_check["val_log_loss"]
        return members, weights, loss, blend_check

    def _blend_transfer(self, d: _Draw, made: dict, fits: _Fits, members: list[str],
                        weights: list[float], loss: float
                        ) -> tuple[list[str], list[float], float, dict | None, float | None,
                                   dict[str, float] | None]:
        """The choice blended with ``transfer`` (fitted here on the choice's training
        cells, scored on the validation cells), then held within a band of it
        (``transfer_band``), or left as it is; with the record of the checks (None when
        ``transfer`` failed), the band kept (None: none) and the weights per kind of
        network (None: one weight, in ``weights``)."""
        label = "transfer"
        self.specs_ = {**self.specs_, label: self._specs(transfer=True)[label]}
        made[label] = self._make(label)
        p, t0 = self._make(label), time.perf_counter()
        try:
            p.fit(d.x, d.y)
        except (ConfigError, KeyboardInterrupt):
            raise
        except Exception as e:  # recorded with why, not fatal: the choice stands
            self._score(fits, label, None, f"{type(e).__name__}: {e}", d.vx, d.vy, 0.0)
            return members, weights, loss, None, None, None
        self._score(fits, label, p, None, d.vx, d.vy, time.perf_counter() - t0)
        if label not in fits.fitted:
            return members, weights, loss, None, None, None
        chosen = geometric_blend([fits.val_pred[m] for m in members], weights,
                                 self._floors([fits.fitted[m] for m in members]))
        tv = fits.val_pred[label]
        best, w = grid_blend(d.vy, tv, chosen)  # w: transfer's weight
        blended = geometric_blend([chosen, tv], [1 - w, w])
        n_in, n_best = (int(within(d.vy, v, ACC_BOUND).sum()) for v in (blended, chosen))
        kept = best < loss * (1 - BLEND_MARGIN) and n_in >= n_best
        check = {"weight": w, "val_log_loss": best, "within": n_in, "best_within": n_best,
                 "kept": kept}
        w0 = w if kept else 0.0
        band, final = self._band(d.vy, *((blended, best) if kept else (chosen, loss)), tv, check)
        kinds = None
        if self.transfer_kinds:  # one weight for seen networks, one for the rest
            got = keep_kinds(d.vy, chosen, tv, d.val_seen, w0, final, self.transfer_band,
                             check)
            if got is not None:
                kinds, band, final = got
        if kinds is not None:  # transfer weighs per cell; its member weight is 0
            return [*members, label], [*weights, 0.0], final, check, band, kinds
        if kept:
            members, weights = [*members, label], [*(v * (1 - w) for v in weights), w]
        elif band is not None:  # the band alone: transfer anchors it with no weight
            members, weights = [*members, label], [*weights, 0.0]
        return members, weights, final, check, band, None

    def _band(self, vy: np.ndarray, now: np.ndarray, now_loss: float, anchor: np.ndarray,
              record: dict) -> tuple[float | None, float]:
        """:func:`keep_band`, or no band (``transfer_band=false``)."""
        return keep_band(vy, now, now_loss, anchor, record) if self.transfer_band else (
            None, now_loss)

    def _combine(self, preds: dict[str, np.ndarray], floors: list[float],
                 seen: np.ndarray | None) -> np.ndarray:
        """The members' predictions as ``auto`` predicts from them: their geometric blend,
        then ``transfer`` weighed per kind of network (``seen``: the cells' kinds) and the
        band, where kept."""
        pred = geometric_blend(list(preds.values()), [self.weights_[m] for m in preds], floors)
        if self.kinds_ is not None:
            pred = kind_blend(pred, preds["transfer"], seen, self.kinds_)
        return pred if self.band_ is None else band_clip(pred, preds["transfer"], self.band_)

    def _draw(self, x: list[Arch], y: np.ndarray, val) -> _Draw:
        """Every seeded split of the cells, drawn once and in this order (``workers=1``
        and ``workers=N`` then see the same cells)."""
        rng = np.random.default_rng([int(self.seed), 11])
        labelled = len(x) + (len(val[0]) if val is not None else 0)
        # few cells: a tenth of them is too few to choose by (one cell of ten), so every
        # labelled cell is scored out of fold instead, and the choice is fitted on them all
        # (``transfer`` alone, on fewer cells: scored out of fold too, none held back)
        cv = labelled < int(self.cv_below) and (
            labelled >= 2 * CV_FOLDS or (list(self.specs_) == ["transfer"] and labelled >= 2))
        if cv:
            if val is not None:
                x, y = list(x) + list(val[0]), np.concatenate([y, val[1]])
            vx, vy = list(x), np.asarray(y)
        else:
            if val is None:  # no validation cells given: hold out a slice of the training cells
                (x, y), val = _hold_out(x, y, self.holdout, rng)
            vx, vy = val
        # iterative backends early-stop on a slice of the training cells, never on vx
        early = _hold_out(x, y, self.holdout, rng)
        all_x, all_y = (list(x), y) if cv else (list(x) + list(vx), np.concatenate([y, vy]))
        # the refit's fresh tenth is drawn now, so a refit can start before the choice
        refit_early = None if cv else _hold_out(all_x, all_y, self.holdout, rng)
        return _Draw(list(x), np.asarray(y), list(vx), np.asarray(vy), early, all_x,
                     np.asarray(all_y), refit_early, cv, rng)

    def _job(self, made: dict, label: str, cells: tuple, early: tuple) -> FitJob:
        """A fit of ``label`` on ``cells``, or (iterative) on ``early``'s ``(train, stop)``
        cells: :func:`_fit_cells`."""
        p = made[label]
        return FitJob(type(p), p.get_params(), *_fit_cells(p, *cells, lambda: early))

    def _score(self, fits: _Fits, label: str, p: Predictor | None, error: str | None,
               vx: list[Arch], vy: np.ndarray, seconds: float,
               pred: np.ndarray | None = None) -> None:
        """Score a fitted candidate on the validation cells (or by ``pred``, its
        predictions of them made out of fold) into ``fits``; a candidate whose fit or
        prediction failed is recorded with why, not fatal."""
        specs = self.specs_
        if p is None:
            fits.tried[label] = {"backend": specs[label][0], "failed": error}
            return
        try:
            pv = p.predict(vx) if pred is None else pred
        except (ConfigError, KeyboardInterrupt):
            raise
        except Exception as e:
            fits.tried[label] = {"backend": specs[label][0], "failed": f"{type(e).__name__}: {e}"}
            return
        fits.fitted[label], fits.val_pred[label] = p, pv
        self._record(fits.tried, label, specs, vx, vy, pv, p, seconds)

    def _choose_cv(self, d: _Draw, made: dict, fits: _Fits, progress, units: int) -> None:
        """Few cells: score every candidate out of fold on every cell, then fit it on them
        all (in this process, one after another: small fits)."""
        for i, label in enumerate(self.specs_):
            p = made[label]
            t0 = time.perf_counter()
            sub = None if progress is None else (
                lambda e, n, info, i=i, label=label: progress(
                    i * 1000 + e * 1000 // max(n, 1), units, {**info, "candidate": label}))
            pv, error = None, None
            # a quick backend may run C callbacks (XGBoost): a Ctrl-C there is noted and
            # raised between folds or trees (pool.quick_fits), never inside them
            guard = contextlib.nullcontext() if p.tags.get("iterative") else quick_fits()
            try:  # each fold's copy early-stops on a slice of its cells, as below
                with guard as stop:
                    if stop is not None:
                        sub = stop(sub)
                    pv = cross_val_predict(
                        p, d.x, d.y, folds=CV_FOLDS, rng=d.rng,
                        fit=lambda c, kx, ky: _fit_member(
                            c, kx, ky, lambda: _hold_out(kx, ky, self.holdout, d.rng), None),
                        on_fold=None if sub is None else
                        lambda f, k, sub=sub: sub(f, k + 1, {"fold": f + 1}))
                    if sub is not None:  # the final fit on every cell: the last of CV_FOLDS + 1
                        folds_sub = sub
                        sub = lambda e, n, info: folds_sub(
                            CV_FOLDS * max(n, 1) + e, (CV_FOLDS + 1) * max(n, 1), info)
                    _fit_member(p, d.x, d.y, lambda: d.early, sub)
            except (ConfigError, KeyboardInterrupt):
                raise
            except Exception as e:
                error = f"{type(e).__name__}: {e}"
            # scored on its out-of-fold predictions of every cell, not on a new predict
            self._score(fits, label, None if error else p, error, d.vx, d.vy,
                        time.perf_counter() - t0, pred=pv)
            if progress is not None:
                progress((i + 1) * 1000, units, {"candidate": label})

    def _choose_side_by_side(self, d: _Draw, made: dict, workers: int, fits: _Fits,
                             progress) -> int:
        """Fit every candidate (``workers`` at a time) and score it on the validation
        cells; a stochastic iterative candidate's refit starts beside its choice and is
        kept in ``fits.refit`` (dropped later if not chosen). Returns the progress units."""
        specs = self.specs_
        # a stochastic iterative candidate (a GCN) is refitted if chosen; with more
        # than one worker that refit starts now, beside the choice, and is dropped if
        # the candidate is not chosen: the two longest fits then run at once
        ahead = [label for label in specs if side_by_side(workers) and self.refit
                 and not self.refit_all and made[label].tags.get("iterative")
                 and made[label].tags.get("stochastic")]
        slow = [label for label in specs if made[label].tags.get("iterative")]
        order = [(label, "choice") for label in slow] + [(label, "refit") for label in ahead]
        order.sort(key=lambda lk: slow.index(lk[0]))  # a GCN's choice, then its refit
        order += [(label, "choice") for label in specs if label not in slow]
        jobs = [self._job(made, label, (d.x, d.y), d.early) if kind == "choice" else
                self._job(made, label, (d.all_x, d.all_y), d.refit_early)
                for label, kind in order]
        units = (len(jobs) + int(bool(self.refit))) * 1000  # later refits: the last unit
        bar = _JobBar(progress, [label if kind == "choice" else f"{label} (refit)"
                                 for label, kind in order], 0, 1000 * len(jobs), units)
        done = dict(zip(order, fit_all(jobs, workers, bar.on_job)))
        for label in specs:  # recorded in the candidates' order, as one by one
            c = done[(label, "choice")]
            self._score(fits, label, c.predictor, c.error, d.vx, d.vy, c.seconds)
        for label in ahead:
            r = done[(label, "refit")]
            if r.predictor is None:
                fits.refit_failed[label] = r.error
            else:
                fits.refit[label] = r.predictor
        return units

    def _refit_chosen(self, d: _Draw, made: dict, members: list[str], workers: int,
                      fits: _Fits, progress, units: int) -> dict[str, Predictor]:
        """Each chosen member refitted on training + validation cells (a refit started
        beside the choice is used as it is); returns member -> refitted predictor."""
        refit = {m: fits.refit[m] for m in members if m in fits.refit}
        for label in members:
            if label in fits.refit_failed:  # keep the member as chosen; say why
                fits.tried[label]["refit_failed"] = fits.refit_failed[label]
        later = [m for m in members if self.refit and not d.cv  # cv: fitted on every cell
                 and m not in refit and m not in fits.refit_failed]
        jobs = []
        for label in later:
            replay = getattr(fits.fitted[label], "schedule_", None) if self.refit_all else None
            if replay is not None:  # every labelled cell, the choice's schedule replayed
                p = made[label]
                jobs.append(FitJob(type(p), {**p.get_params(), "schedule": dict(replay)},
                                   d.all_x, d.all_y))
            else:
                jobs.append(self._job(made, label, (d.all_x, d.all_y), d.refit_early))
        bar = _JobBar(progress, [f"{m} (refit)" for m in later], units - 1000, 1000, units)
        for label, r in zip(later, fit_all(jobs, workers, bar.on_job)):
            if r.predictor is None:
                fits.tried[label]["refit_failed"] = r.error
            else:
                refit[label] = r.predictor
        if progress is not None and self.refit:
            progress(units, units, {"candidate": "refit"})
        return refit

    def _transfer_at_hand(self) -> bool:
        """Whether a pretrained ``transfer`` model is given or shipped (never pretrain one
        inside a fit: that takes minutes and the data directory)."""
        from ..transfer.pretrain import SHIPPED

        given = self._specs(transfer=True).get("transfer", ("", {}))[1].get("pretrained")
        return bool(given) or SHIPPED.is_file()

    def _fit(self, x, y, val, progress) -> None:
        labelled = len(x) + (len(val[0]) if val is not None else 0)
        #: ``transfer`` joins the candidates (few cells, a pretrained model at hand)
        few_shot = (self.candidates is None and labelled < int(self.transfer_below)
                    and self._transfer_at_hand())
        #: the candidates of this fit: with ``transfer`` on few cells, and ``transfer``
        #: alone on fewer than the out-of-fold choice needs
        self.specs_ = self._specs(transfer=few_shot,
                                  transfer_only=few_shot and labelled < 2 * CV_FOLDS)
        d = self._draw(x, y, val)
        #: the blend's floor, from every labelled latency
        self.floor_ = FLOOR_SHARE * float(np.min(d.all_y))
        fits = _Fits()
        made = {label: self._make(label) for label in self.specs_}
        workers = default_workers() if self.workers is None else int(self.workers)
        if d.cv:
            units = (len(made) + int(bool(self.refit))) * 1000
            self._choose_cv(d, made, fits, progress, units)
        else:
            units = self._choose_side_by_side(d, made, workers, fits, progress)
        if not fits.fitted:
            raise DataError("auto: every candidate failed to fit: "
                            + "; ".join(f"{k}: {v['failed']}" for k, v in fits.tried.items()))
        members, weights, loss, blend_check = self._choose_blend(
            fits.fitted, fits.val_pred, d.vy, fits.tried,
            few_cells=labelled < int(self.transfer_below))
        transfer_check, band, kinds = None, None, None
        if (self.transfer_blend and self.blend and not few_shot and not d.cv
                and self.candidates is None and self._transfer_at_hand()):
            members, weights, loss, transfer_check, band, kinds = self._blend_transfer(
                d, made, fits, members, weights, loss)
        #: the band around ``transfer``'s prediction the final one is held in (None: none)
        self.band_ = band
        #: ``transfer``'s weight on seen networks and on the rest (None: ``weights_``)
        self.kinds_ = kinds
        #: the networks the final members were fitted on (with ``kinds_`` only)
        self.seen_keys_ = (network_keys(d.all_x if self.refit else d.x)
                           if kinds is not None else None)
        # the choice is made: every member is refitted on training + validation cells
        # (more data is the largest gain left; ``benchmarks/ensemble_design.py``); an
        # iterative member early-stops on a fresh slice of them, as in the choice
        refit = self._refit_chosen(d, made, members, workers, fits, progress, units)
        fitted, tried = fits.fitted, fits.tried
        #: the choice's predictions of the validation cells, made before they were fitted on:
        #: out-of-sample residuals for a margin (in memory only, like ``candidates_``)
        self.weights_ = dict(zip(members, weights))
        self.held_out_ = (list(d.vx), np.asarray(d.vy, dtype=np.float64), self._combine(
            {m: fits.val_pred[m] for m in members}, self._floors([fitted[m] for m in members]),
            None if kinds is None else d.val_seen))
        #: every candidate as scored on validation (in memory only: benchmarks score them)
        self.candidates_ = dict(fitted)
        #: and its predictions of the validation cells (out of fold on few cells; in memory
        #: only): a choice rule can be replayed on them without refitting
        self.val_pred_ = dict(fits.val_pred)
        for label in self._failed_refits(d, refit, fits):  # the choice-stage model alone
            del refit[label]
        self.members_ = {m: refit.get(m, fitted[m]) for m in members}
        #: the choice-stage model of a refitted stochastic member, averaged with its refit
        self.first_ = {m: fitted[m] for m in refit
                       if self.pair and fitted[m].tags.get("stochastic")}
        self.choice_ = {"chosen": members, "weights": weights, "val_log_loss": loss,
                        "criterion": (f"mean |log(pred/true)| out of fold ({CV_FOLDS}-fold) on "
                                      "every cell" if d.cv else
                                      "mean |log(pred/true)| on the validation cells"),
                        "val_cells": len(d.vx), "tried": tried,
                        # the hedge of the best two (not the share rules' fixed weights)
                        "blend_shrink": BLEND_SHRINK if (blend_check or {}).get("kept")
                        and "rule" not in blend_check else None,
                        "blend_check": blend_check,
                        "transfer_check": transfer_check,
                        "band": band,
                        "kinds": kinds,
                        # cv: the members were fitted on every cell in the choice itself
                        "refitted_on": len(d.all_x) if self.refit and (d.cv or refit) else None,
                        "replayed": {m: refit[m].schedule for m in refit
                                     if getattr(refit[m], "schedule", None) is not None},
                        "paired": sorted(self.first_)}

    def _failed_refits(self, d: _Draw, refit: dict[str, Predictor], fits: _Fits) -> list[str]:
        """The stochastic members whose refit failed to train (``refit_check``): it fits
        the labelled cells, nine tenths of which it trained on (all with ``refit_all``),
        worse than the choice-stage model predicted the validation cells, which that
        model never saw.
        A sound refit fits its own cells better than a model predicts unseen ones; one
        that does not stopped or diverged early (session 22: a `gcn_plus` refit on
        edgetpu_large scored 0.318 there against 0.228, and 50.6 % of the test cells
        within 10 % against the choice-stage model's 66.3). Such a member keeps its
        choice-stage model alone. The check is recorded in ``tried``."""
        failed = []
        if not self.refit_check or d.cv:
            return failed
        for label, p in refit.items():
            row = fits.tried.get(label, {})
            if not fits.fitted[label].tags.get("stochastic") or "val_log_loss" not in row:
                continue
            own = log_loss(d.all_y, p.predict(d.all_x))
            ok = bool(own <= row["val_log_loss"])
            row["refit_check"] = {"labelled_log_loss": own, "val_log_loss": row["val_log_loss"],
                                  "kept": ok}
            if not ok:
                failed.append(label)
        return failed

    def pretraining_tables(self) -> set[str]:
        return set().union(*(p.pretraining_tables() for p in self.members_.values()))

    def _floors(self, members: list[Predictor]) -> list[float]:
        """Each member's floor in a blend (``UNFLOORED`` backends: none)."""
        return [1e-9 if m.name in UNFLOORED else self.floor_ for m in members]

    def _member_predict(self, label: str, x: list[Arch]) -> np.ndarray:
        pred = self.members_[label].predict(x)
        first = self.first_.get(label)
        return pred if first is None else geometric_blend([pred, first.predict(x)], [0.5, 0.5],
                                                          self.floor_)

    def _predict(self, x: list[Arch]) -> np.ndarray:
        return self._combine({label: self._member_predict(label, x) for label in self.members_},
                             self._floors(list(self.members_.values())),
                             None if self.kinds_ is None else seen_mask(x, self.seen_keys_))

    # ----- persistence --------------------------------------------------------------
    def _save_state(self, folder: Path) -> None:
        for label, p in self.members_.items():
            p.save(folder / f"member-{label}")
        for label, p in self.first_.items():
            p.save(folder / f"member-{label}-choice")
        save_json_state(folder, {"choice": self.choice_, "weights": self.weights_,
                                 "floor": self.floor_, "band": self.band_, "kinds": self.kinds_,
                                 "seen_keys": None if self.seen_keys_ is None
                                 else sorted(self.seen_keys_)})

    def _load_state(self, folder: Path) -> None:
        from .base import load_predictor

        s = load_json_state(folder)
        try:
            self.choice_ = dict(s["choice"])
            self.weights_ = {str(k): float(v) for k, v in s["weights"].items()}
            # a folder saved before session 12 has no floor: it blends as it did then
            self.floor_ = float(s.get("floor", 1e-9))
            # a folder saved before session 21 has no band: none
            self.band_ = None if s.get("band") is None else float(s["band"])
            # ... nor weights per kind of network (session 21): one weight
            kinds = s.get("kinds")
            self.kinds_ = (None if kinds is None else
                           {"seen": float(kinds["seen"]), "unseen": float(kinds["unseen"])})
            self.seen_keys_ = (None if self.kinds_ is None
                               else {int(k) for k in s["seen_keys"]})
            if (self.band_ is not None or self.kinds_ is not None) and "transfer" not in self.weights_:
                raise ValueError("a band or weights per kind need the transfer member")
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise DataError(f"{folder / 'state.json'} is corrupt ({e}); refit the predictor") from None
        self.members_ = {}
        for label in self.weights_:
            if "/" in label or label.startswith("."):
                raise DataError(f"{folder}: bad member name {label!r}")
            self.members_[label] = load_predictor(folder / f"member-{label}")
        # a folder saved before the pair (session 10) has no "paired": its members alone
        self.first_ = {label: load_predictor(folder / f"member-{label}-choice")
                       for label in self.choice_.get("paired", []) if label in self.members_}

    def summary(self) -> str:
        """One line: what was chosen and how it scored."""
        c = self.choice_
        parts = [f"{m} x{w:.2f}" if len(c["chosen"]) > 1 else m
                 for m, w in zip(c["chosen"], c["weights"])]
        band = (f", within a factor {np.exp(c['band']):.3f} of transfer"
                if c.get("band") is not None else "")
        if c.get("kinds") is not None:
            band = (f", transfer x{c['kinds']['seen']:.2f} on seen networks and "
                    f"x{c['kinds']['unseen']:.2f} on the rest{band}")
        return (f"auto chose {' + '.join(parts)}{band} "
                f"(validation log-loss {c['val_log_loss']:.4f})")


__all__ = [
    "DEFAULT_CANDIDATES",
    "AutoPredictor",
    "band_clip",
    "geometric_blend",
    "grid_band",
    "grid_blend",
    "keep_band",
    "kind_blend",
    "network_keys",
    "seen_mask",
]
