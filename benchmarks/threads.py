"""One thread or two: XGBoost's fit and synflow on this machine, as it is loaded now.

Why nasloop defaults XGBoost to ``n_jobs=1`` and scores synflow on one torch thread
(session 17): on a busy machine, OpenMP / intra-op threads wait on each other. ``auto``
fits XGBoost beside its GCN workers, and a search scores one network per trial, so a
machine that is already busy is the common case. Run it on a quiet machine and beside a
load (e.g. an ``auto`` benchmark) to see both sides; it prints the load average with the
table.

    python benchmarks/threads.py [--repeats 3] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def _xgb_fit(n_jobs: int) -> float:
    from nasloop.predictors import create_predictor
    from nasloop.space import sample_cells

    cells = sample_cells(900, seed=0)
    y = np.random.default_rng(0).lognormal(size=len(cells))
    t0 = time.perf_counter()
    create_predictor("xgboost", n_jobs=n_jobs).fit(cells, y)
    return time.perf_counter() - t0


def _synflow(threads: int, n: int = 6) -> float:
    import torch

    from nasloop.measure.timing import pinned_threads
    from nasloop.measure.zero_cost import _synflow
    from nasloop.space import sample_cells

    cells = sample_cells(n, seed=1)
    with pinned_threads(threads):
        assert torch.get_num_threads() == threads
        t0 = time.perf_counter()
        for a in cells:
            _synflow(a, 0)
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    load = os.getloadavg()[0]
    rows = []
    for what, fn, unit in (("XGBoost fit, 900 cells", _xgb_fit, "s"),
                           ("synflow, one cell", _synflow, "s")):
        for threads in (1, 2):
            times = [fn(threads) for _ in range(a.repeats)]
            rows.append({"work": what, "threads": threads, "median_s": float(np.median(times)),
                         "min_s": float(np.min(times)), "max_s": float(np.max(times))})
    if a.json:
        print(json.dumps({"load_avg_1min": load, "rows": rows}, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"one thread or two (load average {load:.2f} at the start, "
                    f"{os.cpu_count()} cores)")
    for c in ("work", "threads", "median s", "min s", "max s"):
        t.add_column(c, justify="left" if c == "work" else "right")
    for r in rows:
        t.add_row(r["work"], str(r["threads"]), f"{r['median_s']:.3f}", f"{r['min_s']:.3f}",
                  f"{r['max_s']:.3f}")
    Console().print(t)


if __name__ == "__main__":
    main()
