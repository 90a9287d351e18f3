"""Two knobs of ``transfer`` chosen per device from its K cells? (issue #13, session 7)

Leave one family out as in ``benchmarks/transfer.py``; on each table, K = 20 and 50 cells
(the informative ones, and 3 seeded random draws), Spearman on the rest for:
``table_weight`` fixed at 0 / 0.25 / 0.5 (the default) / 0.75 / 1; ``tw_loo``, the weight
with the least leave-one-out log error on the K cells; ``noise_scale`` 1 and 10 (default 3).
The mean is over the 17 families (each the mean of its tables).

    python benchmarks/transfer_knobs.py            # about 4 minutes, one core
    python benchmarks/transfer_knobs.py --report
"""
from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # 2 shared cores: one BLAS thread
import numpy as np  # noqa: E402

from transfer import few_shot_cases  # noqa: E402

TW = (0.0, 0.25, 0.5, 0.75, 1.0)
OUT = Path(__file__).resolve().parent / "results" / "transfer_knobs.jsonl"


def _transfer(path: Path, tw: float, ns: float = 3.0):
    from nasloop.predictors import create_predictor

    return create_predictor("transfer", pretrained=str(path), table_weight=tw, noise_scale=ns)


def run() -> None:
    from scipy.stats import spearmanr

    from nasloop.predictors import cross_val_predict

    with OUT.open("w") as out:
        for fam, dev, k, tag, path, cells, y, tc, y_test in few_shot_cases():
            row = {"family": fam, "device": dev, "k": k, "cells": tag}
            errs = {tw: float(np.mean(np.abs(np.log(
                cross_val_predict(_transfer(path, tw), cells, y, folds=len(cells)) / y))))
                for tw in TW}  # leave-one-out
            for tw in TW:
                pr = _transfer(path, tw).fit(cells, y).predict(tc)
                row[f"tw{tw}"] = float(spearmanr(y_test, pr).statistic)
            best = min(TW, key=lambda t: (errs[t], abs(t - 0.5)))
            row["tw_loo"], row["tw_chosen"] = row[f"tw{best}"], best
            for ns in (1.0, 10.0):
                pr = _transfer(path, 0.5, ns).fit(cells, y).predict(tc)
                row[f"ns{ns}"] = float(spearmanr(y_test, pr).statistic)
            out.write(json.dumps(row) + "\n")
            out.flush()


def report() -> None:
    rows = [json.loads(line) for line in OUT.open()]
    keys = [k for k in rows[0] if k.startswith(("tw", "ns")) and k != "tw_chosen"]
    for k in (20, 50):
        for kind in ("inf", "rnd"):
            fam: dict = defaultdict(lambda: defaultdict(list))
            for r in rows:
                if r["k"] == k and r["cells"].startswith(kind):
                    for key in keys:
                        fam[r["family"]][key].append(r[key])
            print(k, kind, len(fam), " ".join(
                f"{key}={np.mean([np.mean(v[key]) for v in fam.values()]):.4f}" for key in keys))
            if kind == "inf":
                print("   edgetpu fam", {key: round(float(np.mean(fam["edgetpu"][key])), 3)
                                         for key in ("tw0.5", "tw_loo")})


if __name__ == "__main__":
    if "--report" not in sys.argv:
        run()
    report()
