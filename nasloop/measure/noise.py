"""How much measurements disagree with themselves: the floor under any predictor's error.

Two estimates, both in % relative difference:

* run to run: the same cells timed in two separate runs (``nasloop measure --repeat-check``);
* isomorphs: cells with the same NAS-Bench-201 unique string compute the same function but
  were measured separately in the benchmark tables, so their spread is measurement noise.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..data.tables import LatencyTable
from ..space import canonical_representatives


def _summary(rel_pct: np.ndarray) -> dict[str, float]:
    rel_pct = np.asarray(rel_pct, dtype=np.float64)
    if rel_pct.size == 0:
        return {"cells": 0}
    return {
        "cells": int(rel_pct.size),
        "median_pct": float(np.median(rel_pct)), "p90_pct": float(np.percentile(rel_pct, 90)),
        "max_pct": float(rel_pct.max()),
        "within_1": float(np.mean(rel_pct <= 1) * 100), "within_5": float(np.mean(rel_pct <= 5) * 100),
        "within_10": float(np.mean(rel_pct <= 10) * 100),
    }


def run_to_run(first: LatencyTable, second: LatencyTable) -> dict[str, float]:
    """Relative difference |a - b| / mean(a, b) over the cells both runs measured."""
    both = first.measured & second.measured
    a, b = first.latency_ms[both], second.latency_ms[both]
    return _summary(np.abs(a - b) / ((a + b) / 2) * 100)


def isomorph_spread(table: LatencyTable) -> dict[str, float]:
    """Deviation of each cell from its isomorphism group's median (groups of 2 or more)."""
    idx = np.flatnonzero(table.measured)
    groups: dict[int, list[float]] = defaultdict(list)
    for rep, ms in zip(canonical_representatives()[idx], table.latency_ms[idx]):
        groups[int(rep)].append(float(ms))
    rel = []
    for vals in groups.values():
        if len(vals) > 1:
            v = np.asarray(vals)
            rel.extend(np.abs(v - np.median(v)) / np.median(v) * 100)
    out = _summary(np.asarray(rel))
    out["groups"] = sum(len(v) > 1 for v in groups.values())
    return out
