"""How many factors should ``transfer`` keep? Capacity against estimation (issue #13, session 16).

Leave one family out as in ``benchmarks/transfer.py``. For each held-out table and each
factor rank r (the SVD rank of the standardised pretraining matrix; the additive op
columns and the ridge view's 12 components stay):

* ``capacity``: the factor model's columns fitted by least squares on *every* measured
  cell of the table: the best any estimate of the device's weights could do with that
  basis (an upper bound, not a few-shot result);
* ``fewshot``: ``transfer`` pretrained at rank r, fitted on its K = 20 and 50
  informative cells (chosen by the rank-r model), scored on the rest of the table.

Spearman and acc_10; the few-shot means are over the 17 families (each the mean of its
tables), as in the issue's done-when.

    python benchmarks/transfer_rank.py --ranks 8,16,24       # about 5 minutes, one core
    python benchmarks/transfer_rank.py --report
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # 2 shared cores: one BLAS thread
import numpy as np  # noqa: E402

from transfer import FAMILIES, UNSEEN_TABLES, connected_measured  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "transfer_rank.jsonl"
KS = (20, 50)


def run(ranks: list[int], out: Path) -> None:
    from nasloop.data import available_devices, load_device
    from nasloop.metrics import latency_metrics
    from nasloop.predictors import create_predictor
    from nasloop.space import arch_from_index, arch_index
    from nasloop.transfer import informative_cells
    from nasloop.transfer.core import _design, pretrain_factors
    from nasloop.transfer.pretrain import Pretrained, save_pretrained

    lat = {d.name: load_device(d.name).latency_ms for d in available_devices()}
    every = [arch_from_index(i) for i in range(15625)]
    with tempfile.TemporaryDirectory(prefix="nasloop-rank-") as folder, out.open("w") as f:
        tmp = Path(folder)
        for fam, members in FAMILIES.items():
            src = [n for n in lat if n not in members and n not in UNSEEN_TABLES]
            logl = np.stack([np.log(lat[n]) for n in src], axis=1)
            for r in ranks:
                model = pretrain_factors(logl, rank=r)
                path = save_pretrained(Pretrained(model, {"format": "nasloop-transfer/1",
                                                          "sources": [{"name": n} for n in src]}),
                                       tmp / f"{fam}_{r}.npz")
                for dev in members:
                    y = lat[dev]
                    meas = np.flatnonzero(~np.isnan(y))
                    a = _design(model, meas)
                    coef, *_ = np.linalg.lstsq(a, np.log(y[meas]), rcond=None)
                    rows = [("capacity", None, latency_metrics(y[meas], np.exp(a @ coef)))]
                    cand = [every[i] for i in connected_measured(y)]
                    for k in KS:
                        idx = np.array(sorted(arch_index(c) for c in
                                              informative_cells(k, cand, pretrained=path)))
                        test = np.setdiff1d(meas, idx)
                        p = create_predictor("transfer", pretrained=str(path))
                        p.fit([every[i] for i in idx], y[idx])
                        rows.append(("fewshot", k, latency_metrics(
                            y[test], p.predict([every[i] for i in test]))))
                    for kind, k, m in rows:
                        f.write(json.dumps({"family": fam, "device": dev, "rank": r, "kind": kind,
                                            "k": k, "spearman": m["spearman"],
                                            "acc_10": m["acc_10"]}) + "\n")
                    f.flush()
            print(fam, flush=True)


def report(out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = [json.loads(line) for line in out.open()]
    ranks = sorted({r["rank"] for r in rows})
    con = Console()
    cap = Table(title="Capacity: least squares on every cell of the held-out table "
                      "(Spearman / acc_10)")
    cap.add_column("table")
    for r in ranks:
        cap.add_column(f"rank {r}", justify="right")
    for dev in dict.fromkeys(r["device"] for r in rows):
        cells = []
        for rk in ranks:
            m = [x for x in rows if x["device"] == dev and x["rank"] == rk and x["kind"] == "capacity"]
            cells.append(f"{m[0]['spearman']:.3f} / {m[0]['acc_10']:.1f}" if m else "-")
        cap.add_row(dev, *cells)
    con.print(cap)
    few = Table(title="transfer on informative cells: per family (Spearman), "
                      "mean over families, mean acc_10 over tables")
    few.add_column("family")
    for k in KS:
        for r in ranks:
            few.add_column(f"K={k} r={r}", justify="right")
    fam_sp: dict = defaultdict(list)
    for x in rows:
        if x["kind"] == "fewshot":
            fam_sp[(x["family"], x["k"], x["rank"])].append(x["spearman"])
    fams = list(dict.fromkeys(r["family"] for r in rows))
    for fam in fams:
        few.add_row(fam, *[f"{np.mean(fam_sp[(fam, k, r)]):.3f}" if fam_sp[(fam, k, r)] else "-"
                           for k in KS for r in ranks])
    few.add_row("mean (min)", *[
        f"{np.mean([np.mean(fam_sp[(f, k, r)]) for f in fams]):.4f} "
        f"({min(np.mean(fam_sp[(f, k, r)]) for f in fams):.3f})" for k in KS for r in ranks])
    few.add_row("acc_10, mean of tables", *[
        f"{np.mean([x['acc_10'] for x in rows if x['kind'] == 'fewshot' and x['k'] == k and x['rank'] == r]):.1f}"
        for k in KS for r in ranks])
    con.print(few)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", default="8,16,24")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--report", action="store_true")
    a = ap.parse_args()
    if not a.report:
        run([int(r) for r in a.ranks.split(",")], a.out)
    report(a.out)


if __name__ == "__main__":
    main()
