"""When should ``auto`` blend its best two candidates? Rules compared on the same fits.

``auto`` keeps a blend of its best two candidates when the blend lowers the validation
log error by ``BLEND_MARGIN`` (2 %). On the grouped split some blends lost 10-18 points of
acc_10 against their better member (docs/results.md, "3 seeds on every public table"), so
this script refits ``auto``'s choice stage (no refit: every candidate is fitted on the
training cells only, exactly as inside ``auto``) for given (device, split, seed) runs,
keeps every candidate's predictions of the validation and test cells (cached as .npz,
not committed: they are derived from the benchmark tables), and applies each rule below
to the validation predictions alone. Each rule's pick is then scored on the test cells.
A rule is chosen by what it does on test across all runs; it only ever sees validation.

    python benchmarks/blend_rule.py --runs-from-blends benchmarks/results/auto*.jsonl \
        --out benchmarks/results/blend_rule.jsonl --cache /tmp/blend_cache
    python benchmarks/blend_rule.py --report benchmarks/results/blend_rule.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from nasloop.data import load_device
from nasloop.metrics import latency_metrics, log_loss, within
from nasloop.predictors.auto import BLEND_WEIGHTS, AutoPredictor, geometric_blend
from nasloop.space import arch_index, canonical_representatives
from nasloop.splits import split_cells

from every_device import load_results  # benchmarks/ is on sys.path when run as a script

METRICS = ("acc_1", "acc_5", "acc_10", "spearman")


def _blend(preds: dict, a: str, b: str, w: float) -> np.ndarray:
    return geometric_blend([preds[a], preds[b]], [w, 1 - w])


def _best_blend(vy, val: dict, a: str, b: str, loss_fn) -> tuple[float, float]:
    """(weight, loss) of the best blend weight of ``a`` and ``b`` under ``loss_fn``."""
    scores = [(loss_fn(vy, _blend(val, a, b, w)), float(w)) for w in BLEND_WEIGHTS]
    loss, w = min(scores)
    return w, loss


def _class_loss(classes: np.ndarray):
    """The log error with every isomorphism class of the validation cells counted once."""
    uniq, inv = np.unique(classes, return_inverse=True)

    def loss(true, pred):
        err = np.abs(np.log(np.maximum(pred, 1e-9)) - np.log(true))
        return float(np.mean(np.bincount(inv, err) / np.bincount(inv)))
    return loss


def rules(vy: np.ndarray, val: dict, classes: np.ndarray, seed: int) -> dict[str, tuple]:
    """Each rule's pick from validation alone: name -> (members, weights)."""
    ranked = sorted(val, key=lambda k: log_loss(vy, val[k]))
    best = ranked[0]
    single = ((best,), (1.0,))
    out = {"never": single}
    if len(ranked) < 2:
        return {k: single for k in ("current", "margin_0", "margin_2", "margin_5", "margin_10",
                                    "class_margin_2", "bootstrap_90", "margin_2_half",
                                    "margin_2_cap10", "half_acc10", "never")}
    a, b = ranked[:2]
    base = log_loss(vy, val[best])
    # the rule of auto before session 9, as it ran: weights scanned from 0.1 up, each
    # accepted when 2 % below the last accepted loss (so not always the lowest loss)
    cur, cur_loss = single, base
    for w in BLEND_WEIGHTS:
        lw = log_loss(vy, _blend(val, a, b, w))
        if lw < cur_loss * 0.98:
            cur, cur_loss = ((a, b), (float(w), float(1 - w))), lw
    out["current"] = cur
    w, lw = _best_blend(vy, val, a, b, log_loss)
    for m in (0, 2, 5, 10):
        out[f"margin_{m}"] = ((a, b), (w, 1 - w)) if lw < base * (1 - m / 100) else single
    # each class once: a big class of isomorphs (one network) is one piece of evidence
    closs = _class_loss(classes)
    cbest = min(val, key=lambda k: closs(vy, val[k]))
    ca, cb = sorted(val, key=lambda k: closs(vy, val[k]))[:2]
    cw, clw = _best_blend(vy, val, ca, cb, closs)
    out["class_margin_2"] = (((ca, cb), (cw, 1 - cw)) if clw < closs(vy, val[cbest]) * 0.98
                             else ((cbest,), (1.0,)))
    # the blend (weight fixed as chosen) beats the best single in >= 90 % of resamples
    # of the validation classes
    rng = np.random.default_rng([seed, 7])
    uniq, inv = np.unique(classes, return_inverse=True)
    eb = np.abs(np.log(_blend(val, a, b, w)) - np.log(vy))
    es = np.abs(np.log(np.maximum(val[best], 1e-9)) - np.log(vy))
    gb, gs = np.bincount(inv, eb), np.bincount(inv, es)
    n = np.bincount(inv)
    wins = 0
    for _ in range(1000):
        pick = rng.integers(0, len(uniq), len(uniq))
        wins += gb[pick].sum() / n[pick].sum() < gs[pick].sum() / n[pick].sum()
    out["bootstrap_90"] = ((a, b), (w, 1 - w)) if lw < base and wins >= 900 else single
    # the blend as chosen, its partner's weight halved (a hedge: half the step away from
    # the best single candidate), and the partner's weight capped at 0.1
    if lw < base * 0.98:
        out["margin_2_half"] = ((a, b), ((1 + w) / 2, (1 - w) / 2))
        wc = max(w, 0.9) if a == best else w
        out["margin_2_cap10"] = ((a, b), (wc, 1 - wc))
    else:
        out["margin_2_half"] = out["margin_2_cap10"] = single
    # session 12: the hedged blend (auto's rule) kept only if it does not lower the share
    # of validation cells within 10 %: log error rewards shrinking the largest errors,
    # acc_10 leaving near-right predictions alone (edgetpu_large, grouped)
    out["half_acc10"] = single
    if len(out["margin_2_half"][0]) == 2:
        (ha, hb), (hw, _) = out["margin_2_half"]
        if within(vy, _blend(val, ha, hb, hw), 0.1).sum() >= within(vy, val[best], 0.1).sum():
            out["half_acc10"] = out["margin_2_half"]
    return out


def fit_run(device: str, split: str, seed: int, cache: Path, data_dir: str | None) -> dict:
    """Every candidate's validation and test predictions for one run (cached)."""
    f = cache / f"{device}_{split}_{seed}.npz"
    table = load_device(device, data_dir)
    tr, va, te = split_cells(table, 900, 100, seed, split)
    if not f.is_file():
        auto = AutoPredictor(seed=seed, refit=False)
        auto.fit(tr, table.lookup(tr), val=(va, table.lookup(va)))
        arrays = {}
        for label, p in auto.candidates_.items():
            arrays[f"val__{label}"] = p.predict(va)
            arrays[f"test__{label}"] = p.predict(te)
        arrays["chosen"] = np.array(auto.choice_["chosen"])
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(f, **arrays)
    z = np.load(f, allow_pickle=False)
    labels = sorted(k.split("__", 1)[1] for k in z.files if k.startswith("val__"))
    return {"val": {k: z[f"val__{k}"] for k in labels}, "test": {k: z[f"test__{k}"] for k in labels},
            "vy": table.lookup(va), "ty": table.lookup(te), "va": va,
            "auto_chose": [str(c) for c in z["chosen"]]}


def score(run: dict, seed: int) -> dict:
    reps = canonical_representatives()
    classes = np.array([reps[arch_index(a)] for a in run["va"]])
    picks = rules(run["vy"], run["val"], classes, seed)
    out = {"auto_chose": run["auto_chose"],
           "candidates": {k: {m: latency_metrics(run["ty"], p)[m] for m in METRICS}
                          for k, p in run["test"].items()},
           "val_log_loss": {k: log_loss(run["vy"], p) for k, p in run["val"].items()},
           "rules": {}}
    for name, (members, weights) in picks.items():
        if len(members) == 1:
            pred = run["test"][members[0]]
        else:
            pred = _blend(run["test"], members[0], members[1], weights[0])
        m = latency_metrics(run["ty"], pred)
        out["rules"][name] = {"members": list(members), "weights": [float(w) for w in weights],
                              **{k: m[k] for k in METRICS}}
    return out


def blend_runs(paths: list[Path]) -> list[tuple[str, str, int]]:
    """(device, split, seed) of every stored ``auto`` run that chose a blend."""
    runs = set()
    for p in paths:
        for r in load_results(p):
            if r.get("predictor") != "auto":
                continue
            for run in r.get("runs") or []:
                if len((run.get("choice") or {}).get("chosen", [])) == 2:
                    runs.add((r["device"], r["protocol"]["split"], int(run["split_seed"])))
    return sorted(runs)


def report(path: Path) -> str:
    rows = load_results(path)
    names = list(rows[0]["rules"])
    lines = ["| rule | runs | blends kept | mean acc_10 | mean Δ acc_10 vs never | worst Δ | "
             "mean Spearman | mean Δ Spearman |", "|---|---|---|---|---|---|---|---|"]
    for split in ("random", "grouped", "both"):
        sub = [r for r in rows if split in ("both", r["split"])]
        if not sub:
            continue
        lines.append(f"| **{split}** | | | | | | | |")
        for n in names:
            d10 = [r["rules"][n]["acc_10"] - r["rules"]["never"]["acc_10"] for r in sub]
            dsp = [r["rules"][n]["spearman"] - r["rules"]["never"]["spearman"] for r in sub]
            kept = sum(len(r["rules"][n]["members"]) == 2 for r in sub)
            lines.append(f"| {n} | {len(sub)} | {kept} | "
                         f"{np.mean([r['rules'][n]['acc_10'] for r in sub]):.2f} | "
                         f"{np.mean(d10):+.2f} | {min(d10):+.1f} | "
                         f"{np.mean([r['rules'][n]['spearman'] for r in sub]):.4f} | "
                         f"{np.mean(dsp):+.4f} |")
    lines += ["", "| device | split | seed | auto chose | " + " | ".join(names) + " |",
              "|---|---|---|---|" + "---|" * len(names)]
    for r in rows:
        cells = []
        for n in names:
            x = r["rules"][n]
            tag = "+".join(x["members"]) if len(x["members"]) == 2 else x["members"][0]
            cells.append(f"{x['acc_10']:.1f} ({tag})")
        lines.append(f"| {r['device']} | {r['split']} | {r['seed']} | {'+'.join(r['auto_chose'])} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs-from-blends", type=Path, nargs="+", default=None,
                    help="JSON-lines results of auto: every run that chose a blend")
    ap.add_argument("--runs", default=None, help="device:split:seed,... (instead)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/blend_cache"))
    ap.add_argument("--report", type=Path, default=None)
    ap.add_argument("--data-dir", default=os.environ.get("NASLOOP_DATA"))
    a = ap.parse_args()
    if a.report:
        print(report(a.report))
        return
    runs = (blend_runs(a.runs_from_blends) if a.runs_from_blends else
            [(d, s, int(k)) for d, s, k in (x.split(":") for x in a.runs.split(","))])
    done = {(r["device"], r["split"], r["seed"]) for r in load_results(a.out)} if a.out else set()
    print(f"{len(runs)} runs, {len(done)} done", flush=True)
    for device, split, seed in runs:
        if (device, split, seed) in done:
            continue
        out = {"device": device, "split": split, "seed": seed,
               **score(fit_run(device, split, seed, a.cache, a.data_dir), seed)}
        r = out["rules"]
        print(f"{device:30s} {split:8s} {seed} auto chose {'+'.join(out['auto_chose']):24s} "
              + " ".join(f"{n}={r[n]['acc_10']:.1f}" for n in r), flush=True)
        if a.out:
            with a.out.open("a") as f:
                f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
