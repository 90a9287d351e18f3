"""Which of a predictor's misses are the table disagreeing with itself? (issue #9, session 12)

A diagnostic, not a choice: it reads test cells. For each test cell the predictor misses
by more than a bound (5 %, 10 %), it looks at the cell's isomorphs (same canonical key:
the same network once dead ops are removed, timed separately in the table). A miss is
counted as **noise** when the median of the other isomorphs is itself more than the bound
away from the cell's measurement and the prediction is within the bound of that median:
the model predicts what the same network measured elsewhere, and the cell's own timing is
the odd one. "Ceiling" is the score if every other miss were fixed: no predictor that
gives one network one latency could do better on these cells than that, give or take the
cells whose isomorphs straddle the bound.

    python benchmarks/miss_noise.py --devices desktop_gpu,desktop_cpu,mobile_dsp --seed 0
    python benchmarks/miss_noise.py --devices desktop_cpu --predictor auto --seed 0
"""
from __future__ import annotations

import argparse
import os
from collections import defaultdict

import numpy as np


def miss_noise(cells, truth: np.ndarray, pred: np.ndarray, table, bound: float) -> dict:
    """Counts of misses, misses with isomorphs, noise misses and the ceiling, at ``bound``."""
    from nasloop.metrics import within
    from nasloop.space import all_archs

    groups: dict[str, list[float]] = defaultdict(list)
    every = list(all_archs())
    for a, v in zip(every, table.lookup(every)):
        if np.isfinite(v):
            groups[a.canonical_key()].append(float(v))
    n = len(cells)
    miss = ~within(truth, pred, bound)
    with_iso = noise = 0
    for a, m, p in zip([c for c, x in zip(cells, miss) if x], truth[miss], pred[miss]):
        others = list(groups[a.canonical_key()])
        others.remove(float(m))
        if not others:
            continue
        with_iso += 1
        med = float(np.median(others))
        noise += bool(~within(m, med, bound)) and bool(within(med, p, bound))
    return {"acc": 100 * (1 - miss.mean()), "misses": int(miss.sum()),
            "with_isomorphs": with_iso, "noise": int(noise),
            "ceiling": 100 * (1 - noise / n)}


def main() -> None:
    from nasloop.data import load_device
    from nasloop.predictors import create_predictor
    from nasloop.splits import split_cells

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", required=True)
    ap.add_argument("--predictor", default="gcn_plus")
    ap.add_argument("--seed", type=int, default=0, help="split seed = model seed")
    ap.add_argument("--data-dir", default=os.environ.get("NASLOOP_DATA"))
    a = ap.parse_args()
    print(f"| table ({a.predictor}, seed {a.seed}) | bound | acc | misses | with an isomorph | "
          "noise (isomorphs disagree, model agrees with them) | ceiling |")
    print("|---|---|---|---|---|---|---|")
    for dev in a.devices.split(","):
        table = load_device(dev, a.data_dir)
        train, val, test = split_cells(table, 900, 100, a.seed, "random")
        p = create_predictor(a.predictor, seed=a.seed).fit(
            train, table.lookup(train), val=(val, table.lookup(val)))
        truth, pred = table.lookup(test), p.predict(test)
        for bound in (0.05, 0.10):
            s = miss_noise(test, truth, pred, table, bound)
            print(f"| {table.name} | {bound:.0%} | {s['acc']:.2f} | {s['misses']} | "
                  f"{s['with_isomorphs']} | {s['noise']} | {s['ceiling']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
