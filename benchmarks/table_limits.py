"""What a latency table itself allows: its noise ceiling and how interactive it is.

Two limits that no predictor fitted on the table can pass, measured from the tables alone
(issues #9 and #13, session 17):

* **Noise ceiling.** Isomorphic cells (same canonical key) are one network once dead ops
  are removed, yet each was timed on its own. For every cell with at least two other timed
  isomorphs, predict the median of theirs (leave the cell out): an oracle that knows the
  network's latency up to the table's own noise. It is a ceiling only where the cells'
  differences from that median are noise, so ``resid R2`` checks it: the 5-fold R^2 of
  those differences predicted from the cell (XGBoost on its ops and live edges; folds
  split by isomorphism class, so a pattern counts only where it holds across networks). Near or
  below 0 (the BRP-NAS tables): noise, the oracle is a ceiling. Well above 0 (the HELP
  tables, which pay for dead ops): the isomorphs differ for a reason a model can learn,
  and the oracle is no ceiling. ``+ learned``: the oracle's acc_10 with that learned part
  added (out of fold): a better estimate where R^2 is a little above 0. Its % within 1 / 5 / 10 % is about the best
  any predictor of the *network* can score on those cells. It is pessimistic where the
  median of 2-3 others is itself noisy, so acc_10 is also given on the cells of classes
  of more than ``BIG`` twins (a precise median; but these are small networks, mostly
  dead ops, whose noise may differ from the average cell's). ``shift``: the constant log offset that maximises
  the oracle's acc_10, and the acc_10 it gives: a metric gained by biasing every prediction,
  which nasloop does not do (it makes every budget check optimistic or pessimistic).
* **Interaction depth.** In-sample Spearman of a decision tree of depth 4 / 8 / 12 on which
  op sits on each edge and whether the edge is live, fitted on every timed cell, beside a
  linear fit of the log latency on the same one-hots (an additive model that may pay for
  dead ops or not). A device whose latency needs a deep tree *in sample* is
  one that 20 measured cells cannot describe without a prior from similar devices.

(``benchmarks/noise.py --loo`` gives the oracle by class size, in % of the median.)

    python benchmarks/table_limits.py                       # every table in the data dir
    python benchmarks/table_limits.py --devices desktop_gpu,edgetpu_large --json
"""
from __future__ import annotations

import argparse
import json

import numpy as np

BOUNDS = (0.01, 0.05, 0.10)
DEPTHS = (4, 8, 12)
#: an isomorph class this large gives a precise median (the oracle's reference noise is small)
BIG = 10


def _within(log_ratio: np.ndarray, bound: float) -> float:
    """% of cells whose prediction is within ``bound`` of the measured latency, given
    log(measured / predicted)."""
    return float(np.mean(np.abs(np.exp(-log_ratio) - 1) <= bound + 1e-12) * 100)


def noise_ceiling(table) -> dict:
    """The isomorph-median oracle's scores on the cells with >= 2 other timed isomorphs,
    and how far its misses are learnable (``resid_r2``)."""
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from xgboost import XGBRegressor

    from nasloop.measure.noise import isomorph_cells

    cells, res, big, cls = [], [], [], []
    for ids in isomorph_cells(table, min_size=3):
        v = np.log(table.latency_ms[ids])
        out = [v[j] - np.median(np.delete(v, j)) for j in range(len(v))]
        cells.extend(ids)
        cls.extend([ids[0]] * len(ids))
        res.extend(out)
        if len(ids) > BIG:
            big.extend(out)
    r = np.asarray(res)
    if r.size == 0:
        return {"cells": 0}
    learned = cross_val_predict(XGBRegressor(n_estimators=200, max_depth=4, n_jobs=1,
                                             random_state=0), _edge_features(np.array(cells)),
                                r, groups=cls, cv=GroupKFold(5))
    shifts = np.round(np.linspace(-0.08, 0.08, 33), 3)
    by_shift = [_within(r - s, 0.10) for s in shifts]
    best = int(np.argmax(by_shift))
    return {"cells": int(r.size), "share": float(r.size / table.measured.sum() * 100),
            **{f"acc_{round(b * 100)}": _within(r, b) for b in BOUNDS},
            "shift": float(shifts[best]), "acc_10_shifted": by_shift[best],
            "resid_r2": float(1 - np.mean((r - learned) ** 2) / np.var(r)),
            "acc_10_learned": _within(r - learned, 0.10),
            "big_cells": len(big), "big_acc_10": _within(np.asarray(big), 0.10) if big else None}


def _edge_features(idx: np.ndarray) -> np.ndarray:
    """Per edge and op: the op sits there; the op sits there on a live edge (0/1)."""
    from nasloop.space import OPS, arch_from_index

    archs = [arch_from_index(int(i)) for i in idx]
    ops = np.array([a.to_tuple() for a in archs])
    live = np.array([a.live_edges() for a in archs])
    return np.concatenate([((ops[:, e] == k) & (live[:, e] | m))[:, None]
                           for e in range(ops.shape[1]) for k in range(len(OPS))
                           for m in (False, True)], axis=1).astype(float)


def interaction_depth(latency_ms: np.ndarray, measured: np.ndarray, seed: int = 0) -> dict:
    """In-sample Spearman of a linear fit and of depth-limited trees on the edge ops."""
    from scipy.stats import spearmanr
    from sklearn.tree import DecisionTreeRegressor

    idx = np.flatnonzero(measured)
    x = _edge_features(idx)
    y = np.log(latency_ms[idx])
    design = np.concatenate([x, np.ones((len(y), 1))], axis=1)
    w, *_ = np.linalg.lstsq(design, y, rcond=None)
    out = {"linear": float(spearmanr(design @ w, y)[0])}
    for d in DEPTHS:
        tree = DecisionTreeRegressor(max_depth=d, min_samples_leaf=5, random_state=seed).fit(x, y)
        out[f"tree_{d}"] = float(spearmanr(tree.predict(x), y)[0])
    return out


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from nasloop.data import available_devices, load_device

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default=None, help="comma-separated (default: every table)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    names = args.devices.split(",") if args.devices else [d.name for d in available_devices()]
    rows = []
    for name in names:
        t = load_device(name)
        rows.append({"device": name, "noise": noise_ceiling(t),
                     "depth": interaction_depth(t.latency_ms, t.measured)})
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    t1 = Table(title="noise ceiling: each cell predicted by the median of its other timed "
                     "isomorphs")
    for c in ("device", "cells (% of table)", "acc_1", "acc_5", "acc_10", "best shift",
              "acc_10 shifted", f"cells in classes > {BIG}", "their acc_10", "resid R2",
              "acc_10 + learned"):
        t1.add_column(c)
    t2 = Table(title="interaction depth: in-sample Spearman on every timed cell")
    for c in ("device", "linear", *(f"tree depth {d}" for d in DEPTHS)):
        t2.add_column(c)
    for r in rows:
        n = r["noise"]
        if n["cells"]:
            t1.add_row(r["device"], f"{n['cells']} ({n['share']:.0f} %)", f"{n['acc_1']:.1f}",
                       f"{n['acc_5']:.1f}", f"{n['acc_10']:.1f}", f"{n['shift']:+.3f}",
                       f"{n['acc_10_shifted']:.1f}", str(n["big_cells"]),
                       "-" if n["big_acc_10"] is None else f"{n['big_acc_10']:.1f}",
                       f"{n['resid_r2']:.2f}", f"{n['acc_10_learned']:.1f}")
        else:
            t1.add_row(r["device"], "0", *["-"] * 9)
        d = r["depth"]
        t2.add_row(r["device"], f"{d['linear']:.3f}", *(f"{d[f'tree_{k}']:.3f}" for k in DEPTHS))
    Console().print(t1)
    Console().print(t2)


if __name__ == "__main__":
    main()
