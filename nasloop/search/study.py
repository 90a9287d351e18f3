"""Latency-constrained architecture search with Optuna, validated on true latency.

:func:`run_search` is the library API; ``nasloop search`` is a thin layer over it. A search
asks the latency oracle about every cell first (nearly free), then spends accuracy
evaluations only on new feasible networks (:mod:`nasloop.search.samplers`), so a study's
trials are its accuracy evaluations. At most ``top`` finalists, most accurate first, are
checked against true latency; the first that meets the budget is the answer.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import optuna

from ..data.accuracy import DATASETS, AccuracyTable
from ..data.tables import LatencyTable
from ..errors import ConfigError
from ..units import format_ms
from ..space import NUM_CELLS, OPS, Arch, arch_index
from .dashboard import record_true_checks
from .feasible import FeasibleSpace
from .oracles import LatencyOracle, TableOracle, conformal_margin
from .samplers import (DEFAULT_SAMPLER, PARAMS, SAMPLERS, default_sampler,
                       make_sampler, params_arch, sampler_name)
from .storage import check_study, fail_running, open_study, sqlite_file, sqlite_lock, study_settings

__all__ = ["DEFAULT_SAMPLER", "MODES", "OBJECTIVES", "SAMPLERS", "Candidate", "SearchConfig",
           "SearchResult", "accuracy_scorer", "check_budget", "objective_label", "run_search"]

MODES = ("constrained", "pareto")
OBJECTIVES = tuple(DATASETS)
#: what each objective is: results name it in full, not just "accuracy"
OBJECTIVE_LABELS = {
    "cifar10": "CIFAR-10 test accuracy after 200 epochs (NAS-Bench-201)",
    "cifar100": "CIFAR-100 test accuracy after 200 epochs (NAS-Bench-201)",
    "imagenet16": "ImageNet16-120 test accuracy after 200 epochs (NAS-Bench-201)",
    "synflow": "synflow zero-cost proxy (log10 score, data-free; higher is better)",
}
#: accuracy given to a trial whose cell has no accuracy (never chosen)
_NO_ACC = 0.0
#: seeds the samplers accept (numpy's legacy seeding)
MAX_SEED = 2**32 - 1


def objective_label(objective: str) -> str:
    """The objective in words, e.g. "CIFAR-10 test accuracy after 200 epochs (NAS-Bench-201)"."""
    if objective.startswith("fn:"):  # --objective-fn: the user's function, named
        return f"user objective {objective[3:]} (maximised)"
    return OBJECTIVE_LABELS.get(objective, f"{objective} score")


@dataclass(frozen=True)
class SearchConfig:
    """How a search runs: everything but the device, budget, oracle and objective table.

    ``sampler`` is a name in :data:`SAMPLERS` or any Optuna sampler (None: the default for
    ``mode``). ``trials`` counts accuracy evaluations. ``confidence`` (e.g. 0.95) makes the
    oracle's feasibility use a split-conformal margin (:func:`~.oracles.conformal_margin`).
    """

    objective: str = "cifar10"
    trials: int = 100
    sampler: str | optuna.samplers.BaseSampler | None = None
    mode: str = "constrained"
    seed: int = 0
    top: int = 5
    confidence: float | None = None
    storage: str | None = None
    study_name: str | None = None
    #: seconds between heartbeats of a running trial on a shared storage (dead workers)
    heartbeat: int = 10
    #: summarise the study as it stands, evaluating nothing (``nasloop search --report``)
    report_only: bool = False

    @property
    def sampler_label(self) -> str:
        return sampler_name(self.sampler if self.sampler is not None else default_sampler(self.mode))

    def check(self, table_objective: bool) -> None:
        """Refuse bad settings at once, with the option to fix."""
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}: use one of {', '.join(MODES)}")
        if table_objective and self.objective not in OBJECTIVES:
            raise ConfigError(f"unknown objective {self.objective!r}: use one of "
                              f"{', '.join(OBJECTIVES)}")
        if self.trials < 1 or self.top < 1:
            raise ConfigError("--trials and --top must be >= 1")
        if not isinstance(self.seed, (int, np.integer)) or not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"--seed {self.seed}: a search seed must be an integer from 0 to "
                              f"{MAX_SEED}")
        if self.confidence is not None and not 0 < self.confidence < 1:
            raise ConfigError(f"--confidence {self.confidence:g}: give a probability between 0 "
                              "and 1, e.g. 0.95")


@dataclass
class Candidate:
    arch: str
    accuracy: float
    predicted_latency_ms: float
    true_latency_ms: float | None
    feasible_predicted: bool
    feasible_true: bool | None
    false_positive: bool
    #: several targets: per target ``device, budget_ms, predicted_ms, true_ms, meets_budget``
    per_device: list[dict] = field(default_factory=list)


@dataclass
class SearchResult:
    device: str
    budget_ms: float
    oracle: str
    objective: str
    sampler: str
    mode: str
    seed: int
    #: complete trials: each is one accuracy evaluation
    trials: int
    unique_cells: int
    best: Candidate | None
    finalists: list[Candidate]
    optimum: dict | None
    #: optimum minus the answer; for a failed search, optimum minus the worst feasible cell
    regret: float | None
    false_positives: int
    #: true-latency checks spent on validation (at most ``top``)
    true_checks: int
    interrupted: bool = False
    #: finalists the validator has no true latency for (absent from the table)
    unverified: int = 0
    message: str = ""
    fastest: dict | None = None
    #: the objective in words
    objective_description: str = ""
    #: distinct networks whose accuracy (objective) was asked
    accuracy_evaluations: int = 0
    #: cells whose latency the oracle answered
    oracle_calls: int = 0
    #: networks (isomorphism classes) the oracle calls within budget
    feasible_networks: int = 0
    #: factor applied to the oracle's answers before comparing with the budget
    margin: float = 1.0
    confidence: float | None = None
    #: no finalist met the budget: nothing to ship
    failed: bool = False
    #: live mode: no finalist met the budget, and ``best`` is the most accurate cell
    #: *measured* under it (a fitted cell or a checked finalist), not a finalist
    fallback: bool = False
    pareto_front: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    #: live mode: cells timed on this machine to fit the oracle, and the whole job's time
    cells_measured: int | None = None
    seconds: float | None = None
    #: searches run, each after a refit on the finalists the last one got wrong (live mode);
    #: ``trials``, ``finalists``, ``history`` are then the last search's, while
    #: ``true_checks``, ``accuracy_evaluations`` and ``cells_measured`` count every search
    rounds: int | None = None
    #: what latencies and the budget are in: "ms", or "load" for several targets (a
    #: cell's largest latency/budget over the targets; the budget is then 1)
    unit: str = "ms"
    #: several targets: ``device, budget_ms, oracle, margin`` of each
    targets: list[dict] = field(default_factory=list)

    def to_dict(self, with_history: bool = False) -> dict:
        d = asdict(self)
        if not with_history:
            d.pop("history")
        return d


def optimum_under_budget(table: LatencyTable, acc: np.ndarray, budget_ms: float,
                         space: FeasibleSpace | None = None) -> dict | None:
    """The best accuracy among all measured cells whose true latency meets the budget.

    Also ``worst_accuracy`` (the least accurate such cell: what a failed search is scored
    as) and, given the search's feasible space, ``reachable_accuracy``: the best of its
    representatives that truly meet the budget, the most a search evaluating one cell per
    network can return (isomorphs differ in the table by training noise).
    """
    lat = table.latency_ms
    ok = ~np.isnan(lat) & (lat <= budget_ms) & ~np.isnan(acc)
    if not ok.any():
        return None
    from ..space import arch_from_index
    i = int(np.flatnonzero(ok)[np.argmax(acc[ok])])
    out = {"arch": str(arch_from_index(i)), "accuracy": float(acc[i]),
           "true_latency_ms": float(lat[i]), "worst_accuracy": float(np.min(acc[ok]))}
    if space is not None:
        reps = space.representatives
        good = reps[ok[reps]]
        out["reachable_accuracy"] = float(np.max(acc[good])) if len(good) else None
    return out


def fastest_cell(table: LatencyTable) -> dict:
    from ..space import arch_from_index
    i = int(np.nanargmin(table.latency_ms))
    return {"arch": str(arch_from_index(i)), "true_latency_ms": float(table.latency_ms[i])}


def check_budget(table: LatencyTable | None, budget_ms: float) -> None:
    """Refuse at once a budget that no measured cell meets, or that every one meets."""
    if budget_ms <= 0 or not math.isfinite(budget_ms):
        raise ConfigError(f"--budget {format_ms(budget_ms, sep='')}: the budget must be a positive latency")
    if table is None or not len(table):
        return
    lat = table.latency_ms[table.measured]
    if not (lat <= budget_ms).any():
        f = fastest_cell(table)
        raise ConfigError(f"--budget {format_ms(budget_ms, sep='')}: no cell can meet the budget on {table.name}; "
                          f"the fastest cell is {f['arch']} at {f['true_latency_ms']:.3f} ms; "
                          "give a larger budget")
    if (lat <= budget_ms).all():
        raise ConfigError(f"--budget {format_ms(budget_ms, sep='')}: every measured cell of {table.name} meets "
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


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's logging at ERROR inside, restored after: failed trials re-raise their error
    anyway, and optuna's warning would repeat it with a traceback."""
    old = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(old)


def accuracy_scorer(accuracy: AccuracyTable | Callable[[list[Arch]], np.ndarray],
                    objective: str) -> Callable[[list[Arch]], np.ndarray]:
    """``cells -> accuracies``: a benchmark table read for ``objective``, or the user's
    callable as it is (the one form every search stage calls)."""
    if isinstance(accuracy, AccuracyTable):
        return lambda cells: accuracy.lookup(cells, objective)
    return accuracy


def run_search(table: LatencyTable | None, budget_ms: float, oracle: LatencyOracle,
               accuracy: AccuracyTable | Callable[[list[Arch]], np.ndarray],
               config: SearchConfig | None = None, *,
               validator: LatencyOracle | None = None,
               on_trial: Callable[[int, int, dict], None] | None = None,
               device_name: str | None = None, unit: str = "ms",
               per_device: Callable[[str], list[dict]] | None = None,
               **settings: object) -> SearchResult:
    """Search the network maximising ``accuracy`` under ``latency <= budget_ms``.

    The oracle answers every cell once; the sampler (``config.sampler``: a name or any
    Optuna sampler) then proposes only new feasible networks, so ``config.trials`` is the
    number of accuracy evaluations. Finalists, most accurate first, are checked against
    true latency (``validator``, by default the device table) until one meets the budget,
    at most ``config.top`` of them; if none does, the result is ``failed``. ``accuracy``
    is the accuracy table or any callable (e.g. a zero-cost proxy) mapping cells to
    scores. Keyword ``settings`` override fields of ``config`` (``trials=50``). ``unit``
    says what the oracle's answers and the budget are in (``"load"`` for several targets),
    and ``per_device(arch)`` (several targets) describes a finalist on every device.
    """
    cfg = dataclasses.replace(config or SearchConfig(), **settings)
    cfg.check(isinstance(accuracy, AccuracyTable))
    mode, seed, objective = cfg.mode, int(cfg.seed), cfg.objective
    sampler = make_sampler(cfg.sampler if cfg.sampler is not None else default_sampler(mode),
                           seed, mode)  # an unknown sampler fails before anything else
    check_budget(table, budget_ms)
    if validator is None:
        if table is None:
            raise ConfigError("run_search needs a latency table or a validator oracle")
        validator = TableOracle(table)
    margin = conformal_margin(oracle, cfg.confidence) if cfg.confidence is not None else 1.0
    device_label = device_name or (table.name if table is not None else "?")
    stored = study_settings(budget_ms, device_label, oracle.name, objective, mode, cfg.sampler_label)
    study_name = check_study(cfg.storage, cfg.study_name)
    score = accuracy_scorer(accuracy, objective)
    score_cache: dict[Arch, float] = {}

    def acc_of(a: Arch) -> float:
        if a not in score_cache:
            v = float(score([a])[0])
            score_cache[a] = _NO_ACC if math.isnan(v) else v
        return score_cache[a]

    latency_all = np.asarray(oracle.latency_all(), dtype=np.float64)
    exact = None
    if oracle.measured:  # measured cells are known: their measurement, no margin
        exact = np.fromiter(oracle.measured, dtype=np.int64)
        latency_all = latency_all.copy()
        latency_all[exact] = np.fromiter(oracle.measured.values(), dtype=np.float64)
    space = FeasibleSpace(latency_all, budget_ms, margin, exact)
    sampler.bind(space)

    directions = ["maximize"] if mode == "constrained" else ["maximize", "minimize"]
    with sqlite_lock(cfg.storage), _quiet_optuna():
        study = open_study(cfg.storage, study_name, stored, directions, sampler, cfg.heartbeat,
                           create=not cfg.report_only)
        if sqlite_file(cfg.storage) is not None:
            fail_running(study)  # we hold the lock: a RUNNING trial is a dead run's leftover
        from .workers import optimize_study  # several workers, user objectives
        study, interrupted = optimize_study(
            study, space, acc_of, mode, cfg.trials, on_trial, storage=cfg.storage,
            user_objective=not getattr(accuracy, "exhaustive", True),
            report_only=cfg.report_only, heartbeat=cfg.heartbeat)
    # scores of complete trials come from the study: other workers' evaluations are not redone
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if t.values and len(t.params) == len(PARAMS):
            score_cache.setdefault(params_arch(t.params), float(t.values[0]))

    def scores_everywhere() -> np.ndarray | None:
        # the accuracy table already is an index-ordered array; a proxy is scored only
        # when there is a table to find the optimum in
        if isinstance(accuracy, AccuracyTable):
            return accuracy.accuracy[objective]
        if not getattr(accuracy, "exhaustive", True):
            return None  # a user objective (a training run) is never asked about every cell
        # the optimum is among the cells timed within the budget: only those are scored
        # (synflow takes about 0.06 s a cell: the whole space would take 15 minutes)
        lat = table.latency_ms
        return score_all(score, ~np.isnan(lat) & (lat <= budget_ms))

    res = _summarise(study, table, space, oracle, validator, acc_of, scores_everywhere, cfg,
                     interrupted, unit, device_label, per_device)
    res.oracle_calls = len(latency_all)
    res.device = device_label
    return res


def _optimize(study: optuna.Study, space: FeasibleSpace, acc_of: Callable[[Arch], float],
              mode: str, trials: int, on_trial: Callable[[int, int, dict], None] | None
              ) -> tuple[optuna.Study, bool]:
    """Run the study up to ``trials`` complete trials (accuracy evaluations); Ctrl-C stops it.

    A trial whose cell is not a new feasible network (an enqueued trial, or every feasible
    network already evaluated) is pruned before its accuracy is asked. Returns the study
    and whether it was interrupted. However it stops, no trial this process started is
    left RUNNING in the storage.
    """
    complete = optuna.trial.TrialState.COMPLETE
    evaluated = {space.class_id(params_arch(t.params))
                 for t in study.get_trials(deepcopy=False, states=(complete,))
                 if len(t.params) == len(PARAMS)}

    def objective_fn(trial: optuna.Trial):
        a = params_arch({k: trial.suggest_categorical(k, list(OPS)) for k in PARAMS})
        lat = space.predicted(a)
        trial.set_user_attr("arch", str(a))
        trial.set_user_attr("latency_ms", lat if math.isfinite(lat) else None)
        cls = space.class_id(a)
        if not space.is_representative(a) or cls in evaluated:
            raise optuna.TrialPruned()  # it would cost an accuracy evaluation in vain
        evaluated.add(cls)
        trial.set_constraint("latency", (lat - space.budget_ms) / space.budget_ms)
        acc = acc_of(a)
        return acc if mode == "constrained" else (acc, lat)

    done = len(study.get_trials(deepcopy=False, states=(complete,)))
    # never more evaluations than there are feasible networks
    target = min(trials, done + max(space.n_networks - len(evaluated), 0))
    remaining = max(target - done, 0)
    # RUNNING trials of other processes (a server database) are theirs, not ours to fail
    others = {t.number for t in study.get_trials(deepcopy=False,
                                                 states=(optuna.trial.TrialState.RUNNING,))}
    interrupted = False

    with _GracefulSigint() as sigint:
        def callback(st: optuna.Study, t: optuna.trial.FrozenTrial) -> None:
            if on_trial is not None:
                n = len(st.get_trials(deepcopy=False, states=(complete,)))
                on_trial(n, trials, {"arch": t.user_attrs.get("arch")})
            if sigint.requested or len(evaluated) >= space.n_networks:
                st.stop()

        try:
            if remaining:
                study.optimize(objective_fn, n_trials=remaining, callbacks=[callback],
                               catch=(), gc_after_trial=False)
        except KeyboardInterrupt:
            interrupted = True  # finished trials are in the study (and its storage)
        finally:
            fail_running(study, keep=others)
        if sigint.requested and len(study.get_trials(deepcopy=False, states=(complete,))) < target:
            interrupted = True
    return study, interrupted


def _wider(cfg: SearchConfig, oracle: LatencyOracle) -> str | None:
    """The --confidence advice that applies: a higher one, 0.95 where the oracle has
    held-out cells to calibrate a margin on, none for a saved predictor (it has none)."""
    if cfg.confidence is not None:
        return "a higher --confidence"
    return "--confidence 0.95" if getattr(oracle, "calibration", None) is not None else None


def _summarise(study: optuna.Study, table: LatencyTable | None, space: FeasibleSpace,
               oracle: LatencyOracle, validator: LatencyOracle, acc_of: Callable[[Arch], float],
               scores_everywhere: Callable[[], np.ndarray | None], cfg: SearchConfig,
               interrupted: bool, unit: str = "ms", device_label: str = "the device",
               per_device: Callable[[str], list[dict]] | None = None) -> SearchResult:
    budget_ms, top = space.budget_ms, cfg.top
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    history, seen, trial_of = [], {}, {}
    for t in complete:
        a = params_arch(t.params)
        lat = space.predicted(a)
        history.append({"number": t.number, "arch": str(a), "accuracy": acc_of(a),
                        "predicted_latency_ms": lat if math.isfinite(lat) else None})
        seen.setdefault(a, lat)
        trial_of.setdefault(str(a), t.number)
    # finalists: the evaluated networks, most accurate first (ties: faster, then index)
    cands = sorted(((acc_of(a), lat, arch_index(a), a) for a, lat in seen.items()),
                   key=lambda c: (-c[0], c[1], c[2]))
    finalists: list[Candidate] = []
    best = None
    for acc, lat, _, a in cands[:top]:
        true = float(validator.latency([a])[0])
        known = not math.isnan(true)  # a cell absent from the table cannot be verified
        ok = known and true <= budget_ms
        c = Candidate(str(a), acc, lat, true if known else None, True,
                      ok if known else None, known and not ok,
                      per_device(str(a)) if per_device is not None else [])
        finalists.append(c)
        if ok:
            best = c
            break
    checked = len(finalists)
    # the dashboard note only for a stored study (a dashboard can open it) and not on
    # Ctrl-C: optuna-dashboard takes a second or more to import
    if not cfg.report_only:  # a report reads the study; it writes nothing to it
        record_true_checks(study, finalists, trial_of, budget_ms, device_label, unit,
                           note=cfg.storage is not None and not interrupted)
    optimum = None
    everywhere = scores_everywhere() if table is not None else None
    if everywhere is not None:
        optimum = optimum_under_budget(table, np.asarray(everywhere), budget_ms, space)
    failed = best is None
    regret = None
    if optimum and best:
        regret = optimum["accuracy"] - best.accuracy
    elif optimum:  # nothing to ship: scored as the least accurate feasible network
        regret = optimum["accuracy"] - optimum["worst_accuracy"]
    fp = sum(c.false_positive for c in finalists)
    unverified = sum(c.true_latency_ms is None for c in finalists)
    margin_note = (f" with the {cfg.confidence:g}-confidence margin (x{space.margin:.3f})"
                   if cfg.confidence is not None else "")
    msg = ""
    fastest = None
    if best is None:
        fastest = fastest_cell(table) if table is not None and len(table) else None
        if optimum is None and everywhere is not None:
            msg = (f"no cell can meet the budget of {format_ms(budget_ms)} on this device; the fastest "
                   f"cell is {fastest['arch']} at {fastest['true_latency_ms']:.3f} ms" if fastest
                   else f"no cell meets the budget of {format_ms(budget_ms)}")
        elif not space.n_networks:
            msg = (f"the oracle calls no cell under {format_ms(budget_ms)}{margin_note}; give a larger "
                   "budget" + (" or a lower --confidence" if cfg.confidence is not None else ""))
        elif not cands:
            msg = "the search evaluated no network (interrupted?); run it again to resume"
        elif unverified == checked:
            where = table.name if table is not None else "the device"
            msg = (f"none of the {checked} finalists could be verified: they are absent from "
                   f"the table of {where}; measure them, or search with --oracle true to "
                   "consider measured cells only")
        elif unverified:
            msg = (f"none of the {checked} finalists truly meets {format_ms(budget_ms)} ({fp} false "
                   f"positive(s), {unverified} not verified: absent from the table); try "
                   + ", ".join([x for x in ("a better oracle", _wider(cfg, oracle)) if x])
                   + ", or --oracle true to search measured cells only")
        else:
            # live mode (no table): its margin is calibrated on the timed cells, and it refits
            tips = [x for x in (_wider(cfg, oracle), "a better oracle") if x]
            hint = ("try " + ", ".join(tips) + ", or a larger --top" if table is not None
                    else "try a higher --confidence (a wider margin), more --rounds, more "
                         "--train, or a larger --top")
            msg = (f"none of the {checked} finalists (--top {top}) truly meets {format_ms(budget_ms)} "
                   f"(all false positives): nothing to ship; {hint}")
    front = []
    if cfg.mode == "pareto" and complete:
        for t in study.best_trials:
            a = params_arch(t.params)
            front.append({"arch": str(a), "accuracy": acc_of(a),
                          "predicted_latency_ms": t.user_attrs.get("latency_ms")})
        front.sort(key=lambda r: (r["predicted_latency_ms"] or math.inf))
    return SearchResult(
        device=table.name if table is not None else "?", budget_ms=budget_ms, oracle=oracle.name,
        objective=cfg.objective, sampler=cfg.sampler_label, mode=cfg.mode, seed=int(cfg.seed),
        trials=len(complete), unique_cells=len(seen), best=best, finalists=finalists,
        optimum=optimum, regret=regret, false_positives=fp, true_checks=checked,
        interrupted=interrupted, unverified=unverified, message=msg, fastest=fastest,
        objective_description=objective_label(cfg.objective),
        accuracy_evaluations=len(seen), oracle_calls=NUM_CELLS,
        feasible_networks=space.n_networks, margin=space.margin, confidence=cfg.confidence,
        failed=failed, pareto_front=front, history=history, unit=unit)


def score_all(score: Callable[[list[Arch]], np.ndarray], where: np.ndarray) -> np.ndarray:
    """Objective of the cells where ``where`` is true, in index order; NaN elsewhere."""
    from ..space import NUM_CELLS, arch_from_index

    idx = np.flatnonzero(where)
    out = np.full(NUM_CELLS, np.nan)
    if idx.size:
        out[idx] = np.asarray(score([arch_from_index(int(i)) for i in idx]), dtype=np.float64)
    return out
