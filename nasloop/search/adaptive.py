"""Search with an oracle fitted on a few measured cells: a margin, and refits where it erred.

With 20-200 timed cells the fitted oracle errs by 5-15 %, and a constrained search keeps
exactly the networks it underestimates: every finalist sits just under the budget. In
session 6 all five finalists of four runs on an idle machine were over the budget once
timed (docs/results.md). Two remedies, both from measurements only:

* **a conformal margin**: out-of-fold predictions of the fitted cells (every cell
  predicted by a copy fitted without its fold: cross-conformal), or a predictor's own
  validation predictions (``auto``), calibrate ``true <= margin * predicted`` at
  ``confidence`` (:func:`~nasloop.search.oracles.conformal_margin`); fitted cells and
  checked finalists count as measured, with no margin;
* **refits**: when no finalist meets the budget, the finalists that failed (the most
  informative cells there are: near the budget, where the model erred) are measured like
  the fitted cells, join them, and the oracle is refitted and the search run again, at
  most ``rounds`` searches in all.

The device is reached only through ``measure`` and ``validator``: the live mode times
this machine, a benchmark reads a table.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..data.accuracy import AccuracyTable
from ..data.tables import LatencyTable
from ..errors import ConfigError
from ..predictors import Predictor, cross_val_predict
from ..space import Arch, arch_index, canonical_representatives
from .oracles import Calibration, LatencyOracle, PredictorOracle, calibration_cells_needed
from .study import Candidate, SearchConfig, SearchResult, accuracy_scorer, run_search

#: the live mode's defaults, chosen by replaying the live job on all 29 tables
#: (``benchmarks/live_margin.py``, docs/results.md "The main job's budget guard"): with
#: refits, a median margin (0.5: a bias correction) and no margin tie at 0 failed searches
#: and 0.24-0.26 points of regret, while 0.8 and 0.9 cost 0.43-0.59 points in slack; the
#: median margin is kept because on this machine the model underestimated every finalist.
#: Rerun with the I-optimal cells (session 15): 0 / 1 failed searches of 174 with refits /
#: margin and refits, the one failure caught by the fallback to a measured cell
DEFAULT_CONFIDENCE = 0.5
DEFAULT_ROUNDS = 3
#: the fewest of a predictor's own held-out cells a margin is calibrated on (else: folds)
MIN_HELD_OUT = 10


@dataclass(frozen=True)
class AdaptiveConfig:
    """How a search on a few measured cells guards its budget.

    ``confidence`` None: no margin. ``rounds`` 1: no refit. ``folds`` for the out-of-fold
    predictions (at least the number of cells: leave-one-out). ``fallback``: when no
    finalist meets the budget, ship the most accurate measured cell that does
    (:func:`fall_back_to_measured`) instead of nothing.
    """

    confidence: float | None = DEFAULT_CONFIDENCE
    rounds: int = DEFAULT_ROUNDS
    folds: int = 10
    fallback: bool = True

    def calibration_cells(self) -> int:
        """The fewest out-of-sample cells the margin can be calibrated on (0: no margin)."""
        return 0 if self.confidence is None else calibration_cells_needed(self.confidence)

    def check(self) -> None:
        if self.confidence is not None and not 0 < self.confidence < 1:
            raise ConfigError(f"--confidence {self.confidence:g}: give a probability between 0 "
                              "and 1, e.g. 0.9")
        if int(self.rounds) < 1:
            raise ConfigError(f"--rounds {self.rounds}: give at least 1 (1: no refit)")
        if int(self.folds) < 2:
            raise ConfigError(f"folds {self.folds}: give at least 2")


class _Memo:
    """An objective asked at most once per cell over all rounds (a refit's search asks again)."""

    def __init__(self, score: Callable[[list[Arch]], np.ndarray]):
        self.score, self.cache = score, {}
        self.exhaustive = getattr(score, "exhaustive", True)
        self.label = getattr(score, "label", None)

    def __call__(self, cells: list[Arch]) -> np.ndarray:
        todo = [a for a in dict.fromkeys(cells) if a not in self.cache]
        if todo:
            self.cache.update(zip(todo, (float(v) for v in np.asarray(self.score(todo)))))
        return np.array([self.cache[a] for a in cells], dtype=np.float64)


def calibrated_oracle(predictor: Predictor, cells: list[Arch], y: np.ndarray, *, name: str,
                      folds: int = 10, seed: int = 0, margin: bool = True,
                      least: int = 1) -> PredictorOracle:
    """Fit ``predictor`` on all the cells; calibrate it on out-of-sample predictions.

    A predictor that held cells out while fitting (``auto`` chooses its backend on a
    validation slice, or on few cells out of fold) leaves ``held_out_ = (cells, true_ms,
    predicted_ms)``: those are
    used when there are at least ``least`` of them, as refitting it ``folds`` times would
    cost minutes. Otherwise every fitted cell is predicted by a copy fitted without its fold.
    """
    predictor.fit(cells, y)
    oracle = PredictorOracle(predictor, name=name)
    if not margin:
        return oracle
    held = getattr(predictor, "held_out_", None)
    if held is not None and len(held[0]) >= max(least, MIN_HELD_OUT):
        hx, hy, hp = held
        source = ("the predictor's own out-of-sample predictions (validation cells, or out "
                  "of fold, predicted before it was fitted on them)")
    else:
        hx, hy = cells, y
        hp = cross_val_predict(predictor, cells, y, folds=folds, seed=seed)
        source = f"out-of-fold predictions of the fitted cells ({min(folds, len(cells))} folds)"
    oracle.calibration = Calibration(tuple(hx), tuple(float(v) for v in hy), source,
                                     tuple(float(v) for v in hp))
    return oracle


def measured_cells(cells: list[Arch], y: np.ndarray, verdicts: dict[Arch, float],
              share: bool) -> dict[int, float]:
    """Cell index -> measured ms: the fitted cells, and every finalist the validator checked
    (the larger of two timings: a finalist rejected once is never proposed again). With
    ``share`` (isomorphs are one network on the device, as the validator says) every cell
    of a measured network's class gets the slowest timing of the class."""
    out: dict[int, float] = {}
    for a, v in [*zip(cells, (float(x) for x in y)), *verdicts.items()]:
        i = arch_index(a)
        if np.isfinite(v):
            out[i] = max(out.get(i, v), v)
    if share and out:
        reps = canonical_representatives()
        by_class: dict[int, float] = {}
        for i, v in out.items():
            c = int(reps[i])
            by_class[c] = max(by_class.get(c, v), v)
        members = np.flatnonzero(np.isin(reps, list(by_class)))
        out = {int(i): by_class[int(reps[i])] for i in members}
    return out


def adaptive_search(predictor: Predictor, cells: Sequence[Arch], y: Sequence[float],
                    measure: Callable[[list[Arch]], np.ndarray], budget_ms: float,
                    accuracy: AccuracyTable | Callable[[list[Arch]], np.ndarray],
                    config: SearchConfig, adaptive: AdaptiveConfig | None = None, *,
                    validator: LatencyOracle, table: LatencyTable | None = None,
                    name: str | None = None, device_name: str | None = None,
                    on_round: Callable[[int, int, int], None] | None = None,
                    on_fitted: Callable[[PredictorOracle], None] | None = None,
                    on_trial: Callable[[int, int, dict], None] | None = None) -> SearchResult:
    """Fit on ``cells``, search with a calibrated margin, refit on failed finalists.

    ``measure(cells) -> ms`` times new cells the way ``cells`` were timed; ``validator``
    checks finalists (its answers are reused across rounds, and a finalist it rejected is
    taken as over the budget from then on). ``predictor`` is an unfitted template: each
    round fits a fresh copy. Only the first search uses ``config.storage``: a refit's
    search has another oracle, so it runs in memory. The result is the last search's, with
    ``cells_measured`` (every cell fitted on), ``rounds``, and ``true_checks`` and
    ``accuracy_evaluations`` counted over all searches (distinct cells). Ctrl-C or an
    error in a refit returns the last finished search. ``on_round(round, rounds, cells)``
    is called before each fit, ``on_fitted(oracle)`` after it.
    """
    adaptive = adaptive or AdaptiveConfig()
    adaptive.check()
    cells, y = list(cells), np.asarray(y, dtype=np.float64)
    label = name or predictor.name
    score = accuracy if isinstance(accuracy, AccuracyTable) else _Memo(accuracy)
    verdicts: dict[Arch, float] = {}  # every finalist checked, and its true latency
    evaluated: set[str] = set()
    accuracy_of: dict[str, float] = {}  # every network evaluated, over all searches
    checked: set[str] = set()
    res: SearchResult | None = None
    rounds = int(adaptive.rounds)
    for r in range(1, rounds + 1):
        try:
            if r > 1:  # learn from the finalists that failed: time them like the fitted cells
                known = set(cells)
                missed = [Arch.parse(c.arch) for c in res.finalists if c.feasible_true is False]
                missed = [a for a in missed if a not in known]
                if missed:
                    y = np.concatenate([y, np.asarray(measure(missed), dtype=np.float64)])
                    cells += missed
            if on_round is not None:
                on_round(r, rounds, len(cells))
            pred = type(predictor)(**predictor.get_params())
            oracle = calibrated_oracle(pred, cells, y, name=label, folds=adaptive.folds,
                                       seed=int(config.seed),
                                       margin=adaptive.confidence is not None,
                                       least=adaptive.calibration_cells())
            oracle.measured = measured_cells(cells, y, verdicts, share=validator.canonical_cache)
            if on_fitted is not None:
                on_fitted(oracle)
            cfg = dataclasses.replace(config, confidence=adaptive.confidence)
            if r > 1:
                cfg = dataclasses.replace(cfg, storage=None, study_name=None)
            found = run_search(table, budget_ms, oracle, score, cfg, validator=validator,
                               device_name=device_name, on_trial=on_trial)
        except KeyboardInterrupt:
            if res is None:
                raise
            res.interrupted = True  # the last finished search stands
            break
        except ConfigError as e:
            if res is None:
                raise
            res.message += f"; refit {r - 1} stopped: {e}"
            break
        res = found
        verdicts.update({Arch.parse(c.arch): c.true_latency_ms for c in res.finalists
                         if c.true_latency_ms is not None})
        evaluated |= {h["arch"] for h in res.history}
        accuracy_of.update((h["arch"], h["accuracy"]) for h in res.history)
        checked |= {c.arch for c in res.finalists}
        res.rounds = r
        if not res.failed or res.interrupted or not res.finalists:
            break
    assert res is not None
    res.cells_measured = len(cells)
    res.true_checks = len(checked)
    res.accuracy_evaluations = len(evaluated)
    if res.failed and res.rounds > 1:
        res.message += f" (after {res.rounds} searches, refitted on the failed finalists)"
    if res.failed and not res.interrupted and adaptive.fallback:
        fall_back_to_measured(res, cells, y, verdicts, budget_ms, accuracy_of, score, config,
                              validator)
    return res


def fall_back_to_measured(res: SearchResult, cells: list[Arch], y: np.ndarray,
                          verdicts: dict[Arch, float], budget_ms: float,
                          accuracy_of: dict[str, float],
                          score: AccuracyTable | Callable[[list[Arch]], np.ndarray],
                          config: SearchConfig, validator: LatencyOracle) -> None:
    """When no finalist met the budget, ship the most accurate *timed* cell under it.

    Every cell timed to fit the oracle has a measurement (with ``validator.canonical_cache``
    every cell of its isomorphism class takes the class's slowest timing, as in the search;
    a finalist under the budget would have been shipped, so the pick is always a fitted
    cell). It is rarely a good network: the fitted cells were chosen to teach the model,
    not for accuracy. Accuracies come from the searches' evaluations; if none of these
    cells was evaluated, at most ``config.top`` of them are (the slowest first: the largest
    networks), one at a time and counted. The pick is then checked like a finalist (the
    fitted cells may have been timed with a lighter protocol, or in an earlier session), at
    most ``config.top`` checks, each counted; the first that passes is shipped.
    """
    from .objective import ObjectiveFailed

    timed = measured_cells(cells, y, verdicts, share=validator.canonical_cache)
    fitted = {a: timed[arch_index(a)] for a in dict.fromkeys(cells) if arch_index(a) in timed}
    under = sorted(((v, a) for a, v in fitted.items() if v <= budget_ms),
                   key=lambda t: (-t[0], str(t[1])))
    if not under:
        return

    def usable(v: float) -> bool:  # the search records an unknown table accuracy as 0
        return bool(np.isfinite(v)) and (v > 0 or not isinstance(score, AccuracyTable))

    known = [(accuracy_of[str(a)], v, a) for v, a in under
             if str(a) in accuracy_of and usable(accuracy_of[str(a)])]
    if not known:
        scorer = accuracy_scorer(score, config.objective)
        for v, a in under[:max(1, int(config.top))]:
            try:
                acc = float(scorer([a])[0])
            except ObjectiveFailed:
                acc = float("nan")
            except KeyboardInterrupt:
                res.interrupted = True
                return
            res.accuracy_evaluations += 1
            if usable(acc):
                known.append((acc, v, a))
    known.sort(key=lambda t: (-t[0], t[1], str(t[2])))
    for acc, ms, arch in known[:max(1, int(config.top))]:
        try:
            true = float(validator.latency([arch])[0])
        except KeyboardInterrupt:
            res.interrupted = True
            return
        res.true_checks += 1
        if not np.isfinite(true) or max(true, ms) > budget_ms:
            continue
        true = max(true, ms)  # the larger of two timings, as for a rejected finalist
        res.best = Candidate(str(arch), float(acc), float(ms), true, True, True, False)
        res.failed, res.fallback = False, True
        if res.optimum:
            res.regret = res.optimum["accuracy"] - float(acc)
        res.message += (f"; shipped instead the most accurate cell timed to fit the oracle "
                        f"under the budget, {arch} ({true:.3f} ms): it meets the budget, but "
                        "was chosen to teach the model, not for accuracy (--no-fallback: "
                        "ship nothing)")
        return
