"""Time to predict every cell of the space (the paper: 6.74 s for ~14k cells on a server CPU).

    python benchmarks/predict_speed.py --device desktop_gpu --predictors gcn_plus,xgboost,linear
    python benchmarks/predict_speed.py --load runs/gcn-gpu          # a saved predictor

Each predictor is fitted once (900 cells, seed 0) or loaded, then ``predict`` over all
15,625 cells is timed: the first call (cold: the graph-encoding cache emptied first) and
the median of ``--repeats`` further calls (warm).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from nasloop.config import predictor_params
from nasloop.data import load_device
from nasloop.graph import clear_encoding_cache
from nasloop.predictors import load_predictor
from nasloop.search.oracles import fit_on_device
from nasloop.space import all_archs


def _time(pred, cells, repeats: int) -> tuple[float, float]:
    clear_encoding_cache()
    t0 = time.perf_counter()
    pred.predict(cells)
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pred.predict(cells)
        warm.append(time.perf_counter() - t0)
    return cold, statistics.median(warm)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="desktop_gpu")
    ap.add_argument("--predictors", default="gcn_plus,xgboost,linear")
    ap.add_argument("--load", action="append", default=[], help="saved predictor folder(s)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--data-dir", default=os.environ.get("NASLOOP_DATA"))
    a = ap.parse_args()
    cells = list(all_archs())
    print(f"torch threads: {torch.get_num_threads()}")
    print("| predictor | cells | cold s | warm s (median) |")
    print("|---|---|---|---|")
    preds = [(p, load_predictor(p)) for p in a.load]
    if a.predictors:
        table = load_device(a.device, a.data_dir)
        preds += [(n, fit_on_device(n, table, params=predictor_params(n))[0])
                  for n in a.predictors.split(",")]
    for label, pred in preds:
        cold, warm = _time(pred, cells, a.repeats)
        print(f"| {label} | {len(cells)} | {cold:.3f} | {warm:.3f} |", flush=True)


if __name__ == "__main__":
    main()
