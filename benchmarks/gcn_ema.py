"""Should auto's GCNs keep a moving average of their weights? (issue #9; session 11)

``gcn_plus`` early-stops on a held-out slice and keeps the best epoch's weights. With
``ema=E`` it instead validates, early-stops and keeps an exponential moving average of
the weights over about E epochs. This fits ``auto`` restricted to one GCN candidate
(``gcn_plus``, or ``gcn_residual`` with ``--candidate``) with each ``ema`` value, on the
issue's random split (900 / 100 / rest, split seed = model seed), and records:

- the candidate's mean |log error| on the 100 validation cells, fitted on 810 training
  cells and early-stopped on the other 90: what ``auto`` chooses by, and what decides
  the default here (``--report`` prints it first);
- the test metrics of the candidate and of auto's final model (refit pair), for the record;
- the fit seconds (auto's whole fit).

    python benchmarks/gcn_ema.py --devices desktop_gpu,mobile_dsp --seeds 0,1 --ema 0,5 \\
        --out benchmarks/results/gcn_ema.jsonl
    python benchmarks/gcn_ema.py --report benchmarks/results/gcn_ema.jsonl [--base 5]
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


def report(path: Path, base: float | None = None) -> None:
    """Validation loss (the choice), then test metrics, per table and over every run;
    each ema value is compared with ``base`` (default: the smallest)."""
    rows = [r for r in load_results(path) if not r.get("extra")]  # variants: not ema rows
    emas = sorted({r["ema"] for r in rows})
    runs: dict[tuple, dict[float, dict]] = defaultdict(dict)
    for r in rows:
        runs[(r["device"], r["gcn"], r["seed"])][r["ema"]] = r
    paired = {k: v for k, v in runs.items() if len(v) == len(emas)}
    tables = sorted({(d, g) for d, g, _ in paired})
    head = " | ".join(f"ema {e:g}" for e in emas)
    print(f"| table (GCN) | seeds | validation log error: {head} | auto test acc_5 / acc_10: "
          f"{head} | fit s: {head} |")
    print("|---|---|---|---|---|")
    for dev, gcn in tables:
        rs = [v for (d, g, _), v in paired.items() if (d, g) == (dev, gcn)]
        val = " / ".join(f"{np.mean([r[e]['val_log_loss'] for r in rs]):.4f}" for e in emas)
        test = " / ".join(f"{np.mean([r[e]['auto']['acc_5'] for r in rs]):.1f}, "
                          f"{np.mean([r[e]['auto']['acc_10'] for r in rs]):.1f}" for e in emas)
        fit = " / ".join(f"{np.mean([r[e]['fit_seconds'] for r in rs]):.0f}" for e in emas)
        print(f"| {dev} ({gcn}) | {len(rs)} | {val} | {test} | {fit} |")
    base = emas[0] if base is None else float(base)
    for e in [e for e in emas if e != base]:
        dv = [v[e]["val_log_loss"] / v[base]["val_log_loss"] - 1 for v in paired.values()]
        print(f"ema {e:g} vs {base:g} over {len(dv)} runs: validation log error "
              f"{100 * np.mean(dv):+.2f} % (lower in {sum(d < 0 for d in dv)})")
        for who in ("candidate", "auto"):
            for m in ("acc_1", "acc_5", "acc_10", "spearman"):
                d = [v[e][who][m] - v[base][who][m] for v in paired.values()]
                print(f"  test, {who} {m}: mean {np.mean(d):+.3f}, worst {min(d):+.3f}, "
                      f"best {max(d):+.3f}, ahead in {sum(x > 0 for x in d)}")


def main() -> None:
    from nasloop.data import load_device
    from nasloop.metrics import latency_metrics
    from nasloop.predictors import create_predictor
    from nasloop.splits import split_cells

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="")
    ap.add_argument("--report", type=Path, default=None)
    ap.add_argument("--base", type=float, default=None, help="with --report: compare with this ema")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--ema", default="0,5", help="ema values (epochs), comma-separated")
    ap.add_argument("--candidate", default="gcn_plus", help="gcn_plus or gcn_residual")
    ap.add_argument("--extra", default="{}",
                    help='more parameters of the GCN, JSON, e.g. \'{"batch_size": 8}\'; '
                         "recorded with the rows (--report keeps the rows without it)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--data-dir", default=os.environ.get("NASLOOP_DATA"))
    a = ap.parse_args()
    if a.report:
        report(a.report, a.base)
        return
    if not a.devices or a.out is None:
        ap.error("give --devices and --out (or --report FILE)")
    extra = json.loads(a.extra)
    done = {(r["device"], r["seed"], r["gcn"], r["ema"], json.dumps(r.get("extra", {}), sort_keys=True))
            for r in load_results(a.out)}
    for dev in a.devices.split(","):
        table = load_device(dev, a.data_dir)
        for seed in map(int, a.seeds.split(",")):
            train, val, test = split_cells(table, 900, 100, seed, "random")
            y = table.lookup(test)
            for ema in map(float, a.ema.split(",")):
                if (table.name, seed, a.candidate, ema, json.dumps(extra, sort_keys=True)) in done:
                    continue
                auto = create_predictor("auto", candidates=[a.candidate], seed=seed,
                                        candidate_params={a.candidate: {**extra, "ema": ema}})
                t0 = time.perf_counter()
                auto.fit(train, table.lookup(train), val=(val, table.lookup(val)))
                row = {"device": table.name, "seed": seed, "gcn": a.candidate, "ema": ema,
                       **({"extra": extra} if extra else {}),
                       "fit_seconds": time.perf_counter() - t0,
                       "val_log_loss": auto.choice_["val_log_loss"]}
                for who, p in (("candidate", auto.candidates_[a.candidate]), ("auto", auto)):
                    m = latency_metrics(y, p.predict(test))
                    row[who] = {x: m[x] for x in ("acc_1", "acc_5", "acc_10", "spearman")}
                with a.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(dev, seed, ema, round(row["val_log_loss"], 4), round(row["fit_seconds"]),
                      {k: round(row["auto"][k], 1) for k in ("acc_5", "acc_10")}, flush=True)


if __name__ == "__main__":
    main()
