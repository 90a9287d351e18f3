"""Optuna samplers that spend accuracy evaluations only on new feasible networks.

Every sampler here is a :class:`NetworkSampler`: it proposes a whole cell at once (the six
``edgeK`` parameters, as a relative sample), and only the representative of a feasible
network that no trial has evaluated yet (see :mod:`nasloop.search.feasible`). A study's
trials are then its accuracy evaluations: nothing is spent on a cell the oracle already
knows is over budget, or on an isomorph of a network already evaluated.

* :class:`FeasibleSampler` wraps any Optuna sampler (TPE, NSGA-II, random, GP): it asks the
  base sampler for proposals, maps each to its network, and keeps the first new feasible
  one; after ``tries`` misses it draws a new feasible network uniformly.
* :class:`RegularizedEvolutionSampler`: Real et al. 2019 (aging evolution), the standard
  NAS baseline: tournament among the last ``population`` evaluations, mutate one edge op.
* :class:`GuidedSampler`: predictor-guided search (BANANAS / NPENAS style): a Gaussian
  process on the isomorphism-aware one-hot op encoding, fitted on the networks evaluated so
  far, scores every unseen feasible network (the set is small enough to score whole) and
  proposes the best upper confidence bound.

Proposals are drawn from ``numpy.random.default_rng([seed, trial.number])``: the same seed
gives the same search, also across a resume.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from ..errors import ConfigError
from ..space import NUM_EDGES, OPS, Arch, all_archs, arch_from_index, arch_index
from .feasible import FeasibleSpace
from .objective import ERROR_ATTR

#: the search space: one categorical parameter per edge
PARAMS: dict[str, BaseDistribution] = {f"edge{k}": CategoricalDistribution(list(OPS))
                                       for k in range(NUM_EDGES)}
#: sampler names ``run_search`` and ``nasloop search --sampler`` accept
SAMPLERS = ("guided", "evolution", "tpe", "nsga2", "random", "gp")
#: the default, chosen by ``benchmarks/search.py`` (docs/results.md, issue #11)
DEFAULT_SAMPLER = "guided"
#: samplers that model one objective only (not ``--mode pareto``)
SINGLE_OBJECTIVE = ("guided", "evolution")


def arch_params(arch: Arch) -> dict[str, str]:
    return {f"edge{k}": OPS[o] for k, o in enumerate(arch.ops)}


def params_arch(params: dict[str, Any]) -> Arch:
    return Arch(tuple(OPS.index(params[f"edge{k}"]) for k in range(NUM_EDGES)))


def default_sampler(mode: str) -> str:
    """The default sampler name for a mode (the guided sampler models one objective)."""
    return DEFAULT_SAMPLER if mode == "constrained" else "tpe"


class NetworkSampler(optuna.samplers.BaseSampler):
    """Proposes one new feasible network per trial; subclasses implement :meth:`_propose`.

    :meth:`bind` gives it the :class:`FeasibleSpace` of a search (``run_search`` does it).
    """

    name = "network"

    def __init__(self, seed: int | None = None) -> None:
        self._seed = int(seed) if seed is not None else int(np.random.SeedSequence().entropy % 2**32)
        self._space: FeasibleSpace | None = None

    def bind(self, space: FeasibleSpace) -> None:
        self._space = space

    @property
    def space(self) -> FeasibleSpace:
        if self._space is None:
            raise RuntimeError(f"{type(self).__name__} needs a FeasibleSpace: run it through "
                               "nasloop.search.run_search, or call bind() first")
        return self._space

    # ----- optuna's sampler interface -------------------------------------------------
    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial
                                    ) -> dict[str, BaseDistribution]:
        return dict(PARAMS)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        seen, evaluated = history(study, trial, self.space)
        rng = np.random.default_rng([self._seed, trial.number])
        arch = self._propose(study, trial, rng, seen, evaluated)
        if arch is None:
            arch = self.space.random_unseen(rng, seen)
        return arch_params(arch) if arch is not None else {}  # {}: every network evaluated

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        # reached only once every feasible network is evaluated: the trial is then pruned
        choices = getattr(param_distribution, "choices", None)
        if choices is None:
            raise ConfigError(f"parameter {param_name!r} is not part of the cell search space")
        rng = np.random.default_rng([self._seed, trial.number, len(param_name)])
        return choices[int(rng.integers(len(choices)))]

    def _propose(self, study: optuna.Study, trial: FrozenTrial, rng: np.random.Generator,
                 seen: set[int], evaluated: list[tuple[Arch, float]]) -> Arch | None:
        """A new feasible representative, or None for a uniformly drawn one."""
        return None


def history(study: optuna.Study, trial: FrozenTrial, space: FeasibleSpace
            ) -> tuple[set[int], list[tuple[Arch, float]]]:
    """Classes already taken (complete or running trials) and the (arch, score) evaluated.

    A network whose evaluation failed (a user objective raised or gave NaN) is taken too:
    asking again would fail again. A trial failed because its worker died is not.
    """
    seen: set[int] = set()
    evaluated: list[tuple[Arch, float]] = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING,
                                                      TrialState.FAIL)):
        if t.number == trial.number or len(t.params) < NUM_EDGES:
            continue
        if t.state == TrialState.FAIL and ERROR_ATTR not in t.user_attrs:
            continue
        a = params_arch(t.params)
        seen.add(space.class_id(a))
        if t.state == TrialState.COMPLETE and t.values:
            evaluated.append((a, float(t.values[0])))
    return seen, evaluated


class FeasibleSampler(NetworkSampler):
    """Any Optuna sampler, restricted to new feasible networks.

    The base sampler's proposal is mapped to its network; an infeasible or already
    evaluated one is asked again (``tries`` times), then a new feasible network is drawn
    uniformly. The base sampler learns from the evaluated trials only.
    """

    def __init__(self, base: optuna.samplers.BaseSampler, seed: int | None = None,
                 tries: int = 16, name: str | None = None) -> None:
        super().__init__(seed)
        self.base = base
        self.tries = tries
        self.name = name or type(base).__name__

    def _base_params(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        space = self.base.infer_relative_search_space(study, trial)
        params = dict(self.base.sample_relative(study, trial, space)) if space else {}
        for name, dist in PARAMS.items():
            if name not in params:
                params[name] = self.base.sample_independent(study, trial, name, dist)
        return params

    def _propose(self, study, trial, rng, seen, evaluated) -> Arch | None:
        for _ in range(self.tries):
            try:
                a = params_arch(self._base_params(study, trial))
            except (KeyError, ValueError):
                continue
            rep = self.space.representative(a)
            if rep is not None and self.space.class_id(a) not in seen:
                return arch_from_index(rep)
        return None

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()


def mutate(arch: Arch, rng: np.random.Generator) -> Arch:
    """The cell with one edge's op changed to another op, both drawn uniformly."""
    k = int(rng.integers(NUM_EDGES))
    o = int(rng.integers(len(OPS) - 1))
    o = o if o < arch.ops[k] else o + 1
    return Arch(arch.ops[:k] + (o,) + arch.ops[k + 1:])


class RegularizedEvolutionSampler(NetworkSampler):
    """Regularized (aging) evolution, Real et al. 2019.

    The population is the last ``population`` evaluations (the oldest ages out as each
    child is evaluated); a parent is the best of ``sample_size`` drawn from it, and the
    child changes one edge op. The first ``population`` networks are drawn uniformly.
    """

    name = "evolution"

    def __init__(self, seed: int | None = None, population: int = 20, sample_size: int = 5,
                 tries: int = 100) -> None:
        super().__init__(seed)
        if population < 2 or not 1 <= sample_size <= population:
            raise ConfigError(f"evolution: population {population} and sample size {sample_size}: "
                              "need population >= 2 and 1 <= sample size <= population")
        self.population, self.sample_size, self.tries = population, sample_size, tries

    def _propose(self, study, trial, rng, seen, evaluated) -> Arch | None:
        if len(evaluated) < self.population:
            return None
        pop = evaluated[-self.population:]
        for _ in range(self.tries):
            pick = rng.choice(len(pop), size=self.sample_size, replace=False)
            parent = max((pop[int(i)] for i in pick), key=lambda t: t[1])[0]
            child = mutate(parent, rng)
            rep = self.space.representative(child)
            if rep is not None and self.space.class_id(child) not in seen:
                return arch_from_index(rep)
        return None


@functools.lru_cache(maxsize=1)
def live_op_features() -> np.ndarray:
    """One-hot op per edge (15,625 x 30), dead edges read as ``none``: isomorphs share most."""
    ops = np.array([[o if live else 0 for o, live in zip(a.ops, a.live_edges())]
                    for a in all_archs()])
    feats = np.concatenate([(ops == o) for o in range(len(OPS))], axis=1).astype(np.float64)
    feats.flags.writeable = False
    return feats


class GuidedSampler(NetworkSampler):
    """Predictor-guided search: a model of the objective picks the next network.

    After ``n_init`` uniformly drawn networks, a Gaussian process (exponential Hamming
    kernel ``exp(-(edges that differ)/lengthscale)`` on :func:`live_op_features`, scores
    standardised) is fitted on every network evaluated so far, predicts every unseen
    feasible network, and the one with the highest ``mean + kappa * std`` is proposed.
    Deterministic given the seed (which only draws the first ``n_init``). Settings chosen
    on the true-latency oracle (docs/results.md, issue #11).
    """

    name = "guided"

    def __init__(self, seed: int | None = None, n_init: int = 10, lengthscale: float = 3.0,
                 kappa: float = 2.0, noise: float = 1e-3) -> None:
        super().__init__(seed)
        if n_init < 1 or lengthscale <= 0 or kappa < 0 or noise <= 0:
            raise ConfigError("guided: need n_init >= 1, lengthscale > 0, kappa >= 0, noise > 0")
        self.n_init, self.lengthscale, self.kappa, self.noise = n_init, lengthscale, kappa, noise

    def _kernel(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.exp(-(NUM_EDGES - a @ b.T) / self.lengthscale)

    def predict(self, train: list[tuple[Arch, float]], cells: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """GP posterior mean and std (in score units) at cell indices ``cells``."""
        feats = live_op_features()
        pts = [(a, y) for a, y in train if np.isfinite(y)]
        x = feats[[arch_index(a) for a, _ in pts]]
        y = np.array([v for _, v in pts], dtype=np.float64)
        mu, sd = float(y.mean()), float(y.std()) or 1.0
        k = self._kernel(x, x) + self.noise * np.eye(len(x))
        chol = np.linalg.cholesky(k)
        alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, (y - mu) / sd))
        ks = self._kernel(feats[cells], x)
        mean = ks @ alpha
        v = np.linalg.solve(chol, ks.T)
        var = np.maximum(1.0 - (v * v).sum(axis=0), 1e-12)
        return mu + sd * mean, sd * np.sqrt(var)

    def _propose(self, study, trial, rng, seen, evaluated) -> Arch | None:
        if len(evaluated) < self.n_init:
            return None
        cand = self.space.unseen(seen)
        if not len(cand):
            return None
        mean, std = self.predict(evaluated, cand)
        return arch_from_index(int(cand[int(np.argmax(mean + self.kappa * std))]))


def sampler_name(sampler: str | optuna.samplers.BaseSampler) -> str:
    """The name recorded with a study: the sampler's name, or its class name."""
    if isinstance(sampler, str):
        return sampler
    return str(getattr(sampler, "name", None) or type(sampler).__name__)


def make_sampler(sampler: str | optuna.samplers.BaseSampler, seed: int, mode: str
                 ) -> NetworkSampler:
    """A :class:`NetworkSampler` from a name in :data:`SAMPLERS`, or any Optuna sampler.

    An Optuna sampler that is not already a :class:`NetworkSampler` is wrapped in a
    :class:`FeasibleSampler`, so it too spends no evaluation in vain.
    """
    if isinstance(sampler, NetworkSampler):
        if mode != "constrained" and isinstance(sampler, (GuidedSampler, RegularizedEvolutionSampler)):
            raise ConfigError(f"sampler {sampler_name(sampler)!r} models one objective: use tpe, "
                              "nsga2 or random with --mode pareto")
        return sampler
    if isinstance(sampler, optuna.samplers.BaseSampler):
        return FeasibleSampler(sampler, seed=seed)
    if not isinstance(sampler, str) or sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}: use one of {', '.join(SAMPLERS)}, or "
                          "pass an optuna sampler object")
    if sampler in SINGLE_OBJECTIVE and mode != "constrained":
        raise ConfigError(f"--sampler {sampler} models one objective: use tpe, nsga2 or random "
                          "with --mode pareto")
    if sampler == "guided":
        return GuidedSampler(seed=seed)
    if sampler == "evolution":
        return RegularizedEvolutionSampler(seed=seed)
    if sampler == "tpe":
        base: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(
            seed=seed, multivariate=True, n_startup_trials=10)
    elif sampler == "nsga2":
        base = optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    elif sampler == "random":
        base = optuna.samplers.RandomSampler(seed=seed)
    else:  # gp
        try:
            base = optuna.samplers.GPSampler(seed=seed, n_startup_trials=10)
        except ImportError as e:
            raise ConfigError(f"--sampler gp needs optuna's GPSampler dependencies ({e}); "
                              "install torch and scipy, or use another sampler") from None
    # GP proposals are costly (an acquisition optimisation each) and repeat themselves
    return FeasibleSampler(base, seed=seed, name=sampler, tries=2 if sampler == "gp" else 16)
