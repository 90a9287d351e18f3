"""Few-shot: should ``transfer`` give way to an additive model chosen by CV on the K cells?

An experiment for issue #13 (session 7), shipped as ``transfer --set select=true``. Leave
one family out as in ``benchmarks/transfer.py``; on each table, K = 20 and 50 cells
(informative, and 3 seeded random draws). Three candidates are fitted on the K cells:
``transfer``, ``layerwise`` (NNLS) and ``linear``. Each gets a 10-fold cross-validated
mean |log error| on those cells. ``pick`` takes the lowest; ``cons`` keeps ``transfer``
unless another is 10 % lower. The report gives the mean Spearman over the 17 families
and the mean acc_10 over the tables.
``cons`` is what ``transfer --set select=true`` does; the script checks that it agrees.

    python benchmarks/transfer_select.py            # about 3.5 minutes, one core
    python benchmarks/transfer_select.py --report
"""
from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # 2 shared cores: one BLAS thread
import numpy as np  # noqa: E402

from transfer import auto900, few_shot_cases  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "transfer_select.jsonl"
CANDS = ("transfer", "layerwise", "linear")


def _make(name: str, path: Path, **params):
    from nasloop.predictors import create_predictor

    if name == "transfer":
        return create_predictor("transfer", pretrained=str(path), **params)
    return create_predictor(name)


def _cv_error(name: str, path: Path, cells: list, y: np.ndarray) -> float:
    """10-fold mean |log error| on the K cells (inf when the candidate cannot fit them)."""
    from nasloop.predictors import cross_val_predict

    try:
        pred = cross_val_predict(_make(name, path), cells, y, folds=10, seed=0)
    except Exception:
        return np.inf
    return float(np.mean(np.abs(np.log(np.maximum(pred, 1e-6) / y))))


def run() -> None:
    from nasloop.metrics import latency_metrics

    def scores(p, tc, y_test) -> dict:
        m = latency_metrics(y_test, np.maximum(p.predict(tc), 1e-6))
        return {"sp": m["spearman"], "a10": m["acc_10"]}

    with OUT.open("w") as out:
        for fam, dev, k, tag, path, cells, y, tc, y_test in few_shot_cases():
            row = {"family": fam, "device": dev, "k": k, "cells": tag}
            errs = {c: _cv_error(c, path, cells, y) for c in CANDS}
            for c in CANDS:
                row[c] = {**scores(_make(c, path).fit(cells, y), tc, y_test), "loo": errs[c]}
            pick = min(CANDS, key=lambda c: (errs[c], c != "transfer"))
            # conservative: switch only if 10 % better
            cons = "transfer" if errs[pick] > errs["transfer"] * 0.9 else pick
            # the same choice as built into the predictor: --set select=true
            p = _make("transfer", path, select=True).fit(cells, y)
            row["select"] = {**scores(p, tc, y_test),
                             "chosen": p.source_.get("selection", {}).get("chosen", "transfer")}
            row["pick"], row["cons"] = pick, cons
            out.write(json.dumps(row) + "\n")
            out.flush()


def report() -> None:
    rows = [json.loads(line) for line in OUT.open()]
    keys = ["transfer", "layerwise", "linear", "pick", "cons"]
    for k in (20, 50):
        for kind in ("inf", "rnd"):
            sel = [r for r in rows if r["k"] == k and r["cells"].startswith(kind)]
            fam: dict = defaultdict(lambda: defaultdict(list))
            dev: dict = defaultdict(lambda: defaultdict(list))
            for r in sel:
                for c in keys:
                    got = r[r[c]] if c in ("pick", "cons") else r[c]
                    fam[r["family"]][c].append(got["sp"])
                    dev[r["device"]][c].append(got["a10"])
            print(k, kind, "family-mean Spearman", " ".join(
                f"{c}={np.mean([np.mean(v[c]) for v in fam.values()]):.4f}" for c in keys))
            print("      device-mean acc10  ", " ".join(
                f"{c}={np.mean([np.mean(v[c]) for v in dev.values()]):.1f}" for c in keys))
            picks: dict = defaultdict(int)
            for r in sel:
                picks[r["cons"]] += 1
            print("      cons picks", dict(picks))
    same = sum(r["select"]["chosen"] == r["cons"]
               and abs(r["select"]["a10"] - r[r["cons"]]["a10"]) < 1e-9 for r in rows)
    print(f"transfer --set select=true made the same choice and score as cons in {same} of "
          f"{len(rows)} fits")
    a9 = auto900()  # auto on 900 cells, read from the stored every-device results
    for kind in ("inf", "rnd"):
        acc: dict = defaultdict(lambda: defaultdict(list))
        for r in rows:
            if r["k"] == 50 and r["cells"].startswith(kind):
                for m in ("transfer", "cons"):
                    acc[r["device"]][m].append(r[r[m] if m == "cons" else m]["a10"])
        print(f"K=50 {kind}: tables with acc_10 within 5 points of auto on 900 cells:",
              {m: int(sum(np.mean(v[m]) >= a9[d]["acc_10"] - 5 for d, v in acc.items()))
               for m in ("transfer", "cons")}, "of", len(acc))


if __name__ == "__main__":
    if "--report" not in sys.argv:
        run()
    report()
