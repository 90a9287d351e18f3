"""How many fold-members should ``auto``'s GCN have?  Chosen on validation cells only.

For each device and split seed, K GCNs are trained on the 900 training cells, member k
early-stopping on its own tenth of them (disjoint folds, model seed k). The averaged
(geometric) prediction of the first 1, 2, ... K members is scored on the 100 validation
cells; test columns are printed beside them and never used to choose.

    python benchmarks/ensemble_design.py desktop_gpu,desktop_cpu,mobile_dsp 0,1 3 \
        '["gcn_plus", {}]' [train|trainval]
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from nasloop.data import load_device
from nasloop.metrics import latency_metrics
from nasloop.predictors import create_predictor
from nasloop.splits import split_cells


def main() -> None:
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    devices = sys.argv[1].split(",")
    seeds = [int(s) for s in sys.argv[2].split(",")]
    k = int(sys.argv[3])
    name, params = json.loads(sys.argv[4]) if len(sys.argv) > 4 else ("gcn_plus", {})
    # "trainval": members train on training + validation cells (validation columns then
    # score seen cells and are not printed): the refit auto makes after its choice
    pool = sys.argv[5] if len(sys.argv) > 5 else "train"
    for dev in devices:
        table = load_device(dev, os.environ.get("NASLOOP_DATA"))
        for seed in seeds:
            tr, va, te = split_cells(table, 900, 100, seed, "random")
            if pool == "trainval":
                tr = tr + va
            perm = np.random.default_rng([seed, 23]).permutation(len(tr))
            folds = np.array_split(perm, 10)
            lv, lt = [], []
            for m in range(k):
                stop = set(folds[m].tolist())
                fx = [tr[i] for i in range(len(tr)) if i not in stop]
                sx = [tr[i] for i in sorted(stop)]
                t0 = time.time()
                p = create_predictor(name, **{**params, "seed": m})
                p.fit(fx, table.lookup(fx), val=(sx, table.lookup(sx)))
                lv.append(np.log(p.predict(va)))
                lt.append(np.log(p.predict(te)))
                v = latency_metrics(table.lookup(va), np.exp(np.mean(lv, 0)))
                t = latency_metrics(table.lookup(te), np.exp(np.mean(lt, 0)))
                shown = (f"VAL {v['acc_1']:5.1f} {v['acc_5']:5.1f} {v['acc_10']:5.1f} "
                         f"mape {v['mape']:5.2f}" if pool == "train" else "VAL (seen)")
                print(f"{dev:14s} s{seed} {pool} members {m + 1} {shown} | TEST {t['acc_1']:5.1f} "
                      f"{t['acc_5']:5.1f} {t['acc_10']:5.1f} sp {t['spearman']:.4f} | "
                      f"fit {time.time() - t0:5.1f}s", flush=True)


if __name__ == "__main__":
    main()
