"""Timing protocols side by side: how well two runs over the same cells agree, and the cost.

Each protocol measures the same seeded cells twice, back to back (as ``nasloop measure
--repeat-check`` does), and the two runs are compared cell by cell. Run it on a quiet
machine, nothing else running, and say how quiet it was.

    python benchmarks/protocol.py --cells 300 --out benchmarks/results/protocol.jsonl

Protocols: ``old`` is one pass of 3 warm-up + 10 timed runs per cell, latency the
median (the protocol of the documented noise run); ``new_once`` is nasloop measure's
default (3 interleaved rounds of 1 + 7 runs: 24 runs a cell, under twice old's 13; latency
the minimum over the 21 timed runs); ``new`` is the default before session 5, which also
re-timed cells whose round minima spread over 10 % (nearly all of them); ``new_median`` is
that with the median. All time the deployable network, so only the protocol differs.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from nasloop.data.tables import load_csv_table
from nasloop.measure.noise import run_to_run
from nasloop.measure.timing import TimingProtocol, measure_to_csv
from nasloop.space import sample_cells

PROTOCOLS = {
    "old": TimingProtocol(rounds=1, warmup=3, repeats=10, statistic="median"),
    # the default since session 5: 3 interleaved rounds of 1 + 7 runs, minimum, 24 runs a cell
    "new_once": TimingProtocol(),
    # the default before: cells whose round minima spread over 10 % get 3 more rounds
    "new": TimingProtocol(remeasure_pct=10.0),
    "new_median": TimingProtocol(statistic="median", remeasure_pct=10.0),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--protocols", default=",".join(PROTOCOLS))
    ap.add_argument("--out", type=Path, default=None, help="JSON-lines file to append to")
    a = ap.parse_args()
    cells = sample_cells(a.cells, a.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.protocols.split(","):
            p = PROTOCOLS[name]
            paths, secs = [], []
            for run in (1, 2):
                path = Path(tmp) / f"{name}-{run}.csv"
                t0 = time.perf_counter()
                measure_to_csv(cells, path, "cpu", protocol=p)
                secs.append(time.perf_counter() - t0)
                paths.append(path)
            noise = run_to_run(*(load_csv_table(x) for x in paths))
            row = {"protocol": name, "settings": p.key(), "cells": a.cells, "seed": a.seed,
                   "seconds_per_cell": sum(secs) / (2 * a.cells), **noise,
                   "load_before": os.getloadavg()[0]}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if a.out:
                with open(a.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
    t = Table(title=f"run-to-run agreement, {a.cells} cells, two back-to-back runs each")
    for col in ("protocol", "s / cell", "within 1 %", "within 5 %", "within 10 %", "median %",
                "p90 %"):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(r["protocol"], f"{r['seconds_per_cell']:.3f}", f"{r['within_1']:.1f}",
                  f"{r['within_5']:.1f}", f"{r['within_10']:.1f}", f"{r['median_pct']:.2f}",
                  f"{r['p90_pct']:.2f}")
    Console().print(t)


if __name__ == "__main__":
    main()
