"""One network for several targets: ``--device A --budget 5ms --device B --budget 20ms``.

Each target has its own table, budget and oracle. The search runs on one joint
constraint: a cell's *load* on a target is its latency over that target's budget, and a
cell is feasible when its largest load is at most 1. The joint oracle answers the largest
predicted load (each target's answer times its own conformal margin), the joint table
holds the largest true load, and everything a single-device search does (the feasible
set, no evaluation in vain, validation bounded by ``top``, regret against the true
optimum) carries over unchanged. Each finalist is then reported target by target.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..data.accuracy import AccuracyTable
from ..data.tables import LatencyTable
from ..errors import ConfigError
from ..space import NUM_CELLS, Arch, arch_from_index
from .oracles import LatencyOracle, conformal_margin
from .study import SearchConfig, SearchResult, check_budget, run_search


@dataclass(frozen=True)
class Target:
    """A device the network must run on, its latency budget, and the oracle for it."""

    table: LatencyTable
    budget_ms: float
    oracle: LatencyOracle


#: a device's table and its budget in ms
Pair = tuple[LatencyTable, float]


def targets_label(pairs: Sequence[Pair]) -> str:
    """``desktop_cpu<=5ms+desktop_gpu<=20ms``: the devices and budgets (a study's device)."""
    return "+".join(f"{table.name}<={budget:g}ms" for table, budget in pairs)


class LoadOracle(LatencyOracle):
    """The largest predicted load (latency x margin / budget) over the targets."""

    canonical_cache = False  # the targets' oracles answer per cell

    def __init__(self, targets: Sequence[Target], margins: Sequence[float]):
        super().__init__()
        self.targets, self.margins = list(targets), list(margins)
        self.name = "+".join(dict.fromkeys(t.oracle.name for t in targets))
        self.exact = all(t.oracle.exact for t in targets) and all(m == 1 for m in margins)

    def _compute(self, archs: list[Arch]) -> np.ndarray:
        loads = [np.asarray(t.oracle.latency(archs), dtype=np.float64) * m / t.budget_ms
                 for t, m in zip(self.targets, self.margins)]
        return np.max(loads, axis=0)  # NaN (no answer) on any target: not feasible


def joint_table(pairs: Sequence[Pair]) -> LatencyTable:
    """The largest true load of every cell (NaN where a target has not measured it)."""
    loads = np.max([table.latency_ms / budget for table, budget in pairs], axis=0)
    return LatencyTable(targets_label(pairs), "largest latency/budget over the targets",
                        ", ".join(table.source for table, _ in pairs), loads)


def check_targets(pairs: Sequence[Pair]) -> LatencyTable:
    """Refuse at once a budget no cell meets, or targets no cell meets together.

    Returns the joint table (largest true load of every cell).
    """
    if len(pairs) < 1:
        raise ConfigError("give at least one --device with its --budget")
    names = [table.name for table, _ in pairs]
    if len(set(names)) < len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"--device {dup} is given twice: give each device once, with one "
                          "--budget")
    for table, budget in pairs:
        check_budget(table, budget)
    joint = joint_table(pairs)
    if not np.any(joint.latency_ms <= 1.0):
        if not joint.measured.any():
            raise ConfigError(f"no cell is measured on every device ({targets_label(pairs)}); "
                              "give tables that share cells")
        i = int(np.nanargmin(joint.latency_ms))
        worst = ", ".join(f"{table.name} {table.latency_ms[i]:.3f} ms" for table, _ in pairs)
        raise ConfigError(f"no cell meets every budget ({targets_label(pairs)}); the closest "
                          f"is {arch_from_index(i)} ({worst}); give larger budgets")
    if np.all(joint.latency_ms[joint.measured] <= 1.0):
        raise ConfigError(f"every cell measured on all of {', '.join(names)} meets every "
                          f"budget ({targets_label(pairs)}), so they constrain nothing "
                          "together; give smaller budgets")
    return joint


def run_multi_search(targets: Sequence[Target],
                     accuracy: AccuracyTable | Callable[[list[Arch]], np.ndarray],
                     config: SearchConfig | None = None, *,
                     on_trial: Callable[[int, int, dict], None] | None = None,
                     **settings: object) -> SearchResult:
    """The most accurate network meeting every target's budget, each checked on its table.

    Latencies in the result are loads (``unit == "load"``, budget 1); each finalist's
    ``per_device`` gives its predicted and true latency in ms on every target. A true
    check reads every target's table, so ``true_checks`` counts finalists x targets.
    """
    cfg = dataclasses.replace(config or SearchConfig(), **settings)
    targets = list(targets)
    pairs = [(t.table, t.budget_ms) for t in targets]
    joint = check_targets(pairs)
    margins = [conformal_margin(t.oracle, cfg.confidence) if cfg.confidence is not None
               else 1.0 for t in targets]
    oracle = LoadOracle(targets, margins)
    label = targets_label(pairs)
    res = run_search(joint, 1.0, oracle, accuracy, dataclasses.replace(cfg, confidence=None),
                     on_trial=on_trial, device_name=label, unit="load",
                     per_device=lambda arch: _per_device(targets, arch))
    res.confidence = cfg.confidence
    res.margin = max(margins)
    res.targets = [{"device": t.table.name, "budget_ms": t.budget_ms, "oracle": t.oracle.name,
                    "margin": m} for t, m in zip(targets, margins)]
    if res.optimum is not None:
        res.optimum["per_device"] = _per_device(targets, res.optimum["arch"])
    res.true_checks *= len(targets)
    res.oracle_calls = NUM_CELLS * len(targets)
    if res.failed and res.finalists:
        unverified = sorted({r["device"] for c in res.finalists for r in c.per_device
                             if r["meets_budget"] is None})
        res.message = (f"none of the {len(res.finalists)} finalists (--top {cfg.top}) meets "
                       f"every budget on its own device ({label})"
                       + (f"; some could not be verified: absent from the table of "
                          f"{', '.join(unverified)}" if unverified else "")
                       + "; try --confidence 0.95, a better oracle, or a larger --top")
    elif res.failed and not res.feasible_networks:
        res.message = (f"the oracles call no cell within every budget ({label}"
                       + (f", with the {cfg.confidence:g}-confidence margins" if
                          cfg.confidence is not None else "") + "); give larger budgets"
                       + (" or a lower --confidence" if cfg.confidence is not None else ""))
    return res


def _per_device(targets: Sequence[Target], arch: str) -> list[dict]:
    rows = []
    for t in targets:
        pred = float(t.oracle.latency([arch])[0])
        true = t.table.get(arch)
        rows.append({"device": t.table.name, "budget_ms": t.budget_ms,
                     "predicted_ms": pred if np.isfinite(pred) else None, "true_ms": true,
                     "meets_budget": None if true is None else true <= t.budget_ms})
    return rows
