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
   (``--split grouped``: no test cell has an isomorph in training)
   ``transfer`` pretrained without the table's family (``benchmarks/transfer.py``'s
   families: nothing leaks) is fitted on the 900 training cells (its validation
   predictions) and on all 1,000 (its test predictions), as `auto`'s members are refitted.
   One ``.npz`` per case in ``--cache``; resumes.
2. replay (the default): each rule picks from validation scores alone; test cells only
   score the picks.

    python benchmarks/transfer_blend.py --record --devices desktop_cpu,desktop_gpu,mobile_dsp --seeds 0,1,2
    python benchmarks/transfer_blend.py --devices desktop_cpu,desktop_gpu,mobile_dsp --seeds 0,1,2
    python benchmarks/transfer_blend.py --transfer-set '{"table_weight": 1.0}'   # another transfer
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # 2 shared cores: one BLAS thread
import numpy as np
from transfer import FAMILIES, UNSEEN, pretrain_without


def _file(cache: Path, dev: str, seed: int, split: str) -> Path:
    return cache / (f"{dev}_{seed}.npz" if split == "random" else f"{dev}_{split}_{seed}.npz")


_PRETRAINED: dict[str, Path] = {}


def _without_family(dev: str) -> Path:
    """``transfer`` pretrained without ``dev``'s family (once per device and process)."""
    from nasloop.data import available_devices, load_device

    if dev not in _PRETRAINED:
        lat = {d.name: load_device(d.name).latency_ms for d in available_devices()}
        family = {d: f for f, ms in {**FAMILIES, **UNSEEN}.items() for d in ms}
        members = {**FAMILIES, **UNSEEN}.get(family.get(dev), [dev])
        _PRETRAINED[dev] = pretrain_without(members, lat, Path(tempfile.mkdtemp()), dev)[0]
    return _PRETRAINED[dev]


def _fit_transfer(dev: str, seed: int, split: str, params: dict
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``transfer`` (``params``) on a split: its predictions of the validation cells
    (fitted on the training cells) and of the test cells (fitted on both)."""
    from nasloop.data import load_device
    from nasloop.predictors import create_predictor
    from nasloop.splits import split_cells

    table = load_device(dev)
    tr, va, te = split_cells(table, 900, 100, seed, split)
    ytr, yva = table.lookup(tr), table.lookup(va)
    path = str(_without_family(dev))
    val = create_predictor("transfer", pretrained=path, **params).fit(tr, ytr).predict(va)
    test = create_predictor("transfer", pretrained=path, **params).fit(
        tr + va, np.concatenate([ytr, yva])).predict(te)
    return val, test


def record(devices: list[str], seeds: list[int], cache: Path, split: str = "random") -> None:
    from nasloop.data import load_device
    from nasloop.evaluation import resolve_params
    from nasloop.splits import SplitSpec, fit_on_split, split_cells

    cache.mkdir(parents=True, exist_ok=True)
    for dev in devices:
        table = load_device(dev)
        for seed in seeds:
            f = _file(cache, dev, seed, split)
            if f.is_file():
                continue
            _, va, te = split_cells(table, 900, 100, seed, split)
            yva, yte = table.lookup(va), table.lookup(te)
            t0 = time.perf_counter()
            auto, _ = fit_on_split("auto", table, SplitSpec(900, 100, seed, split),
                                   params={**resolve_params("auto"), "transfer_blend": False},
                                   model_seed=seed)  # `auto` before session 20
            secs = time.perf_counter() - t0
            rows = {"yv": yva, "yt": yte, "auto_val": auto.held_out_[2],
                    "auto_test": auto.predict(te), "chosen": "+".join(auto.choice_["chosen"]),
                    "seconds": secs}
            for label, pv in auto.val_pred_.items():
                rows[f"val_{label}"] = pv
                rows[f"test_{label}"] = auto.candidates_[label].predict(te)
            rows["val_transfer"], rows["test_transfer"] = _fit_transfer(dev, seed, split, {})
            np.savez(f, **rows)
            print(dev, seed, rows["chosen"], f"{secs:.0f} s", flush=True)


def _pick(yv, av, tv, hedge: bool, check: bool, margin: float, band: bool = False
          ) -> tuple[float, float | None]:
    """The transfer weight a rule picks from the validation cells alone (0: no blend), and
    the band around ``transfer`` it then holds the prediction in (None: none), as `auto`
    picks them (``band``: session 21's ``transfer_band``)."""
    from nasloop.metrics import log_loss, within
    from nasloop.predictors.auto import (
        BLEND_SHRINK,
        geometric_blend,
        grid_band,
        grid_blend,
    )

    loss, w = grid_blend(yv, tv, av)  # w: transfer's weight, as `auto` picks it
    w = w * BLEND_SHRINK if hedge else w
    if loss >= log_loss(yv, av) * (1 - margin) or (check and (
            within(yv, geometric_blend([av, tv], [1 - w, w]), 0.1).sum()
            < within(yv, av, 0.1).sum())):
        w, loss = 0.0, log_loss(yv, av)
    if not band:
        return w, None
    now = geometric_blend([av, tv], [1 - w, w])
    found = grid_band(yv, now, tv, within(yv, now, 0.1).sum() if check else 0)
    return (w, None) if found is None or found[0] >= loss * (1 - margin) else (w, found[1])


def _pick_kinds(yv, av, tv, seen_v) -> tuple[float, float | None, dict | None]:
    """Session 21's ``transfer_kinds`` after the band rule, as `auto` picks it
    (``keep_kinds``): a weight for validation cells whose network is among the training
    cells and one for the rest, kept if the whole (band included) has the lower
    validation error."""
    from nasloop.metrics import log_loss
    from nasloop.predictors.auto import keep_band, keep_kinds

    w, _ = _pick(yv, av, tv, False, True, 0.02)
    now = _apply(av, tv, w, None)
    b, final = keep_band(yv, now, log_loss(yv, now), tv)
    got = keep_kinds(yv, av, tv, seen_v, w, final)
    return (w, b, None) if got is None else (0.0, got[1], got[0])


def _seen(dev: str, seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Validation cells whose network is among the training cells, and test cells whose
    network is among the training + validation cells (what `auto`'s refit saw)."""
    from nasloop.data import load_device
    from nasloop.predictors.auto import network_keys, seen_mask
    from nasloop.splits import split_cells

    tr, va, te = split_cells(load_device(dev), 900, 100, seed, split)
    return seen_mask(va, network_keys(tr)), seen_mask(te, network_keys(tr + va))


def _apply(at, tt, w: float, band: float | None, kinds: dict | None = None,
           seen=None) -> np.ndarray:
    from nasloop.predictors.auto import band_clip, geometric_blend, kind_blend

    blend = geometric_blend([at, tt], [1 - w, w])
    if kinds is not None:
        blend = kind_blend(blend, tt, seen, kinds)
    return blend if band is None else band_clip(blend, tt, band)


#: rule -> (hedge, 10 % check, margin, band)
RULES = {"best w": (False, False, 0.0, False),
         "best w, margin, check": (False, True, 0.02, False),
         "hedged, margin, check": (True, True, 0.02, False),
         "+ band": (False, True, 0.02, True)}


def replay(devices: list[str], seeds: list[int], cache: Path, split: str = "random",
           transfer_params: dict | None = None) -> None:
    """Each rule's test scores per case and their means; ``transfer_params``: ``transfer``
    refitted with these parameters instead of the recorded defaults."""
    from nasloop.metrics import latency_metrics, log_loss

    rules = ("auto", "transfer alone", *RULES, ADOPTED)
    print("| table, seed | auto chose | val log-loss: auto / transfer | "
          + " | ".join(rules) + " | w picked |")
    print("|---|---|---|" + "---|" * len(rules) + "---|")
    agg, losses = {r: [] for r in rules}, []
    singles: dict[str, dict[str, list]] = {}  # table -> single model -> metrics per seed
    for dev in devices:
        for seed in seeds:
            f = _file(cache, dev, seed, split)
            if not f.is_file():
                continue
            z = np.load(f)
            yv, yt = z["yv"], z["yt"]
            av, at, tv, tt = z["auto_val"], z["auto_test"], z["val_transfer"], z["test_transfer"]
            if transfer_params:
                tv, tt = _fit_transfer(dev, seed, split, transfer_params)
            losses.append((log_loss(yv, av), log_loss(yv, tv)))
            picks, ws = {"auto": at, "transfer alone": tt}, []
            for r, (hedge, check, margin, band) in RULES.items():
                w, b = _pick(yv, av, tv, hedge, check, margin, band)
                ws.append(f"{w:.2f}" + ("" if b is None else f" b{b:g}"))
                picks[r] = _apply(at, tt, w, b)
            seen_v, seen_t = _seen(dev, seed, split)
            w, b, kinds = _pick_kinds(yv, av, tv, seen_v)
            ws.append(f"{w:.2f}" + ("" if b is None else f" b{b:g}") + (
                "" if kinds is None else f" s{kinds['seen']:g}/u{kinds['unseen']:g}"))
            picks[ADOPTED] = _apply(at, tt, w, b, kinds, seen_t)
            cells = []
            per = singles.setdefault(dev, {})
            for k in z.files:  # the candidates as fitted inside `auto`, and transfer alone
                if k.startswith("test_") and k != "test_transfer":
                    per.setdefault(f"{k[5:]} (in auto)", []).append(latency_metrics(yt, z[k]))
            per.setdefault("transfer", []).append(latency_metrics(yt, tt))
            for r in rules:
                m = latency_metrics(yt, picks[r])
                agg[r].append(m)
                if r == ADOPTED:
                    per.setdefault(r, []).append(m)
                cells.append(f"{m['acc_5']:.1f} / {m['acc_10']:.2f} / {m['spearman']:.4f}")
            print(f"| {dev}, {seed} | {z['chosen']} | {log_loss(yv, av):.4f} / "
                  f"{log_loss(yv, tv):.4f} | " + " | ".join(cells) + f" | {' / '.join(ws)} |")
    n = len(agg["auto"])
    if not n:
        return
    lv = np.mean(losses, axis=0)
    print(f"\nmean over {n} runs (acc_1 / acc_5 / acc_10 / Spearman; validation log-loss "
          f"auto {lv[0]:.4f}, transfer {lv[1]:.4f}):")
    for r in rules:
        if agg[r]:
            print(f"| {r} | " + " / ".join(
                f"{np.mean([m[k] for m in agg[r]]):.{4 if k == 'spearman' else 2}f}"
                for k in ("acc_1", "acc_5", "acc_10", "spearman")) + " |")
    _check(singles)


#: the rule ``auto`` follows (the every-table check reads it)
ADOPTED = "+ kinds (adopted)"


def _check(singles: dict[str, dict[str, list]]) -> None:
    """Issue #9's every-table check on the recorded fits: the adopted rule's mean acc_10
    and Spearman against the best single model's (each candidate as fitted inside `auto`,
    and ``transfer`` alone), within 1 point and 0.005 or above."""
    print("\n| table | seeds | adopted acc_10 | best single acc_10 (who) | adopted Spearman "
          "| best single Spearman (who) | within 1 pt / 0.005 |\n|---|---|---|---|---|---|---|")
    ok = 0
    for dev, per in singles.items():
        mean = {name: {k: np.mean([m[k] for m in ms]) for k in ("acc_10", "spearman")}
                for name, ms in per.items()}
        mine = mean.pop(ADOPTED)
        b10 = max(mean, key=lambda n: mean[n]["acc_10"])
        bsp = max(mean, key=lambda n: mean[n]["spearman"])
        good = (mine["acc_10"] >= mean[b10]["acc_10"] - 1
                and mine["spearman"] >= mean[bsp]["spearman"] - 0.005)
        ok += good
        print(f"| {dev} | {len(per[ADOPTED])} | {mine['acc_10']:.2f} | "
              f"{mean[b10]['acc_10']:.2f} ({b10}) | {mine['spearman']:.4f} | "
              f"{mean[bsp]['spearman']:.4f} ({bsp}) | {'yes' if good else '**no**'} |")
    print(f"\n{ok} of {len(singles)} tables within 1 point and 0.005 of the best single model")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="desktop_cpu,desktop_gpu,mobile_dsp")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--split", default="random", choices=("random", "grouped"))
    ap.add_argument("--transfer-set", default="{}",
                    help="JSON parameters of transfer, refitted in the replay")
    ap.add_argument("--cache", type=Path, default=Path("runs/transfer_blend"),
                    help="folder for the recorded predictions (not committed)")
    a = ap.parse_args()
    devices, seeds = a.devices.split(","), [int(s) for s in a.seeds.split(",")]
    if a.record:
        record(devices, seeds, a.cache, a.split)
    replay(devices, seeds, a.cache, a.split, json.loads(a.transfer_set))


if __name__ == "__main__":
    main()
