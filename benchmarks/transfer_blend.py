"""Does the pretrained ``transfer`` model help `auto` on 900 cells? (issue #9, session 20)

Below ``transfer_below`` labelled cells `auto` keeps the pretrained factor model among its
candidates; above it, `auto` chooses among models fitted from scratch only. Yet on 900
cells of a table it was never pretrained on, ``transfer`` alone puts about as many cells
within 10 % as `auto` on the desktop tables, from another kind of model (a device
embedding over cell factors learnt from the other devices, plus additive op costs), so
its errors may differ from the GCN's. This benchmark asks whether a blend with it,
chosen on the validation cells, helps:

1. ``--record``: per table and split seed, the default `auto` is fitted on the seeded
   random split (900 / 100 / rest); its candidates' predictions of the validation cells
   (made before it saw them) and of the test cells, and its final predictions, are kept;
   ``transfer`` pretrained without the table's family (``benchmarks/transfer.py``'s
   families: nothing leaks) is fitted on the 900 training cells (its validation
   predictions) and on all 1,000 (its test predictions), as `auto`'s members are refitted.
   One ``.npz`` per case in ``--cache``; resumes.
2. replay (the default): each rule picks from validation scores alone; test cells only
   score the picks.

    python benchmarks/transfer_blend.py --record --devices desktop_cpu,desktop_gpu,mobile_dsp --seeds 0,1,2
    python benchmarks/transfer_blend.py --devices desktop_cpu,desktop_gpu,mobile_dsp --seeds 0,1,2
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # 2 shared cores: one BLAS thread
import numpy as np  # noqa: E402

from transfer import FAMILIES, UNSEEN, pretrain_without  # noqa: E402


def record(devices: list[str], seeds: list[int], cache: Path) -> None:
    from nasloop.data import available_devices, load_device
    from nasloop.evaluation import resolve_params
    from nasloop.predictors import create_predictor
    from nasloop.splits import SplitSpec, fit_on_split, split_cells

    cache.mkdir(parents=True, exist_ok=True)
    lat = {d.name: load_device(d.name).latency_ms for d in available_devices()}
    family = {d: f for f, ms in {**FAMILIES, **UNSEEN}.items() for d in ms}
    tmp = Path(tempfile.mkdtemp())
    for dev in devices:
        members = {**FAMILIES, **UNSEEN}.get(family.get(dev), [dev])
        path, _, _ = pretrain_without(members, lat, tmp, dev)
        table = load_device(dev)
        for seed in seeds:
            f = cache / f"{dev}_{seed}.npz"
            if f.is_file():
                continue
            tr, va, te = split_cells(table, 900, 100, seed, "random")
            ytr, yva, yte = table.lookup(tr), table.lookup(va), table.lookup(te)
            t0 = time.perf_counter()
            auto, _ = fit_on_split("auto", table, SplitSpec(900, 100, seed, "random"),
                                   params={**resolve_params("auto"), "transfer_blend": False},
                                   model_seed=seed)  # `auto` before session 20
            secs = time.perf_counter() - t0
            rows = {"yv": yva, "yt": yte, "auto_val": auto.held_out_[2],
                    "auto_test": auto.predict(te), "chosen": "+".join(auto.choice_["chosen"]),
                    "seconds": secs}
            for label, pv in auto.val_pred_.items():
                rows[f"val_{label}"] = pv
                rows[f"test_{label}"] = auto.candidates_[label].predict(te)
            t = create_predictor("transfer", pretrained=str(path)).fit(tr, ytr)
            rows["val_transfer"] = t.predict(va)
            t = create_predictor("transfer", pretrained=str(path)).fit(
                tr + va, np.concatenate([ytr, yva]))
            rows["test_transfer"] = t.predict(te)
            np.savez(f, **rows)
            print(dev, seed, rows["chosen"], f"{secs:.0f} s", flush=True)


def _pick(yv, av, tv, hedge: bool, check: bool, margin: float) -> float:
    """The transfer weight a rule picks from the validation cells alone (0: no blend)."""
    from nasloop.metrics import log_loss, within
    from nasloop.predictors.auto import BLEND_SHRINK, BLEND_WEIGHTS, geometric_blend

    loss, w = min((log_loss(yv, geometric_blend([av, tv], [1 - w, w])), float(w))
                  for w in BLEND_WEIGHTS)
    if loss >= log_loss(yv, av) * (1 - margin):
        return 0.0
    w = w * BLEND_SHRINK if hedge else w
    if check and (within(yv, geometric_blend([av, tv], [1 - w, w]), 0.1).sum()
                  < within(yv, av, 0.1).sum()):
        return 0.0
    return w


#: rule -> (hedge, 10 % check, margin)
RULES = {"best w": (False, False, 0.0), "best w, margin, check": (False, True, 0.02),
         "hedged, margin, check": (True, True, 0.02)}


def replay(devices: list[str], seeds: list[int], cache: Path) -> None:
    from nasloop.metrics import latency_metrics, log_loss
    from nasloop.predictors.auto import geometric_blend

    rules = ("auto", "transfer alone", *RULES)
    print("| table, seed | auto chose | val log-loss: auto / transfer | "
          + " | ".join(rules) + " | w picked |")
    print("|---|---|---|" + "---|" * len(rules) + "---|")
    agg = {r: [] for r in rules}
    for dev in devices:
        for seed in seeds:
            f = cache / f"{dev}_{seed}.npz"
            if not f.is_file():
                continue
            z = np.load(f)
            yv, yt = z["yv"], z["yt"]
            av, at, tv, tt = z["auto_val"], z["auto_test"], z["val_transfer"], z["test_transfer"]
            picks, ws = {"auto": at, "transfer alone": tt}, []
            for r, (hedge, check, margin) in RULES.items():
                w = _pick(yv, av, tv, hedge, check, margin)
                ws.append(f"{w:.2f}")
                picks[r] = geometric_blend([at, tt], [1 - w, w])
            cells = []
            for r in rules:
                m = latency_metrics(yt, picks[r])
                agg[r].append(m)
                cells.append(f"{m['acc_5']:.1f} / {m['acc_10']:.2f} / {m['spearman']:.4f}")
            print(f"| {dev}, {seed} | {z['chosen']} | {log_loss(yv, av):.4f} / "
                  f"{log_loss(yv, tv):.4f} | " + " | ".join(cells) + f" | {' / '.join(ws)} |")
    n = len(agg["auto"])
    print(f"\nmean over {n} runs (acc_1 / acc_5 / acc_10 / Spearman):")
    for r in rules:
        if agg[r]:
            print(f"| {r} | " + " / ".join(
                f"{np.mean([m[k] for m in agg[r]]):.{4 if k == 'spearman' else 2}f}"
                for k in ("acc_1", "acc_5", "acc_10", "spearman")) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="desktop_cpu,desktop_gpu,mobile_dsp")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--cache", type=Path, default=Path("runs/transfer_blend"),
                    help="folder for the recorded predictions (not committed)")
    a = ap.parse_args()
    devices, seeds = a.devices.split(","), [int(s) for s in a.seeds.split(",")]
    if a.record:
        record(devices, seeds, a.cache)
    replay(devices, seeds, a.cache)


if __name__ == "__main__":
    main()
