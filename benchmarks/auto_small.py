"""``auto`` on few cells: a choice by k-fold cross-validation against one by a holdout tenth.

With K labelled cells ``auto`` used to hold out a tenth of them (1-10 cells at K = 10-100)
to choose its backend. Since session 8, below ``cv_below`` (200) labelled cells, it scores
every candidate out of fold (5-fold) on all K cells and fits the chosen one on them all.
This script fits both, ``cv_below=0`` (the holdout tenth) and the default, on the same
cells as the leave-one-family-out few-shot benchmark (``benchmarks/transfer.py``: 3
seeded random draws per table and K; nothing is pretrained for ``auto``, the family
split only fixes the draws), and reports the mean Spearman over the 17 families and the
mean acc_10 over the 27 tables.

    python benchmarks/auto_small.py                 # about 45 minutes on one core
    python benchmarks/auto_small.py --report
"""
from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # 2 shared cores: one BLAS thread
import numpy as np  # noqa: E402

from transfer import FAMILIES, few_shot_cases  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "auto_small.jsonl"
VARIANTS = {"holdout": {"cv_below": 0}, "cv": {}}


def run(ks: tuple[int, ...], draws: int) -> None:
    import torch

    from nasloop.metrics import latency_metrics
    from nasloop.predictors import create_predictor

    torch.set_num_threads(1)
    done = set()
    if OUT.is_file():
        for line in OUT.read_text().splitlines():
            r = json.loads(line)
            done.add((r["device"], r["k"], r["cells"]))
    with OUT.open("a") as out:
        for fam, dev, k, tag, _, cells, y, tc, y_test in few_shot_cases(ks, draws):
            if tag == "inf" or (dev, k, tag) in done:  # random draws only: auto's own case
                continue
            row = {"family": fam, "device": dev, "k": k, "cells": tag}
            for name, params in VARIANTS.items():
                p = create_predictor("auto", **params)
                try:
                    p.fit(cells, y)
                    m = latency_metrics(y_test, p.predict(tc))
                    row[name] = {"sp": m["spearman"], "a10": m["acc_10"],
                                 "chosen": p.choice_["chosen"]}
                except Exception as e:  # noqa: BLE001  (a failed fit scores 0, counted)
                    row[name] = {"sp": 0.0, "a10": 0.0, "failed": f"{type(e).__name__}: {e}"}
            out.write(json.dumps(row) + "\n")
            out.flush()


def report() -> None:
    rows = [json.loads(x) for x in OUT.read_text().splitlines() if x.strip()]
    ks = sorted({r["k"] for r in rows})
    print("| K | variant | mean Spearman over families (min) | mean acc_10 over tables | "
          "failed | runs |")
    print("|---|---|---|---|---|---|")
    for k in ks:
        for name in VARIANTS:
            by_dev: dict[str, list] = defaultdict(list)
            for r in rows:
                if r["k"] == k:
                    by_dev[r["device"]].append(r[name])
            fam_sp = [np.mean([np.mean([v["sp"] for v in by_dev[d]]) for d in ds])
                      for ds in FAMILIES.values() if all(d in by_dev for d in ds)]
            a10 = [np.mean([v["a10"] for v in vs]) for vs in by_dev.values()]
            failed = sum(1 for vs in by_dev.values() for v in vs if "failed" in v)
            n = sum(len(vs) for vs in by_dev.values())
            print(f"| {k} | {name} | {np.mean(fam_sp):.3f} ({min(fam_sp):.3f}) | "
                  f"{np.mean(a10):.1f} | {failed} | {n} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="10,20,50")
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--report", action="store_true")
    a = ap.parse_args()
    if not a.report:
        run(tuple(int(k) for k in a.ks.split(",")), a.draws)
    report()


if __name__ == "__main__":
    main()
