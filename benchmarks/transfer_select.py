"""Few-shot: should ``transfer`` give way to an additive model chosen by CV on the K cells?

An experiment for issue #13 (session 7), not yet a feature. Leave one family out as in
``benchmarks/transfer.py``; on each table, K = 20 and 50 cells (informative, and 3 seeded
random draws). Three candidates are fitted on the K cells: ``transfer``, ``layerwise``
(NNLS) and ``linear``. Each gets a 10-fold cross-validated mean |log error| on those cells.
``pick`` takes the lowest; ``cons`` keeps ``transfer`` unless another is 10 % lower. The
report gives the mean Spearman over the 17 families and the mean acc_10 over the tables.
``cons`` is what ``transfer --set select=true`` does; the script checks that it agrees.

    python benchmarks/transfer_select.py            # about 3.5 minutes, one core
    python benchmarks/transfer_select.py --report
"""
import json
import os
import sys
import tempfile
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
from pathlib import Path
from collections import defaultdict
from transfer import FAMILIES, auto900
from nasloop.data import available_devices, load_device
from nasloop.predictors import create_predictor
from nasloop.space import arch_from_index, arch_index
from nasloop.transfer import informative_cells
from nasloop.transfer.pretrain import DEFAULT_RANK, Pretrained, pretrain_factors, save_pretrained
from nasloop.metrics import latency_metrics

OUT = Path(__file__).resolve().parent / "results" / "transfer_select.jsonl"
CANDS = ("transfer", "layerwise", "linear")


def make(name, path):
    return create_predictor("transfer", pretrained=str(path)) if name == "transfer" else create_predictor(name)


def loo(name, path, cells, y, folds=10):
    n=len(cells); k=min(folds,n); order=np.random.default_rng(0).permutation(n); pr=np.full(n,np.nan)
    for f in range(k):
        held=order[f::k]; keep=np.setdiff1d(order,held)
        try:
            p=make(name,path); p.fit([cells[i] for i in keep], y[keep]); pr[held]=p.predict([cells[i] for i in held])
        except Exception:
            return np.inf
    pr=np.maximum(pr,1e-6)
    return float(np.mean(np.abs(np.log(pr/y))))

def run():
    names = [d.name for d in available_devices()]
    lat = {n: load_device(n).latency_ms for n in names}
    every = [arch_from_index(i) for i in range(15625)]
    tmp = Path(tempfile.mkdtemp())
    out = OUT.open("w")
    for fam, members in FAMILIES.items():
        src = [n for n in names if n not in members]
        logl = np.stack([np.log(lat[n]) for n in src], axis=1)
        path = save_pretrained(Pretrained(pretrain_factors(logl, rank=DEFAULT_RANK), {"format": "nasloop-transfer/1", "sources": [{"name": n} for n in src]}), tmp / f"{fam}.npz")
        for dev in members:
            y_all = lat[dev]; meas = np.flatnonzero(~np.isnan(y_all))
            cand = [every[i] for i in meas if every[i].is_connected()]
            cand_idx = np.array([i for i in meas if every[i].is_connected()])
            for k in (20, 50):
                sets = [("inf", sorted(arch_index(a) for a in informative_cells(k, cand, pretrained=path)))]
                sets += [(f"rnd{s}", sorted(np.random.default_rng(s).choice(cand_idx, k, replace=False))) for s in range(3)]
                for tag, idx in sets:
                    idx=np.array(idx); cells=[every[i] for i in idx]; y=y_all[idx]
                    test=np.setdiff1d(meas, idx); tc=[every[i] for i in test]
                    row={"family":fam,"device":dev,"k":k,"cells":tag}
                    errs={c: loo(c,path,cells,y) for c in CANDS}
                    for c in CANDS:
                        p=make(c,path); p.fit(cells,y); pr=np.maximum(p.predict(tc),1e-6)
                        m=latency_metrics(y_all[test],pr); row[c]={"sp":m["spearman"],"a10":m["acc_10"],"loo":errs[c]}
                    pick=min(CANDS,key=lambda c:(errs[c], c!="transfer"))
                    # conservative: switch only if 10 % better
                    cons="transfer" if errs[pick] > errs["transfer"]*0.9 else pick
                    # the same choice as built into the predictor: transfer --set select=true
                    p = create_predictor("transfer", pretrained=str(path), select=True).fit(cells, y)
                    m = latency_metrics(y_all[test], np.maximum(p.predict(tc), 1e-6))
                    row["select"] = {"sp": m["spearman"], "a10": m["acc_10"],
                                     "chosen": p.source_.get("selection", {}).get("chosen", "transfer")}
                    row["pick"]=pick; row["cons"]=cons
                    out.write(json.dumps(row)+"\n"); out.flush()
            print(fam, dev, flush=True)


def report():
    rows=[json.loads(l) for l in OUT.open()]
    for k in (20,50):
      for kind in ('inf','rnd'):
        sel=[r for r in rows if r['k']==k and r['cells'].startswith(kind)]
        fam=defaultdict(lambda: defaultdict(list)); dev=defaultdict(lambda: defaultdict(list))
        for r in sel:
            for c in ('transfer','layerwise','linear'):
                fam[r['family']][c+'_sp'].append(r[c]['sp']); dev[r['device']][c+'_a10'].append(r[c]['a10'])
            for s in ('pick','cons'):
                fam[r['family']][s+'_sp'].append(r[r[s]]['sp']); dev[r['device']][s+'_a10'].append(r[r[s]]['a10'])
        keys=['transfer','layerwise','linear','pick','cons']
        print(k,kind,'family-mean Spearman', " ".join(f"{c}={np.mean([np.mean(v[c+'_sp']) for v in fam.values()]):.4f}" for c in keys))
        print('      device-mean acc10  ', " ".join(f"{c}={np.mean([np.mean(v[c+'_a10']) for v in dev.values()]):.1f}" for c in keys))
        picks=defaultdict(int)
        for r in sel: picks[r['cons']]+=1
        print('      cons picks', dict(picks))

    same = sum(r["select"]["chosen"] == r["cons"] and abs(r["select"]["a10"] - r[r["cons"]]["a10"]) < 1e-9
               for r in rows)
    print(f"transfer --set select=true made the same choice and score as cons in {same} of "
          f"{len(rows)} fits")
    a9 = auto900()  # auto on 900 cells, read from the stored every-device results
    for kind in ("inf", "rnd"):
        acc = defaultdict(lambda: defaultdict(list))
        for r in rows:
            if r["k"] == 50 and r["cells"].startswith(kind):
                for m in ("transfer", "cons"):
                    acc[r["device"]][m].append(r[r[m] if m == "cons" else m]["a10"])
        print(f"K=50 {kind}: tables with acc_10 within 5 points of auto on 900 cells:",
              {m: sum(np.mean(v[m]) >= a9[d]["acc_10"] - 5 for d, v in acc.items())
               for m in ("transfer", "cons")}, "of", len(acc))

if __name__ == "__main__":
    if "--report" not in sys.argv:
        run()
    report()
