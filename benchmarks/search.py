"""Does a better predictor buy a better search? Regret and false positives per oracle/sampler.

Budgets at the 25/50/75 % latency quantiles of each device; prints a markdown table.

    python benchmarks/search.py --devices desktop_cpu,desktop_gpu,mobile_dsp \
        --oracles true,gcn_plus,xgboost,linear,flops --samplers tpe,random,nsga2 --seeds 10 --trials 300

Each predictor oracle is fitted once per device (900 cells, split seed 0, the project's
config for that predictor) and shared by all searches on that device; the fit time is
printed on stderr and not included in s/search.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

from nasloop.config import predictor_params
from nasloop.data import load_accuracy, load_device
from nasloop.search import get_oracle, run_search


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", default="desktop_cpu,desktop_gpu,mobile_dsp")
    ap.add_argument("--oracles", default="true,gcn_plus,xgboost,linear,flops")
    ap.add_argument("--samplers", default="tpe,random,nsga2")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--data-dir", default=os.environ.get("NASLOOP_DATA"))
    a = ap.parse_args()
    acc = load_accuracy(a.data_dir, required=True)
    cache = tempfile.mkdtemp()
    print("| device | oracle | sampler | mean regret (pts) | false-positive rate | over-budget answers | s/search |")
    print("|---|---|---|---|---|---|---|")
    for dev in a.devices.split(","):
        table = load_device(dev, a.data_dir)
        budgets = np.nanquantile(table.latency_ms, [0.25, 0.5, 0.75])
        for spec in a.oracles.split(","):
            params = predictor_params(spec) if spec != "true" else {}
            t0 = time.perf_counter()
            get_oracle(spec, table, seed=0, params=params, cache_dir=cache)
            print(f"{dev} {spec}: oracle fitted in {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr, flush=True)
            for sampler in a.samplers.split(","):
                regrets, fps, finals, over, secs = [], 0, 0, 0, []
                for b in budgets:
                    for seed in range(a.seeds):
                        # a fresh oracle per search (from the disk cache): no answers carried over
                        oracle = get_oracle(spec, table, seed=0, params=params, cache_dir=cache)
                        t0 = time.perf_counter()
                        r = run_search(table, float(b), oracle, acc, trials=a.trials,
                                       sampler=sampler, seed=seed)
                        secs.append(time.perf_counter() - t0)
                        regrets.append(r.regret if r.regret is not None else np.nan)
                        fps += r.false_positives
                        finals += len(r.finalists)
                        over += int(r.best is not None and r.best.true_latency_ms > b)
                print(f"| {dev} | {spec} | {sampler} | {np.nanmean(regrets):.3f} | "
                      f"{fps / max(finals, 1):.3f} | {over} | {np.mean(secs):.2f} |", flush=True)


if __name__ == "__main__":
    main()
