"""Compare predictor variants on one split: validation and test metrics side by side.

Defaults are chosen on the validation columns; the test columns are reported, never used
to choose. Prints one line per (device, seed, variant).

    python benchmarks/variants.py desktop_gpu,help_silver_4114 \
        '{"directed": ["gcn_plus", {"adjacency": "directed"}], "normal": ["gcn_plus", {"adjacency": "normal"}]}' 0
    python benchmarks/variants.py desktop_gpu '{"gcn_paper": ["gcn", {"threads": 1}]}' 0
"""
from __future__ import annotations

import json
import os
import sys
import time

from nasloop.data import load_device
from nasloop.metrics import latency_metrics
from nasloop.predictors import create_predictor
from nasloop.splits import split_cells


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    devices = sys.argv[1].split(",")
    variants = json.loads(sys.argv[2])
    seeds = [int(s) for s in (sys.argv[3] if len(sys.argv) > 3 else "0").split(",")]
    kind = sys.argv[4] if len(sys.argv) > 4 else "random"
    for dev in devices:
        table = load_device(dev, os.environ.get("NASLOOP_DATA"))
        for seed in seeds:
            tr, va, te = split_cells(table, 900, 100, seed, kind)
            for label, (name, params) in variants.items():
                t0 = time.time()
                p = create_predictor(name, **params)
                epochs = [0]
                p.fit(tr, table.lookup(tr), val=(va, table.lookup(va)),
                      progress=lambda e, n, i: epochs.__setitem__(0, e))
                fit = time.time() - t0
                v = latency_metrics(table.lookup(va), p.predict(va))
                m = latency_metrics(table.lookup(te), p.predict(te))
                extra = p.summary() if hasattr(p, "summary") else ""
                print(f"{dev:24s} s{seed} {label:18s} VAL {v['acc_5']:5.1f} {v['acc_10']:5.1f} "
                      f"mape {v['mape']:5.2f} | TEST {m['acc_1']:5.1f} {m['acc_5']:5.1f} "
                      f"{m['acc_10']:5.1f} sp {m['spearman']:.4f} | fit {fit:6.1f}s "
                      f"ep {epochs[0]} {extra}", flush=True)


if __name__ == "__main__":
    main()
