"""Two knobs of ``transfer`` chosen per device from its K cells? (issue #13, session 7)

Leave one family out as in ``benchmarks/transfer.py``; on each table, K = 20 and 50 cells
(the informative ones, and 3 seeded random draws), Spearman on the rest for:
``table_weight`` fixed at 0 / 0.25 / 0.5 (the default) / 0.75 / 1; ``tw_loo``, the weight
with the least leave-one-out log error on the K cells; ``noise_scale`` 1 and 10 (default 3).
The mean is over the 17 families (each the mean of its tables).

    python benchmarks/transfer_knobs.py            # about 4 minutes, one core
    python benchmarks/transfer_knobs.py --report
"""
import json
import os
import sys
import tempfile
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
from pathlib import Path
from collections import defaultdict
from scipy.stats import spearmanr
from transfer import FAMILIES
from nasloop.data import available_devices, load_device
from nasloop.predictors import create_predictor
from nasloop.space import arch_from_index, arch_index
from nasloop.transfer import informative_cells
from nasloop.transfer.pretrain import DEFAULT_RANK, Pretrained, pretrain_factors, save_pretrained

TW = (0.0, 0.25, 0.5, 0.75, 1.0)
OUT = Path(__file__).resolve().parent / "results" / "transfer_knobs.jsonl"



def fit_pred(path, cells, y, tw, ns=3.0, test=None):
    p = create_predictor("transfer", pretrained=str(path), table_weight=tw, noise_scale=ns)
    p.fit(cells, y)
    return p.predict(test)



def loo_err(path, cells, y, tw, ns=3.0):
    e = []
    for i in range(len(cells)):
        keep = [j for j in range(len(cells)) if j != i]
        pr = fit_pred(path, [cells[j] for j in keep], y[keep], tw, ns, [cells[i]])
        e.append(abs(np.log(pr[0] / y[i])))
    return float(np.mean(e))

def run():
    names = [d.name for d in available_devices()]
    lat = {n: load_device(n).latency_ms for n in names}
    every = [arch_from_index(i) for i in range(15625)]
    tmp = Path(tempfile.mkdtemp())
    out = OUT.open("w")
    for fam, members in FAMILIES.items():
        src = [n for n in names if n not in members]
        logl = np.stack([np.log(lat[n]) for n in src], axis=1)
        path = save_pretrained(Pretrained(pretrain_factors(logl, rank=DEFAULT_RANK),
                                          {"format": "nasloop-transfer/1", "sources": [{"name": n} for n in src]}),
                               tmp / f"{fam}.npz")
        for dev in members:
            y_all = lat[dev]
            meas = np.flatnonzero(~np.isnan(y_all))
            cand = [every[i] for i in meas if every[i].is_connected()]
            cand_idx = np.array([i for i in meas if every[i].is_connected()])
            for k in (20, 50):
                sets = [("inf", sorted(arch_index(a) for a in informative_cells(k, cand, pretrained=path)))]
                sets += [(f"rnd{s}", sorted(np.random.default_rng(s).choice(cand_idx, k, replace=False))) for s in range(3)]
                for tag, idx in sets:
                    idx = np.array(idx)
                    cells = [every[i] for i in idx]; y = y_all[idx]
                    test = np.setdiff1d(meas, idx); tc = [every[i] for i in test]
                    row = {"family": fam, "device": dev, "k": k, "cells": tag}
                    errs = {tw: loo_err(path, cells, y, tw) for tw in TW}
                    for tw in TW:
                        pr = fit_pred(path, cells, y, tw, test=tc)
                        row[f"tw{tw}"] = float(spearmanr(y_all[test], pr).statistic)
                    best = min(TW, key=lambda t: (errs[t], abs(t - 0.5)))
                    row["tw_loo"] = row[f"tw{best}"]; row["tw_chosen"] = best
                    for ns in (1.0, 10.0):
                        pr = fit_pred(path, cells, y, 0.5, ns, tc)
                        row[f"ns{ns}"] = float(spearmanr(y_all[test], pr).statistic)
                    out.write(json.dumps(row) + "\n"); out.flush()
            print(fam, dev, flush=True)


def report():
    rows=[json.loads(l) for l in OUT.open()]
    keys=[k for k in rows[0] if k.startswith(('tw','ns')) and k!='tw_chosen']
    for k in (20,50):
      for kind in ('inf','rnd'):
        sel=[r for r in rows if r['k']==k and r['cells'].startswith(kind)]
        fam=defaultdict(lambda: defaultdict(list))
        for r in sel:
            for key in keys: fam[r['family']][key].append(r[key])
        print(k, kind, len(fam), " ".join(f"{key}={np.mean([np.mean(v[key]) for v in fam.values()]):.4f}" for key in keys))
        if kind=='inf': print('   edgetpu fam', {key: round(np.mean(fam['edgetpu'][key]),3) for key in ('tw0.5','tw_loo')})


if __name__ == "__main__":
    if "--report" not in sys.argv:
        run()
    report()
