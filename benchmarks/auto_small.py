"""``auto`` on few cells: how it chooses, and whether ``transfer`` should be a candidate.

Fits ``auto`` variants on the same cells as the leave-one-family-out few-shot benchmark
(``benchmarks/transfer.py``: 3 seeded random draws per table and K; the model ``transfer``
uses is pretrained without the held-out family, so nothing leaks):

- ``holdout``: the choice on a held-out tenth (before session 8), from scratch;
- ``cv``: every candidate scored out of fold (5-fold, below ``cv_below``), from scratch;
- ``cv_transfer_m0``: the same, with ``transfer`` among the candidates below
  ``transfer_below`` labelled cells, chosen like any other (session 18's first run);
- ``cv_transfer_floor``: ``transfer`` first unless a candidate fitted from scratch scores
  ``transfer_margin`` (10 %) lower out of fold, its predictions floored at half the
  smallest labelled latency as every member's were (session 18's first default; rows
  kept, the code no longer runs it);
- ``cv_transfer`` (the default since session 18): the same, ``transfer`` unfloored, and
  alone below 10 labelled cells.

Rows are one per (table, K, draw, variant); a rerun resumes. The session-8 file holds the
first two variants as one row per cell set (read the same way).

    python benchmarks/auto_small.py --variants cv_transfer --ks 10,20,50,100 \
        --out benchmarks/results/auto_small_transfer.jsonl
    python benchmarks/auto_small.py --report benchmarks/results/auto_small.jsonl \
        benchmarks/results/auto_small_transfer.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # 2 shared cores: one BLAS thread
import numpy as np  # noqa: E402

from transfer import FAMILIES, few_shot_cases  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "auto_small.jsonl"


def variant_params(name: str, pretrained: Path) -> dict:
    """``auto``'s parameters for a variant; ``pretrained``: the model without the family."""
    return {"holdout": {"cv_below": 0, "transfer_below": 0},
            "cv": {"transfer_below": 0},
            "cv_transfer_m0": {"pretrained": str(pretrained), "transfer_margin": 0.0},
            "cv_transfer": {"pretrained": str(pretrained)},
            }[name]


#: what this code can run, and every variant a results file may hold
RUNNABLE = ("holdout", "cv", "cv_transfer_m0", "cv_transfer")
VARIANTS = ("holdout", "cv", "cv_transfer_m0", "cv_transfer_floor", "cv_transfer")


def _rows(paths: list[Path]) -> list[dict]:
    rows = []
    for path in paths:
        if path.is_file():
            rows += [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return rows


def run(ks: tuple[int, ...], draws: int, variants: list[str], out: Path,
        families: list[str] | None = None, informative: bool = False) -> None:
    import torch

    from nasloop.metrics import latency_metrics
    from nasloop.predictors import create_predictor

    torch.set_num_threads(1)
    done = {(r["device"], r["k"], r["cells"], v) for r in _rows([out]) for v in VARIANTS if v in r}
    with out.open("a") as f:
        for fam, dev, k, tag, path, cells, y, tc, y_test in few_shot_cases(ks, draws, families):
            if tag == "inf" and not informative:  # the cells `transfer` would have measured
                continue
            for name in variants:
                if (dev, k, tag, name) in done:
                    continue
                row = {"family": fam, "device": dev, "k": k, "cells": tag}
                p = create_predictor("auto", **variant_params(name, path))
                try:
                    p.fit(cells, y)
                    m = latency_metrics(y_test, p.predict(tc))
                    row[name] = {"sp": m["spearman"], "a10": m["acc_10"],
                                 "chosen": p.choice_["chosen"]}
                except Exception as e:  # noqa: BLE001  (a failed fit scores 0, counted)
                    row[name] = {"sp": 0.0, "a10": 0.0, "failed": f"{type(e).__name__}: {e}"}
                f.write(json.dumps(row) + "\n")
                f.flush()


def report(paths: list[Path]) -> None:
    """Mean Spearman over the families (lowest) and mean acc_10 over the tables, per K
    and variant; a variant's cell sets must cover a family's tables to count it."""
    merged: dict[tuple, dict] = defaultdict(dict)
    for r in _rows(paths):
        merged[(r["family"], r["device"], r["k"], r["cells"])].update(
            {v: r[v] for v in VARIANTS if v in r})
    rows = [{"device": d, "k": k, **vs} for (_, d, k, _), vs in merged.items()]
    ks = sorted({r["k"] for r in rows})
    print("| K | variant | mean Spearman over families (min) | mean acc_10 over tables | "
          "failed | runs |")
    print("|---|---|---|---|---|---|")
    for k in ks:
        for name in VARIANTS:
            by_dev: dict[str, list] = defaultdict(list)
            for r in rows:
                if r["k"] == k and name in r:
                    by_dev[r["device"]].append(r[name])
            if not by_dev:
                continue
            fam_sp = [np.mean([np.mean([v["sp"] for v in by_dev[d]]) for d in ds])
                      for ds in FAMILIES.values() if all(d in by_dev for d in ds)]
            a10 = [np.mean([v["a10"] for v in vs]) for vs in by_dev.values()]
            failed = sum(1 for vs in by_dev.values() for v in vs if "failed" in v)
            n = sum(len(vs) for vs in by_dev.values())
            sp = f"{np.mean(fam_sp):.3f} ({min(fam_sp):.3f})" if fam_sp else "-"
            print(f"| {k} | {name} | {sp} ({len(fam_sp)} families) | {np.mean(a10):.1f} "
                  f"({len(a10)} tables) | {failed} | {n} |")


def versus(paths: list[Path], lofo: Path, variant: str) -> None:
    """``variant`` against ``transfer`` alone and ``auto`` from scratch on the very same
    draws: ``transfer_random`` runs of the leave-one-family-out file (run ``s`` is draw
    ``rnd{s}``) and the ``cv`` rows (session 8's ``auto``, from scratch)."""
    merged: dict[tuple, dict] = defaultdict(dict)
    for r in _rows(paths):
        merged[(r["family"], r["device"], r["k"], r["cells"])].update(
            {v: r[v] for v in VARIANTS if v in r})
    tr = {}  # transfer alone on the same cells: random draw s is run s; informative: one run
    for r in _rows([lofo]):
        if r["method"] in ("transfer_random", "transfer_informative"):
            for i, run in enumerate(r["runs"]):
                tag = "inf" if r["method"] == "transfer_informative" else f"rnd{i}"
                tr[(r["device"], r["k"], tag)] = {"sp": run["spearman"], "a10": run["acc_10"]}
    print(f"| K | runs (tables) | {variant}: mean Spearman over families (min) / mean acc_10 "
          "| transfer alone, same draws | auto from scratch (session 8), same draws | "
          f"{variant} chose transfer (alone or in a blend) |")
    print("|---|---|---|---|---|---|")
    for k, cells in sorted({(key[2], "inf" if key[3] == "inf" else "random")
                            for key in merged}):
        cases = [(key, vs) for key, vs in merged.items() if key[2] == k and variant in vs
                 and (key[1], k, key[3]) in tr and (key[3] == "inf") == (cells == "inf")]
        def summary(get) -> str:
            by_dev: dict[str, list] = defaultdict(list)
            for key, vs in cases:
                v = get(key, vs)
                if v is not None:
                    by_dev[key[1]].append(v)
            fam = [np.mean([np.mean([v["sp"] for v in by_dev[d]]) for d in ds])
                   for ds in FAMILIES.values() if all(d in by_dev for d in ds)]
            if not fam:
                return "-"
            a10 = np.mean([np.mean([v["a10"] for v in vs]) for vs in by_dev.values()])
            n = sum(len(v) for v in by_dev.values())
            return f"{np.mean(fam):.3f} ({min(fam):.3f}) / {a10:.1f} [{n}]"
        ours = summary(lambda key, vs: vs[variant])
        alone = summary(lambda key, vs: tr[(key[1], k, key[3])])
        scratch = summary(lambda key, vs: vs.get("cv"))
        picked = sum("transfer" in vs[variant].get("chosen", []) for _, vs in cases)
        print(f"| {k}, {cells} | {len(cases)} ({len({key[1] for key, _ in cases})}) | {ours} | {alone} "
              f"| {scratch} | {picked} of {len(cases)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="10,20,50")
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--variants", default="holdout,cv",
                    help=f"comma-separated, of {', '.join(RUNNABLE)}")
    ap.add_argument("--families", default="", help="only these families (default: all)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--informative", action="store_true",
                    help="also fit on the K cells `measure --cells-for transfer` would time")
    ap.add_argument("--report", type=Path, nargs="*", default=None,
                    help="print the table from these files (default: --out)")
    ap.add_argument("--versus", type=Path, default=None,
                    help="with --report: cv_transfer against transfer alone (this "
                         "leave-one-family-out file) and auto from scratch, same draws")
    a = ap.parse_args()
    if a.report is not None and a.versus is not None:
        for v in ("cv_transfer_m0", "cv_transfer_floor", "cv_transfer"):
            versus(a.report, a.versus, v)
        return
    if a.report is None:
        variants = a.variants.split(",")
        bad = sorted(set(variants) - set(RUNNABLE))
        if bad:
            ap.error(f"unknown variant(s) {', '.join(bad)}: use {', '.join(RUNNABLE)}")
        run(tuple(int(k) for k in a.ks.split(",")), a.draws, variants, a.out,
            a.families.split(",") if a.families else None, a.informative)
    report(a.report or [a.out])


if __name__ == "__main__":
    main()
