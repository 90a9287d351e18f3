"""Latency-constrained architecture search with Optuna, validated on true latency.

:func:`run_search` is the library API; ``nasloop search`` is a thin layer over it.
"""
from __future__ import annotations

import math
import signal
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import optuna

from ..data.accuracy import DATASETS, AccuracyTable
from ..data.tables import LatencyTable
from ..errors import ConfigError
from ..space import NUM_EDGES, OPS, Arch
from .oracles import LatencyOracle, TableOracle
from .storage import check_study, fail_running, open_study, sqlite_file, sqlite_lock, study_settings

SAMPLERS = ("tpe", "nsga2", "random", "gp")
MODES = ("constrained", "pareto")
OBJECTIVES = tuple(DATASETS)
#: accuracy given to a trial whose cell has no accuracy (never chosen)
_NO_ACC = 0.0
#: seeds the samplers accept (numpy's legacy seeding)
MAX_SEED = 2**32 - 1


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
    #: finalists the validator has no true latency for (absent from the table)
    unverified: int = 0
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


def check_budget(table: LatencyTable | None, budget_ms: float) -> None:
    """Refuse at once a budget that no measured cell meets, or that every one meets."""
    if budget_ms <= 0 or not math.isfinite(budget_ms):
        raise ConfigError(f"--budget {budget_ms:g} ms: the budget must be a positive latency")
    if table is None or not len(table):
        return
    lat = table.latency_ms[table.measured]
    if not (lat <= budget_ms).any():
        f = fastest_cell(table)
        raise ConfigError(f"--budget {budget_ms:g}ms: no cell can meet the budget on {table.name}; "
                          f"the fastest cell is {f['arch']} at {f['true_latency_ms']:.3f} ms; "
                          "give a larger budget")
    if (lat <= budget_ms).all():
        raise ConfigError(f"--budget {budget_ms:g}ms: every measured cell of {table.name} meets "
                          f"it (the slowest takes {lat.max():.3f} ms), so it constrains nothing; "
                          f"give a budget between {lat.min():.3f} and {lat.max():.3f} ms")


class _GracefulSigint:
    """The first Ctrl-C asks the search to stop after the trial in progress; a second aborts.

    A ``KeyboardInterrupt`` raised at an arbitrary point can land in a weakref or garbage
    collection callback, where Python prints "Exception ignored" and the search runs on,
    or leave a trial RUNNING in the storage. A flag checked between trials does neither.
    """

    def __init__(self) -> None:
        self.requested = False
        self._old: object = None
        self._installed = False

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "_GracefulSigint":
        if threading.current_thread() is threading.main_thread():
            self._old = signal.getsignal(signal.SIGINT)
            if self._old is not signal.SIG_IGN:  # a process told to ignore Ctrl-C keeps doing so
                signal.signal(signal.SIGINT, self._handle)
                self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            old = self._old if self._old is not None else signal.default_int_handler
            signal.signal(signal.SIGINT, old)  # type: ignore[arg-type]


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
    if not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"--seed {seed}: a search seed must be an integer from 0 to {MAX_SEED}")
    make_sampler(sampler, seed, mode)  # an unknown sampler fails before anything else
    check_budget(table, budget_ms)
    if validator is None:
        if table is None:
            raise ConfigError("run_search needs a latency table or a validator oracle")
        validator = TableOracle(table)
    device_label = device_name or (table.name if table is not None else "?")
    settings = study_settings(budget_ms, device_label, oracle.name, objective, mode, sampler)
    study_name = check_study(storage, study_name)
    score = (lambda cells: accuracy.lookup(cells, objective)) if isinstance(accuracy, AccuracyTable) \
        else accuracy
    score_cache: dict[Arch, float] = {}

    def acc_of(a: Arch) -> float:
        if a not in score_cache:
            v = float(score([a])[0])
            score_cache[a] = _NO_ACC if math.isnan(v) else v
        return score_cache[a]

    # failed trials re-raise their error anyway; optuna's warning would repeat it with a traceback
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    directions = ["maximize"] if mode == "constrained" else ["maximize", "minimize"]
    with sqlite_lock(storage):
        study = open_study(storage, study_name, settings, directions,
                            make_sampler(sampler, seed, mode))
        if sqlite_file(storage) is not None:
            fail_running(study)  # we hold the lock: a RUNNING trial is a dead run's leftover
        study, interrupted = _optimize(study, oracle, budget_ms, acc_of, mode, trials, on_trial)

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


def _optimize(study: optuna.Study, oracle: LatencyOracle, budget_ms: float,
              acc_of: Callable[[Arch], float], mode: str, trials: int,
              on_trial: Callable[[int, int, dict], None] | None) -> tuple[optuna.Study, bool]:
    """Run the study up to ``trials`` complete trials; Ctrl-C stops it cleanly.

    Returns the study and whether it was interrupted. However it stops, no trial this
    process started is left RUNNING in the storage.
    """
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

    complete = optuna.trial.TrialState.COMPLETE
    done = len(study.get_trials(deepcopy=False, states=(complete,)))
    remaining = max(trials - done, 0)
    # RUNNING trials of other processes (a server database) are theirs, not ours to fail
    others = {t.number for t in study.get_trials(deepcopy=False,
                                                 states=(optuna.trial.TrialState.RUNNING,))}
    interrupted = False

    with _GracefulSigint() as sigint:
        def callback(st: optuna.Study, t: optuna.trial.FrozenTrial) -> None:
            if on_trial is not None:
                n = len(st.get_trials(deepcopy=False, states=(complete,)))
                on_trial(n, trials, {"arch": t.user_attrs.get("arch")})
            if sigint.requested:
                st.stop()

        try:
            if remaining:
                study.optimize(objective_fn, n_trials=remaining, callbacks=[callback],
                               catch=(), gc_after_trial=False)
        except KeyboardInterrupt:
            interrupted = True  # finished trials are in the study (and its storage)
        finally:
            fail_running(study, keep=others)
        if sigint.requested and len(study.get_trials(deepcopy=False, states=(complete,))) < trials:
            interrupted = True
    return study, interrupted


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
        known = not math.isnan(true)  # a cell absent from the table cannot be verified
        ok = known and true <= budget_ms
        c = Candidate(str(a), acc, lat, true if known else None, True,
                      ok if known else None, known and not ok)
        finalists.append(c)
        if ok and best is None:
            best = c
    optimum = None
    if table is not None:
        optimum = optimum_under_budget(table, np.asarray(scores_everywhere()), budget_ms)
    regret = (optimum["accuracy"] - best.accuracy) if (optimum and best) else None
    fp = sum(c.false_positive for c in finalists)
    unverified = sum(c.true_latency_ms is None for c in finalists)
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
        elif unverified == checked:
            where = table.name if table is not None else "the device"
            msg = (f"none of the {checked} candidates the oracle called feasible could be "
                   f"verified: they are absent from the table of {where}; measure them, or "
                   "search with --oracle true to consider measured cells only")
        elif unverified:
            msg = (f"none of the {checked} candidates the oracle called feasible truly meets "
                   f"{budget_ms:g} ms ({fp} false positive(s), {unverified} not verified: absent "
                   "from the table); try a better oracle, or --oracle true to search measured "
                   "cells only")
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
        true_checks=checked, interrupted=interrupted, unverified=unverified, message=msg,
        fastest=fastest,
        pareto_front=front, history=history)


def score_all(score: Callable[[list[Arch]], np.ndarray]) -> np.ndarray:
    """Objective of every cell in index order (NaN where unknown)."""
    from ..space import all_archs
    cells = list(all_archs())
    return np.asarray(score(cells), dtype=np.float64)
