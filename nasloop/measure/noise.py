"""How much measurements disagree with themselves: the floor under any predictor's error.

Two estimates, both in % relative difference:

* run to run: the same cells timed in two separate runs (``nasloop measure --repeat-check``);
* isomorphs: cells with the same NAS-Bench-201 unique string compute the same function but
  were measured separately in the benchmark tables, so their spread is measurement noise;
* leave one out, by group size: each isomorph against the median of the *others*. In a
  large group that median is close to the network's true latency, so the share within a
  bound is about what a predictor that knew the truth would score there: the ceiling of
  acc_5 / acc_10 (a pair's difference holds two draws of noise and reads lower).
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


def isomorph_cells(table: LatencyTable, min_size: int = 2) -> list[np.ndarray]:
    """The measured cells (indices) of each isomorphism group with ``min_size`` or more."""
    idx = np.flatnonzero(table.measured)
    groups: dict[int, list[int]] = defaultdict(list)
    for rep, i in zip(canonical_representatives()[idx], idx):
        groups[int(rep)].append(int(i))
    return [np.asarray(v) for v in groups.values() if len(v) >= min_size]


def _isomorph_groups(table: LatencyTable) -> list[np.ndarray]:
    """The measured latencies of each isomorphism group with two or more measured cells."""
    return [table.latency_ms[v] for v in isomorph_cells(table)]


#: group-size bands of :func:`isomorph_loo` (inclusive; None: no upper end)
SIZE_BANDS = ((2, 2), (3, 4), (5, 9), (10, None))


def isomorph_loo(table: LatencyTable,
                 bands: tuple[tuple[int, int | None], ...] = SIZE_BANDS) -> list[dict]:
    """Each isomorph's deviation from the median of the other members of its group, one
    summary per group-size band (``band``: "2", "3-4", "10+", ...)."""
    rel: dict[tuple, list[float]] = defaultdict(list)
    for v in _isomorph_groups(table):
        band = next(((lo, hi) for lo, hi in bands if len(v) >= lo and (hi is None or len(v) <= hi)),
                    None)
        if band is None:
            continue
        for j in range(len(v)):
            m = np.median(np.delete(v, j))
            rel[band].append(abs(v[j] - m) / m * 100)
    out = []
    for lo, hi in bands:
        name = f"{lo}+" if hi is None else (str(lo) if lo == hi else f"{lo}-{hi}")
        out.append({"band": name, **_summary(np.asarray(rel[(lo, hi)]))})
    return out


def isomorph_spread(table: LatencyTable) -> dict[str, float]:
    """Deviation of each cell from its isomorphism group's median (groups of 2 or more)."""
    groups = _isomorph_groups(table)
    rel = [x for v in groups for x in np.abs(v - np.median(v)) / np.median(v) * 100]
    out = _summary(np.asarray(rel))
    out["groups"] = len(groups)
    return out
