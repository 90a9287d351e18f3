"""The paper's GCN recipe (`gcn`), one fit per (device, seed), against the paper's numbers.

Each fit of the paper recipe (batch 1, hidden 600, up to 250 epochs) takes 10-25 minutes
of one core here, so every run is appended to a JSON-lines file the moment it is done, and
a re-run skips what the file already holds: an interrupted run loses at most one fit. Two
jobs on different seeds can share one file (each appends whole lines). The protocol is
``nasloop evaluate``'s (:func:`nasloop.evaluation.evaluate_one`): random split 900 / 100 /
rest, split seed = model seed, a failed fit scored 0 and counted.

    python benchmarks/paper_recipe.py --seeds 0,1,2,3,4 --out benchmarks/results/paper_recipe.jsonl
    python benchmarks/paper_recipe.py --report benchmarks/results/paper_recipe.jsonl
    python benchmarks/paper_recipe.py --devices desktop_gpu --seeds 0 --train 2000 \
        --label gcn-2000 --out benchmarks/results/paper_recipe_2000.jsonl   # paper Table 6
"""
from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from nasloop.config import parse_sets
from nasloop.data import load_device
from nasloop.evaluation import evaluate_one, resolve_params
from nasloop.predictors import get_predictor_class
from nasloop.splits import SplitSpec

# Yue 2021, Table 2 (GCN row): acc_1 / acc_5 / acc_10
PAPER = {"desktop_gpu": (38.5, 85.8, 97.1), "desktop_cpu": (34.5, 84.1, 96.1),
         "mobile_dsp": (23.8, 76.9, 90.1)}
METRICS = ("acc_1", "acc_5", "acc_10", "spearman")


def _load(path: Path) -> list[dict]:
    """Every whole line; a last line another job is still writing is skipped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def report(rows: list[dict]) -> str:
    by: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        by[(r["device"], r["label"])].append(r)
    out = ["| device | recipe | runs (seeds) | failed | acc_1 | acc_5 | acc_10 | Spearman "
           "| paper acc_1 / 5 / 10 | at least the paper at every bound? | fit s (mean) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (dev, label), runs in sorted(by.items()):
        runs = sorted(runs, key=lambda r: r["split_seed"])
        cells = []
        means = {}
        for k in METRICS:
            v = np.array([r[k] for r in runs], dtype=np.float64)
            means[k] = float(v.mean())
            sd = float(v.std(ddof=1)) if len(v) > 1 else math.nan
            fmt = ".3f" if k == "spearman" else ".1f"
            cells.append(f"{means[k]:{fmt}} ± {sd:{fmt}}")
        paper = PAPER.get(dev)
        meets = ("-" if paper is None else
                 "yes" if all(means[k] >= p for k, p in zip(METRICS, paper)) else "no")
        failed = sum(1 for r in runs if r.get("failed"))
        fit = np.mean([r.get("fit_seconds", math.nan) for r in runs])
        seeds = ",".join(str(r["split_seed"]) for r in runs)
        out.append(f"| {dev} | {label} | {len(runs)} ({seeds}) | {failed} | " + " | ".join(cells)
                   + f" | {' / '.join(map(str, paper)) if paper else '-'} | {meets} | {fit:.0f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="desktop_gpu,desktop_cpu,mobile_dsp")
    ap.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated split (= model) seeds")
    ap.add_argument("--predictor", default="gcn")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--label", help="name the rows (default: the predictor)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/paper_recipe.jsonl"))
    ap.add_argument("--report", type=Path, nargs="+")
    ap.add_argument("--data-dir")
    ap.add_argument("--train", type=int, default=900,
                    help="training cells (paper Table 6: 2000); label the rows with --label")
    a = ap.parse_args()
    if a.report:
        print(report([r for p in a.report for r in _load(p)]))
        return
    label = a.label or a.predictor
    sets = parse_sets(a.sets)
    unknown = sorted(set(sets) - set(get_predictor_class(a.predictor)._param_names()))
    if unknown:  # resolve_params drops them silently; a typo must not label a run
        raise SystemExit(f"--set {', '.join(unknown)}: not a parameter of {a.predictor}")
    params = resolve_params(a.predictor, sets)
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    for dev in a.devices.split(","):
        table = load_device(dev, a.data_dir)
        for seed in seeds:
            done = {(r["device"], r["label"], r["split_seed"]) for r in _load(a.out)}
            if (table.name, label, seed) in done:
                continue
            run = evaluate_one(table, a.predictor, SplitSpec(a.train, 100, seed, "random"),
                               model_seed=seed, params=params)
            run.update(device=table.name, label=label, predictor=a.predictor, params=params,
                       train=a.train)
            a.out.parent.mkdir(parents=True, exist_ok=True)
            with a.out.open("a") as f:
                f.write(json.dumps(run) + "\n")
            print(f"{table.name:14s} seed {seed} {run['acc_1']:5.1f} {run['acc_5']:5.1f} "
                  f"{run['acc_10']:5.1f} sp {run['spearman']:.4f} fit {run.get('fit_seconds', 0):.0f}s "
                  f"{run.get('failed', '')}", flush=True)


if __name__ == "__main__":
    main()
