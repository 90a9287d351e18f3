"""Latency-constrained architecture search with Optuna, validated on true latency.

:func:`run_search` is the library API; ``nasloop search`` is a thin layer over it.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import optuna

from ..data.accuracy import DATASETS, AccuracyTable
from ..data.tables import LatencyTable
from ..errors import ConfigError
from ..space import NUM_EDGES, OPS, Arch
from .oracles import LatencyOracle, TableOracle

SAMPLERS = ("tpe", "nsga2", "random", "gp")
MODES = ("constrained", "pareto")
OBJECTIVES = tuple(DATASETS)
#: accuracy given to a trial whose cell has no accuracy (never chosen)
_NO_ACC = 0.0


@dataclass
class Candidate:
    arch: str
    accuracy: float
    predicted_latency_ms: float
    true_latency_ms: float | None
    feasible_predicted: bool
    feasible_true: bool | None
    false_positive: bool


@dataclass
class SearchResult:
    device: str
    budget_ms: float
    oracle: str
    objective: str
    sampler: str
    mode: str
    seed: int
    trials: int
    unique_cells: int
    best: Candidate | None
    finalists: list[Candidate]
    optimum: dict | None
    regret: float | None
    false_positives: int
    true_checks: int
    interrupted: bool = False
    message: str = ""
    fastest: dict | None = None
    pareto_front: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)

    def to_dict(self, with_history: bool = False) -> dict:
        d = asdict(self)
        if not with_history:
            d.pop("history")
        return d


def make_sampler(name: str, seed: int, mode: str) -> optuna.samplers.BaseSampler:
    """One sampler per name; constraints are read from ``trial.set_constraint`` records."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=20)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=30)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=20)
    raise ConfigError(f"unknown sampler {name!r}: use one of {', '.join(SAMPLERS)}")


def _arch_of(params: dict) -> Arch:
    return Arch(tuple(OPS.index(params[f"edge{k}"]) for k in range(NUM_EDGES)))


def optimum_under_budget(table: LatencyTable, acc: np.ndarray, budget_ms: float) -> dict | None:
    """The best accuracy among all measured cells whose true latency meets the budget."""
    lat = table.latency_ms
    ok = ~np.isnan(lat) & (lat <= budget_ms) & ~np.isnan(acc)
    if not ok.any():
        return None
    from ..space import arch_from_index
    i = int(np.flatnonzero(ok)[np.argmax(acc[ok])])
    return {"arch": str(arch_from_index(i)), "accuracy": float(acc[i]),
            "true_latency_ms": float(lat[i])}


def fastest_cell(table: LatencyTable) -> dict:
    from ..space import arch_from_index
    i = int(np.nanargmin(table.latency_ms))
    return {"arch": str(arch_from_index(i)), "true_latency_ms": float(table.latency_ms[i])}


def run_search(table: LatencyTable | None, budget_ms: float, oracle: LatencyOracle,
               accuracy: AccuracyTable | Callable[[list[Arch]], np.ndarray], *,
               objective: str = "cifar10", trials: int = 300, sampler: str = "tpe",
               mode: str = "constrained", seed: int = 0, storage: str | None = None,
               study_name: str | None = None, top: int = 5,
               validator: LatencyOracle | None = None,
               on_trial: Callable[[int, int, dict], None] | None = None,
               device_name: str | None = None) -> SearchResult:
    """Search cells maximising accuracy under ``latency <= budget_ms`` as the oracle sees it.

    The top ``top`` distinct cells the oracle calls feasible are then checked against true
    latency (``validator``, by default the device table); the answer is the most accurate
    one that truly meets the budget. ``accuracy`` is the accuracy table or any callable
    (e.g. a zero-cost proxy) mapping cells to scores.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    if objective not in OBJECTIVES and isinstance(accuracy, AccuracyTable):
        raise ConfigError(f"unknown objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
    if trials < 1 or top < 1:
        raise ConfigError("--trials and --top must be >= 1")
    if budget_ms <= 0 or not math.isfinite(budget_ms):
        raise ConfigError("the budget must be a positive latency")
    if validator is None:
        if table is None:
            raise ConfigError("run_search needs a latency table or a validator oracle")
        validator = TableOracle(table)
    score = (lambda cells: accuracy.lookup(cells, objective)) if isinstance(accuracy, AccuracyTable) \
        else accuracy
    score_cache: dict[Arch, float] = {}

    def acc_of(a: Arch) -> float:
        if a not in score_cache:
            v = float(score([a])[0])
            score_cache[a] = _NO_ACC if math.isnan(v) else v
        return score_cache[a]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = ["maximize"] if mode == "constrained" else ["maximize", "minimize"]
    study = optuna.create_study(storage=storage, study_name=study_name, load_if_exists=True,
                                directions=directions, sampler=make_sampler(sampler, seed, mode))

    def objective_fn(trial: optuna.Trial):
        a = Arch(tuple(OPS.index(trial.suggest_categorical(f"edge{k}", list(OPS)))
                       for k in range(NUM_EDGES)))
        lat = float(oracle.latency([a])[0])
        if math.isnan(lat):
            lat = math.inf
        trial.set_user_attr("arch", str(a))
        trial.set_user_attr("latency_ms", lat if math.isfinite(lat) else None)
        trial.set_constraint("latency", (lat - budget_ms) / budget_ms if math.isfinite(lat) else 1e6)
        acc = acc_of(a)
        return acc if mode == "constrained" else (acc, lat if math.isfinite(lat) else 1e9)

    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    remaining = max(trials - done, 0)
    interrupted = False

    def callback(st: optuna.Study, t: optuna.trial.FrozenTrial) -> None:
        if on_trial is not None:
            n = sum(x.state == optuna.trial.TrialState.COMPLETE for x in st.trials)
            on_trial(n, trials, {"arch": t.user_attrs.get("arch")})

    try:
        if remaining:
            study.optimize(objective_fn, n_trials=remaining, callbacks=[callback],
                           catch=(), gc_after_trial=False)
    except KeyboardInterrupt:
        interrupted = True  # finished trials are in the study (and its storage)
    def scores_everywhere() -> np.ndarray:
        # the accuracy table already is an index-ordered array; a proxy is scored only
        # when there is a table to find the optimum in
        if isinstance(accuracy, AccuracyTable):
            return accuracy.accuracy[objective]
        return score_all(score)

    res = _summarise(study, table, budget_ms, oracle, validator, acc_of, scores_everywhere,
                     objective, sampler, mode, seed, top, interrupted)
    if device_name:
        res.device = device_name
    return res


def _summarise(study, table, budget_ms, oracle, validator, acc_of, scores_everywhere, objective,
               sampler, mode, seed, top, interrupted) -> SearchResult:
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    history, seen = [], {}
    for t in complete:
        a = _arch_of(t.params)
        lat = t.user_attrs.get("latency_ms")
        lat = math.inf if lat is None else float(lat)
        history.append({"number": t.number, "arch": str(a), "accuracy": acc_of(a),
                        "predicted_latency_ms": lat if math.isfinite(lat) else None})
        seen.setdefault(a.canonical_key(), (a, lat))
    # candidates the oracle calls feasible, most accurate first (ties: faster first)
    cands = sorted(((acc_of(a), -lat, a, lat) for a, lat in seen.values() if lat <= budget_ms),
                   key=lambda c: (c[0], c[1]), reverse=True)
    finalists: list[Candidate] = []
    best = None
    checked = 0
    for acc, _, a, lat in cands:
        if checked >= top and best is not None:
            break
        true = float(validator.latency([a])[0])
        checked += 1
        ok = (not math.isnan(true)) and true <= budget_ms
        c = Candidate(str(a), acc, lat, None if math.isnan(true) else true, True,
                      None if math.isnan(true) else ok, not ok)
        finalists.append(c)
        if ok and best is None:
            best = c
    optimum = None
    if table is not None:
        optimum = optimum_under_budget(table, np.asarray(scores_everywhere()), budget_ms)
    regret = (optimum["accuracy"] - best.accuracy) if (optimum and best) else None
    fp = sum(c.false_positive for c in finalists)
    msg = ""
    fastest = None
    if best is None:
        fastest = fastest_cell(table) if table is not None and len(table) else None
        if optimum is None and table is not None:
            msg = (f"no cell can meet the budget of {budget_ms:g} ms on this device; the fastest "
                   f"cell is {fastest['arch']} at {fastest['true_latency_ms']:.3f} ms" if fastest
                   else f"no cell meets the budget of {budget_ms:g} ms")
        elif not cands:
            msg = (f"the search found no cell the oracle calls under {budget_ms:g} ms; "
                   "try more trials or another sampler")
        else:
            msg = (f"none of the {checked} candidates the oracle called feasible truly meets "
                   f"{budget_ms:g} ms (all false positives); try a better oracle or a tighter margin")
    front = []
    if mode == "pareto":
        for t in study.best_trials:
            a = _arch_of(t.params)
            front.append({"arch": str(a), "accuracy": acc_of(a),
                          "predicted_latency_ms": t.user_attrs.get("latency_ms")})
        front.sort(key=lambda r: (r["predicted_latency_ms"] or math.inf))
    return SearchResult(
        device=table.name if table is not None else "?", budget_ms=budget_ms, oracle=oracle.name, objective=objective,
        sampler=sampler, mode=mode, seed=seed, trials=len(complete), unique_cells=len(seen),
        best=best, finalists=finalists, optimum=optimum, regret=regret, false_positives=fp,
        true_checks=checked, interrupted=interrupted, message=msg, fastest=fastest,
        pareto_front=front, history=history)


def score_all(score: Callable[[list[Arch]], np.ndarray]) -> np.ndarray:
    """Objective of every cell in index order (NaN where unknown)."""
    from ..space import all_archs
    cells = list(all_archs())
    return np.asarray(score(cells), dtype=np.float64)
