"""Evaluating predictors over devices and seeds (``nasloop evaluate`` and the benchmarks)."""
from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from .config import predictor_params
from .data.tables import LatencyTable
from .metrics import latency_metrics
from .predictors import create_predictor
from .search.oracles import fit_on_device, split_cells
from .space import all_archs


def evaluate_one(table: LatencyTable, name: str, *, train: int = 900, val: int = 100,
                 seed: int = 0, params: dict | None = None, progress=None) -> dict:
    """Fit ``name`` on one seeded split and return its test metrics plus timings."""
    _, _, test = split_cells(table, train, val, seed)
    t0 = time.perf_counter()
    pred, _ = fit_on_device(name, table, train=train, val=val, seed=seed, params=params,
                            progress=progress)
    fit_s = time.perf_counter() - t0
    cells = list(all_archs())
    t0 = time.perf_counter()
    pred.predict(cells)
    pred_s = time.perf_counter() - t0
    m = latency_metrics(table.lookup(test), pred.predict(test))
    m.update(fit_seconds=fit_s, predict_seconds=pred_s)
    return m


def evaluate_predictors(tables: Sequence[LatencyTable], names: Sequence[str], *, train: int = 900,
                        val: int = 100, seeds: int = 5, overrides: dict | None = None,
                        bar=None) -> list[dict]:
    """Mean and std of every metric per (device, predictor) over seeds ``0..seeds-1``."""
    results = []
    task = bar.add_task("evaluate", total=len(tables) * len(names) * seeds, info="") if bar else None
    for table in tables:
        for name in names:
            params = predictor_params(name)
            accepted = create_predictor(name).get_params()
            params.update({k: v for k, v in (overrides or {}).items() if k in accepted})
            runs = []
            for seed in range(seeds):
                if bar:
                    bar.update(task, info=f"{table.name} {name} seed {seed}")
                runs.append(evaluate_one(table, name, train=train, val=val, seed=seed, params=params))
                if bar:
                    bar.advance(task)
            keys = runs[0].keys()
            results.append({
                "device": table.name, "predictor": name, "params": params, "seeds": seeds,
                "train": train,
                "mean": {k: float(np.mean([r[k] for r in runs])) for k in keys},
                "std": {k: float(np.std([r[k] for r in runs])) for k in keys},
                "runs": runs})
    return results
