"""Refit on every labelled cell, or hold a tenth out to stop on? (issue #9; session 12)

``auto`` refits its chosen GCN on the training + validation cells once the choice is
made. Today (``refit_all=false``) that refit early-stops on a fresh tenth of them, so it
trains on 90 %. With ``refit_all=true`` it trains on all of them for the epochs (and lr
halvings) its choice-stage fit stopped at. Which is better cannot be read on the cells
the refit uses, so this study moves the question one level down, inside the training
cells, where the 100 validation cells are unseen by every model:

- A: the GCN fitted on 810 of the 900 training cells, early-stopped on the other 90 (as
  ``auto``'s choice stage);
- C: a fresh fit on the 900, early-stopping on a fresh 90 (today's refit, one level down);
- B: A's schedule replayed on all 900 (``refit_all``, one level down);

and scores each, and the pairs ``auto`` would predict with (A with C, A with B), by mean
|log error| on the 100 validation cells: what decides. Test metrics of the two pairs are
recorded for the record. Random split, split seed = model seed.

    python benchmarks/refit_all.py --devices desktop_gpu,mobile_dsp --seeds 0,1 \\
        --out benchmarks/results/refit_all.jsonl
    python benchmarks/refit_all.py --report benchmarks/results/refit_all.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from every_device import load_results  # benchmarks/ is on sys.path when run as a script

#: the models scored: the three fits and the two pairs ``auto`` could predict with
MODELS = ("A", "B", "C", "A+B", "A+C")


def report(path: Path) -> None:
    rows = load_results(path)
    by: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        by[(r["device"], r["gcn"])].append(r)
    print("| table (GCN) | runs | validation log error: " + " / ".join(MODELS)
          + " | test acc_5, acc_10: A+C / A+B |")
    print("|---|---|---|---|")
    for (dev, gcn), rs in sorted(by.items()):
        val = " / ".join(f"{np.mean([r['val'][m] for r in rs]):.4f}" for m in MODELS)
        test = " / ".join(f"{np.mean([r['test'][m]['acc_5'] for r in rs]):.1f}, "
                          f"{np.mean([r['test'][m]['acc_10'] for r in rs]):.1f}"
                          for m in ("A+C", "A+B"))
        print(f"| {dev} ({gcn}) | {len(rs)} | {val} | {test} |")
    for new, old in (("B", "C"), ("A+B", "A+C")):
        d = [r["val"][new] / r["val"][old] - 1 for r in rows]
        print(f"{new} vs {old} over {len(d)} runs: validation log error "
              f"{100 * np.mean(d):+.2f} % (lower in {sum(x < 0 for x in d)})")
    for m in ("acc_1", "acc_5", "acc_10", "spearman"):
        d = [r["test"]["A+B"][m] - r["test"]["A+C"][m] for r in rows]
        print(f"  test, A+B - A+C {m}: mean {np.mean(d):+.3f}, worst {min(d):+.3f}, "
              f"best {max(d):+.3f}, ahead in {sum(x > 0 for x in d)}")


def main() -> None:
    from nasloop.data import load_device
    from nasloop.metrics import latency_metrics, log_loss
    from nasloop.predictors import create_predictor
    from nasloop.predictors.auto import DEFAULT_CANDIDATES, geometric_blend
    from nasloop.splits import split_cells

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="", help="table[:candidate],... (candidate: "
                    "gcn_plus, the default, or gcn_residual)")
    ap.add_argument("--report", type=Path, default=None)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--data-dir", default=os.environ.get("NASLOOP_DATA"))
    a = ap.parse_args()
    if a.report:
        report(a.report)
        return
    if not a.devices or a.out is None:
        ap.error("give --devices and --out (or --report FILE)")
    done = {(r["device"], r["seed"], r["gcn"]) for r in load_results(a.out)}
    for spec in a.devices.split(","):
        dev, _, gcn = spec.partition(":")
        gcn = gcn or "gcn_plus"
        backend, params = DEFAULT_CANDIDATES[gcn]
        table = load_device(dev, a.data_dir)
        for seed in map(int, a.seeds.split(",")):
            if (table.name, seed, gcn) in done:
                continue
            train, val, test = split_cells(table, 900, 100, seed, "random")
            y = table.lookup(train)
            rng = np.random.default_rng([seed, 11])

            def held(k: int):
                perm = rng.permutation(len(train))
                rest, out = perm[k:], perm[:k]
                return ([train[i] for i in rest], y[rest]), ([train[i] for i in out], y[out])

            make = lambda **kw: create_predictor(backend, **{**params, "seed": seed, **kw})  # noqa: E731
            t0 = time.perf_counter()
            (ax, ay), stop = held(90)
            fits = {"A": make().fit(ax, ay, val=stop)}
            (cx, cy), cstop = held(90)
            fits["C"] = make().fit(cx, cy, val=cstop)
            fits["B"] = make(schedule=dict(fits["A"].schedule_)).fit(train, y)
            seconds = time.perf_counter() - t0
            row = {"device": table.name, "seed": seed, "gcn": gcn, "fit_seconds": seconds,
                   "schedule": fits["A"].schedule_, "val": {}, "test": {}}
            vy, ty = table.lookup(val), table.lookup(test)
            for cells, truth, key in ((val, vy, "val"), (test, ty, "test")):
                pred = {m: p.predict(cells) for m, p in fits.items()}
                for m in ("A+B", "A+C"):
                    pred[m] = geometric_blend([pred["A"], pred[m[-1]]], [0.5, 0.5])
                for m in MODELS:
                    if key == "val":
                        row["val"][m] = log_loss(truth, pred[m])
                    elif "+" in m:
                        mt = latency_metrics(truth, pred[m])
                        row["test"][m] = {x: mt[x] for x in ("acc_1", "acc_5", "acc_10",
                                                             "spearman")}
            with a.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(table.name, seed, gcn, round(seconds), row["schedule"],
                  {m: round(v, 4) for m, v in row["val"].items()}, flush=True)


if __name__ == "__main__":
    main()
