"""How `auto` chooses on few cells: its choice rules replayed on recorded fits (session 19).

On 10-50 labelled cells `auto` scores its candidates out of fold and keeps the pretrained
``transfer`` model first unless a backend fitted from scratch scores ``transfer_margin``
lower. Out-of-fold scores on 10-20 cells are noisy, and now and then a lucky fold hands the
choice to a model of 10 cells (session 18: mobile_dsp_685, K=10, ``linear``, Spearman
0.197). Rules are compared without refitting:

1. ``--record DIR``: the default ``auto`` is fitted on the cells of the leave-one-family-out
   few-shot benchmark (``benchmarks/transfer.py``: 3 seeded random draws per table and K;
   ``transfer`` pretrained without the held-out family, so nothing leaks). Each fit's
   candidates' out-of-fold predictions (``val_pred_``), the labels, and every candidate's
   predictions of the test cells (fitted on all K cells, as the final members are) go to one
   ``.npz`` per case. Resumes.
2. replay (the default): each rule picks members and weights from the out-of-fold scores
   alone, exactly as ``auto`` does (best, then the hedged blend of the best two with its
   margin and its 10 % check); the picked members' test predictions are scored. The rule
   the recording code ran must reproduce every recorded final prediction (checked and
   printed: ``session 18`` for the fits recorded in session 19, the adopted rule since).

Rules: ``session 18`` (``transfer_margin`` 0.1, the rule before session 19), other margins, ``boot``: a from-scratch
leader replaces ``transfer`` only if it has the lower out-of-fold error in at least ``q`` of
2,000 bootstrap resamples of the cells (paired), ``keep``: a from-scratch leader is always
blended with ``transfer`` (geometric mean), ``transfer`` weighing ``share`` (``hedged``: the
weight chosen out of fold, halved; 0.5 is ``auto``'s ``transfer_share`` since session 19),
``transfer_lead``: ``transfer`` always
leads (a from-scratch model may still join it in a blend), ``transfer_only``.

    python benchmarks/small_choice.py --record runs/small_choice --ks 10,20,50
    python benchmarks/small_choice.py runs/small_choice
    python benchmarks/small_choice.py --record --informative runs/small_choice_inf --ks 20,50
"""
from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # 2 shared cores: one BLAS thread
import numpy as np  # noqa: E402
from transfer import FAMILIES, few_shot_cases  # noqa: E402

#: name -> (rule, parameters)
RULES: dict[str, tuple[str, dict]] = {
    "session 18": ("margin", {"margin": 0.1}),
    "margin 0": ("margin", {"margin": 0.0}),
    "margin 0.2": ("margin", {"margin": 0.2}),
    "margin 0.3": ("margin", {"margin": 0.3}),
    "margin 0.5": ("margin", {"margin": 0.5}),
    "boot 0.9": ("boot", {"q": 0.9, "margin": 0.1}),
    "boot 0.95": ("boot", {"q": 0.95, "margin": 0.1}),
    "boot 0.99": ("boot", {"q": 0.99, "margin": 0.1}),
    "keep, hedged": ("keep", {"share": None}),
    "keep 0.25": ("keep", {"share": 0.25}),
    "keep 0.5 (adopted)": ("keep", {"share": 0.5}),
    "transfer_lead": ("lead", {}),
    "transfer_only": ("only", {}),
}


def record(out: Path, ks: tuple[int, ...], families: list[str] | None,
           informative: bool = False, draws: int = 3) -> None:
    import torch

    from nasloop.predictors import create_predictor

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    for _, dev, k, tag, path, cells, y, tc, y_test in few_shot_cases(ks, draws, families):
        f = out / f"{dev}_{k}_{tag}.npz"
        if (tag == "inf") != informative or f.is_file():
            continue
        t0 = time.perf_counter()
        p = create_predictor("auto", pretrained=str(path)).fit(cells, y)
        rows = {"y": y, "y_test": y_test, "final": p.predict(tc), "vy": p.held_out_[1],
                "chosen": "+".join(p.choice_["chosen"]),
                "weights": np.asarray(p.choice_["weights"])}
        for label, pv in p.val_pred_.items():
            rows[f"oof_{label}"] = pv
            rows[f"test_{label}"] = p.candidates_[label].predict(tc)
            rows[f"backend_{label}"] = p.choice_["tried"][label]["backend"]
        np.savez(f, **rows)
        print(dev, k, tag, rows["chosen"], f"{time.perf_counter() - t0:.1f} s", flush=True)


def _errors(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.where(np.isfinite(p) & (p > 0), p, y * 1e-2)
    return np.abs(np.log(p / y))


def choose(z, rule: str, margin: float = 0.1, q: float = 0.9, draws: int = 2000,
           share: float | None = None) -> tuple[list[str], list[float], dict[str, float]]:
    """Members, weights and floors a rule picks from a recorded fit's out-of-fold scores."""
    from nasloop.metrics import log_loss, within
    from nasloop.predictors.auto import (
        ACC_BOUND,
        BLEND_MARGIN,
        BLEND_SHRINK,
        FLOOR_SHARE,
        UNFLOORED,
        geometric_blend,
        grid_blend,
    )

    labels = [k[4:] for k in z.files if k.startswith("oof_")]
    vy = z["vy"]
    backend = {k: str(z[f"backend_{k}"]) for k in labels}
    floors = {k: 1e-9 if backend[k] in UNFLOORED else FLOOR_SHARE * float(vy.min())
              for k in labels}
    loss = {k: log_loss(vy, z[f"oof_{k}"]) for k in labels}
    pre = next((k for k in labels if backend[k] == "transfer"), None)
    ranked = sorted(labels, key=lambda k: loss[k] * (1 - margin if k == pre else 1))
    if pre is not None and rule in ("boot", "lead", "only"):
        lead = pre
        if rule == "boot" and ranked[0] != pre:
            d = _errors(vy, z[f"oof_{ranked[0]}"]) - _errors(vy, z[f"oof_{pre}"])
            idx = np.random.default_rng(0).integers(0, len(d), (draws, len(d)))
            if np.mean(d[idx].mean(axis=1) < 0) >= q:
                lead = ranked[0]
        if rule == "only":
            return [pre], [1.0], floors
        ranked = [lead] + [k for k in ranked if k != lead]
    if pre is not None and rule == "keep" and ranked[0] != pre:
        # a from-scratch leader never drops transfer: blended with it, transfer's weight
        # ``share`` (auto's ``transfer_share``), or (None) the weight chosen out of fold, hedged
        if share is None:
            _, w = grid_blend(vy, z[f"oof_{ranked[0]}"], z[f"oof_{pre}"],
                              [floors[ranked[0]], floors[pre]])
            share = (1 - w) * BLEND_SHRINK
        return [ranked[0], pre], [1 - share, share], floors
    members, weights = [ranked[0]], [1.0]
    if len(ranked) > 1:  # auto's hedged blend of the best two, as in _choose_blend
        top2 = [z[f"oof_{k}"] for k in ranked[:2]]
        f2 = [floors[k] for k in ranked[:2]]
        blend, w = grid_blend(vy, *top2, f2)
        if blend < loss[ranked[0]] * (1 - BLEND_MARGIN):
            wb = (1 - w) * BLEND_SHRINK
            hedged = geometric_blend(top2, [1 - wb, wb], f2)
            if within(vy, hedged, ACC_BOUND).sum() >= within(vy, top2[0], ACC_BOUND).sum():
                members, weights = ranked[:2], [1 - wb, wb]
    return members, weights, floors


def replay(folder: Path) -> None:
    from scipy.stats import spearmanr

    from nasloop.metrics import within
    from nasloop.predictors.auto import geometric_blend

    family = {d: f for f, members in FAMILIES.items() for d in members}
    rows: dict[tuple[int, str], list[tuple]] = defaultdict(list)
    #: recorded fits each rule reproduces exactly: the rule the recording code ran
    same: dict[str, int] = defaultdict(int)
    total = 0
    for f in sorted(folder.glob("*.npz")):
        z = np.load(f)
        dev, k, _ = f.stem.rsplit("_", 2)
        for name, (rule, params) in RULES.items():
            members, weights, floors = choose(z, rule, **params)
            pred = geometric_blend([z[f"test_{m}"] for m in members], weights,
                                   [floors[m] for m in members])
            y = z["y_test"]
            rows[(int(k), name)].append((family[dev], float(spearmanr(pred, y)[0]),
                                         float(within(y, pred, 0.1).mean() * 100),
                                         members[0], dev))
            same[name] += bool(np.allclose(pred, z["final"], rtol=1e-6))
        total += 1
    for name in ("session 18", "keep 0.5 (adopted)"):
        print(f"`{name}` reproduces {same[name]} of {total} recorded fits")
    print()
    print("| K | rule | fits | mean Spearman over families (lowest family) | worst fit | "
          "mean acc_10 | fits led by a from-scratch model |")
    print("|---|---|---|---|---|---|---|")
    order = sorted(rows.items(), key=lambda kv: (kv[0][0], list(RULES).index(kv[0][1])))
    for (k, name), rs in order:
        by_family = defaultdict(list)
        for fam, sp, *_ in rs:
            by_family[fam].append(sp)
        fam_means = [np.mean(v) for v in by_family.values()]
        print(f"| {k} | {name} | {len(rs)} | {np.mean(fam_means):.4f} ({min(fam_means):.3f}) | "
              f"{min(r[1] for r in rs):.3f} | {np.mean([r[2] for r in rs]):.2f} | "
              f"{sum(r[3] != 'transfer' for r in rs)} |")
    # issue #13: with 50 cells, acc_10 within 5 points of `auto` on 900 cells, every table
    from transfer import auto900

    a900 = auto900()
    print("\n| K | rule | tables with mean acc_10 within 5 points of `auto` on 900 cells |")
    print("|---|---|---|")
    for (k, name), rs in order:
        if k < 50:
            continue
        by_table = defaultdict(list)
        for *_, a10, _, dev in rs:
            by_table[dev].append(a10)
        ok = [d for d, v in by_table.items() if d in a900 and np.mean(v) >= a900[d]["acc_10"] - 5]
        print(f"| {k} | {name} | {len(ok)} of {len(by_table)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, nargs="?", default=Path("runs/small_choice"))
    ap.add_argument("--record", action="store_true", help="fit and record into FOLDER")
    ap.add_argument("--ks", default="10,20,50")
    ap.add_argument("--families", default=None, help="comma-separated (default: all)")
    ap.add_argument("--draws", type=int, default=3, help="random cell sets per table and K")
    ap.add_argument("--informative", action="store_true",
                    help="record the cells transfer would measure instead of the random draws")
    a = ap.parse_args()
    if a.record:
        record(a.folder, tuple(int(k) for k in a.ks.split(",")),
               a.families.split(",") if a.families else None, a.informative, a.draws)
    else:
        replay(a.folder)


if __name__ == "__main__":
    main()
