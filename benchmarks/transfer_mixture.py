"""Would a mixture-of-devices prior help ``transfer``? (issue #13, session 10; adopted)

This is the study that chose ``transfer``'s mixture prior (``prior="mixture"``, spread
0.25, with the population component: ``mix_c0.25_g`` here). ``base`` is the prior before
it (``prior="population"``): one Gaussian over a new device's weights, the mean and
covariance of the pretraining devices' weights. Devices come in kinds (GPUs, CPUs,
DSPs), so the population is not one Gaussian. Here the prior is instead a mixture with one
component per pretraining table (mean: that table's own weights; covariance: ``c`` x the
population's), plus optionally the population prior itself (``_g``). Each component's
posterior is Bayesian linear regression as in ``nasloop.transfer.core.adapt``; the
components are weighted by their marginal likelihood of the K measured log latencies, and
the posterior-mean predictions averaged in log space. (This script computes it in the
cells' space, and refits each table's weights from the saved float32 factors: an
independent implementation of what ``nasloop.transfer.core.adapt_mixture`` does.) The ridge view is added at 0.5 as in
``transfer``. Only the K cells are read; test cells only score.

Protocol: leave one family out as in ``benchmarks/transfer.py`` (17 families, plus the
H100 table, which no pretraining here ever sees), K = 20 and 50, the informative cells
and 3 seeded random draws; Spearman and acc_10 on every other measured cell.

    python benchmarks/transfer_mixture.py            # about 4 minutes, one core
    python benchmarks/transfer_mixture.py --report
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # 2 shared cores: one BLAS thread
import numpy as np  # noqa: E402

from transfer import (FAMILIES, UNSEEN, connected_measured, few_shot_sets,  # noqa: E402
                      pretrain_without)

OUT = Path(__file__).resolve().parent / "results" / "transfer_mixture.jsonl"
SPREADS = (0.1, 0.25, 0.5)   # c: each component's covariance, x the population's
N_OP_COLUMNS = 54            # the additive op columns after the SVD factors (core.cell_features)


def table_weights(model, logl: np.ndarray) -> np.ndarray:
    """Each pretraining table's weights, fitted as ``pretrain_factors`` fits them."""
    f_all = model.factors.astype(np.float64)
    k = f_all.shape[1]
    r = k - N_OP_COLUMNS
    out = []
    for d in range(logl.shape[1]):
        obs = ~np.isnan(logl[:, d])
        f, t = f_all[obs], logl[obs, d] - logl[obs, d].mean()
        reg = np.eye(k)
        reg[:r, :r] = 1e-6 * np.eye(r)
        out.append(np.linalg.solve(f.T @ f + reg + 1e-9 * np.eye(k), f.T @ t))
    return np.array(out)


def mixture_predict(model, weights: np.ndarray, idx: np.ndarray, log_y: np.ndarray,
                    test: np.ndarray, spread: float, with_population: bool) -> tuple[np.ndarray, float]:
    """Log-latency predictions of ``test`` under the mixture prior; and the effective number
    of components (exp of the responsibilities' entropy)."""
    from nasloop.transfer.core import NOISE_SCALE

    f = model.factors.astype(np.float64)
    x = np.concatenate([np.ones((len(idx), 1)), f[idx]], axis=1)
    xt = np.concatenate([np.ones((len(test), 1)), f[test]], axis=1)
    s2 = model.noise_var * NOISE_SCALE
    comps = [(w, spread * model.prior_cov) for w in weights]
    if with_population:
        comps.append((model.prior_mean, model.prior_cov))
    preds, lls = [], []
    for mean_w, cov in comps:
        p = np.zeros((x.shape[1],) * 2)
        p[0, 0] = 100.0 * max(model.offset_var, 1.0)   # the broad offset prior of core.adapt
        p[1:, 1:] = cov
        mu = np.concatenate([[model.offset_mean], mean_w])
        s = x @ p @ x.T + s2 * np.eye(len(idx))          # marginal covariance of log_y
        resid = log_y - x @ mu
        sol = np.linalg.solve(s, resid)
        lls.append(-0.5 * (resid @ sol + np.linalg.slogdet(s)[1]))
        preds.append(xt @ (mu + p @ x.T @ sol))          # posterior mean
    lls = np.array(lls)
    resp = np.exp(lls - lls.max())
    resp /= resp.sum()
    ent = float(np.exp(-(resp * np.log(resp + 1e-300)).sum()))
    return np.sum(resp[:, None] * np.array(preds), axis=0), ent


def run() -> None:
    from scipy.stats import spearmanr

    from nasloop.data import available_devices, load_device
    from nasloop.transfer.core import adapt, adapt_tables
    from nasloop.transfer.pretrain import load_pretrained

    names = [d.name for d in available_devices()]
    lat = {n: load_device(n).latency_ms for n in names}
    tmp = Path(tempfile.mkdtemp())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w") as out:
        for fam, members in {**FAMILIES, **UNSEEN}.items():
            path, logl, _ = pretrain_without(members, lat, tmp, fam)
            model = load_pretrained(path).model
            weights = table_weights(model, logl)
            f = model.factors.astype(np.float64)
            for dev in members:
                y_all = lat[dev]
                meas = np.flatnonzero(~np.isnan(y_all))
                for k in (20, 50):
                    for tag, idx in few_shot_sets(k, connected_measured(y_all), path, 3):
                        test = np.setdiff1d(meas, idx)
                        ly, yt = np.log(y_all[idx]), y_all[test]
                        b0, w0 = adapt_tables(model, idx, ly)
                        ridge = b0 + model.table_factors[test] @ w0
                        b, w = adapt(model, idx, ly, prior="population")
                        views = {"base": b + f[test] @ w}
                        ents = {}
                        for c in SPREADS:
                            for g in (False, True):
                                key = f"mix_c{c}" + ("_g" if g else "")
                                views[key], ents[key] = mixture_predict(model, weights, idx, ly,
                                                                        test, c, g)
                        row = {"family": fam, "device": dev, "k": k, "cells": tag,
                               "components": ents}
                        for key, fac in views.items():
                            pred = 0.5 * fac + 0.5 * ridge
                            row[key] = {
                                "spearman": float(spearmanr(yt, pred).statistic),
                                "factor_spearman": float(spearmanr(yt, fac).statistic),
                                "acc_10": float(np.mean(np.abs(np.exp(pred) / yt - 1) <= 0.10) * 100)}
                        out.write(json.dumps(row) + "\n")
                        out.flush()
                print(fam, dev, flush=True)


def report() -> None:
    rows = [json.loads(line) for line in OUT.open()]
    keys = [k for k in rows[0] if k == "base" or k.startswith("mix_")]
    print("| K | cells | variant | Spearman, mean over families (lowest) | factor model alone "
          "| acc_10 | H100 Spearman / acc_10 |")
    print("|---|---|---|---|---|---|---|")
    for k in (20, 50):
        for kind, label in (("inf", "informative"), ("rnd", "random (3 draws)")):
            fam: dict = defaultdict(lambda: defaultdict(list))
            unseen: dict = defaultdict(list)
            for r in rows:
                if r["k"] == k and r["cells"].startswith(kind):
                    for key in keys:
                        (unseen[key] if r["family"] in UNSEEN else fam[r["family"]][key]).append(r[key])
            for key in keys:
                per = {f: {m: np.mean([v[m] for v in d[key]]) for m in ("spearman", "factor_spearman", "acc_10")}
                       for f, d in fam.items()}
                sp = [p["spearman"] for p in per.values()]
                h = unseen.get(key, [])
                htxt = (f"{np.mean([v['spearman'] for v in h]):.3f} / "
                        f"{np.mean([v['acc_10'] for v in h]):.1f}") if h else "-"
                print(f"| {k} | {label} | {key} | {np.mean(sp):.4f} ({min(sp):.3f}) | "
                      f"{np.mean([p['factor_spearman'] for p in per.values()]):.4f} | "
                      f"{np.mean([p['acc_10'] for p in per.values()]):.1f} | {htxt} |")


if __name__ == "__main__":
    if "--report" not in sys.argv:
        run()
    report()
