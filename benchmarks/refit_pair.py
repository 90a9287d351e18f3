"""Does averaging auto's GCN candidate with its refit help? (an idea for issue #9; session 10)

``auto`` fits a GCN (``gcn_plus``; ``--candidate gcn_residual``) on 810 training cells (early stop on 90) to choose, then refits
it on the 1,000 training + validation cells (early stop on 100) and keeps only the refit.
The first model is already paid for. This fits ``auto`` restricted to ``gcn_plus`` (same
rng stream as the full ``auto`` when it chooses ``gcn_plus`` alone) on the issue's random
split, 900 / 100 / rest, split seed = model seed, and scores on the test cells: the
candidate, the refit, and their geometric mean (weights 0.5 / 0.5). Nothing is chosen by
it here: it measures whether the pair is worth building.

    python benchmarks/refit_pair.py --devices desktop_gpu,mobile_cpu_kryo460 --seeds 0,1 \
        --out benchmarks/results/refit_pair.jsonl
    python benchmarks/refit_pair.py --report benchmarks/results/refit_pair.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from every_device import load_results  # benchmarks/ is on sys.path when run as a script


def report(path: Path) -> None:
    """Per table (mean over seeds) and over every run: candidate, refit, pair."""
    from collections import defaultdict

    rows = load_results(path)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["device"], r.get("gcn", "gcn_plus"))].append(r)
    print("| table (GCN) | seeds | candidate (810 cells) acc_5 / acc_10 | refit (1,000) | pair "
          "| pair - refit: acc_5 / acc_10 / Spearman |")
    print("|---|---|---|---|---|---|")

    def mean(rs, k, m):
        return float(np.mean([r[k][m] for r in rs]))
    for (dev, gcn), rs in groups.items():
        cells = [f"{mean(rs, k, 'acc_5'):.1f} / {mean(rs, k, 'acc_10'):.1f}"
                 for k in ("candidate", "refit", "pair")]
        d = [mean(rs, "pair", m) - mean(rs, "refit", m) for m in ("acc_5", "acc_10", "spearman")]
        print(f"| {dev} ({gcn}) | {len(rs)} | " + " | ".join(cells)
              + f" | {d[0]:+.1f} / {d[1]:+.1f} / {d[2]:+.4f} |")
    for m in ("acc_1", "acc_5", "acc_10", "spearman"):
        d = [r["pair"][m] - r["refit"][m] for r in rows]
        print(f"{m}: pair - refit over {len(d)} runs: mean {np.mean(d):+.3f}, worst {min(d):+.3f}, "
              f"best {max(d):+.3f}, pair ahead in {sum(v > 0 for v in d)}")


def main() -> None:
    from nasloop.data import load_device
    from nasloop.metrics import latency_metrics
    from nasloop.predictors import create_predictor
    from nasloop.predictors.auto import geometric_blend
    from nasloop.splits import split_cells

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="")
    ap.add_argument("--report", type=Path, default=None)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--candidate", default="gcn_plus", help="gcn_plus or gcn_residual")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--data-dir", default=os.environ.get("NASLOOP_DATA"))
    a = ap.parse_args()
    if a.report:
        report(a.report)
        return
    if not a.devices or a.out is None:
        ap.error("give --devices and --out (or --report FILE)")
    done = {(r["device"], r["seed"], r.get("gcn", "gcn_plus")) for r in load_results(a.out)}
    for dev in a.devices.split(","):
        table = load_device(dev, a.data_dir)
        for seed in map(int, a.seeds.split(",")):
            if (table.name, seed, a.candidate) in done:
                continue
            train, val, test = split_cells(table, 900, 100, seed, "random")
            auto = create_predictor("auto", candidates=[a.candidate], seed=seed)
            auto.fit(train, table.lookup(train), val=(val, table.lookup(val)))
            y = table.lookup(test)
            cand = auto.candidates_[a.candidate].predict(test)
            refit = auto.members_[a.candidate].predict(test)
            pair = geometric_blend([cand, refit], [0.5, 0.5])
            row = {"device": table.name, "seed": seed, "gcn": a.candidate}
            for k, p in (("candidate", cand), ("refit", refit), ("pair", pair)):
                m = latency_metrics(y, p)
                row[k] = {x: m[x] for x in ("acc_1", "acc_5", "acc_10", "spearman")}
            with a.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(dev, seed, {k: round(row[k]["acc_10"], 1) for k in ("candidate", "refit", "pair")},
                  {k: round(row[k]["acc_5"], 1) for k in ("candidate", "refit", "pair")}, flush=True)


if __name__ == "__main__":
    main()
