"""The main job's budget guard on every table: margin and refits (issue #13, done-when 2).

The live mode fits ``transfer`` on ~30 timed cells, searches, and times the finalists. On
this machine all finalists of four runs were over the budget (docs/results.md): the
search keeps the networks the model underestimates. This replays the live job on every
latency table, the table standing in for the device: pretrain without the table's family
(as in ``benchmarks/transfer.py``, plus a family for nasloop's two measured CPU tables),
fit on the K informative cells, search (CIFAR-10 accuracy, default sampler, 100
evaluations) at the 25/50/75 % latency quantiles, check at most 5 finalists against the
table, and, where a policy refits, add the finalists that failed to the fitted cells.

Policies (:class:`nasloop.search.adaptive.AdaptiveConfig`): ``none`` (as before),
``refit`` (3 searches, no margin), ``mC`` (a cross-conformal margin at confidence C, one
search) and ``mC+refit``, none of them with the fallback; ``m0.5+refit+fallback`` (the live
mode's default) ships the most accurate measured cell under the budget when no finalist
meets it. A search that ships nothing is failed and counted, with the
regret of the least accurate feasible cell, as in the search benchmark.

    python benchmarks/live_margin.py --out benchmarks/results/live_margin.jsonl \
        --policies none,refit,m0.5+refit,m0.7+refit,m0.8+refit,m0.9+refit
    python benchmarks/live_margin.py --report benchmarks/results/live_margin.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # 2 shared cores: one BLAS thread
import numpy as np  # noqa: E402

from transfer import FAMILIES, connected_measured, pretrain_without  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

LIVE_FAMILIES = {**FAMILIES, "epyc_measured": ["measured_cpu_epyc_1t",
                                               "measured_cpu_epyc_1t_deployable"]}
POLICIES = {"none": (None, 1), "refit": (None, 3), "m0.8": (0.8, 1), "m0.9": (0.9, 1),
            "m0.95": (0.95, 1), "m0.5+refit": (0.5, 3), "m0.7+refit": (0.7, 3),
            "m0.8+refit": (0.8, 3), "m0.9+refit": (0.9, 3), "m0.95+refit": (0.95, 3),
            "m0.5+refit+select": (0.5, 3), "m0.5+refit+fallback": (0.5, 3)}
#: policies whose ``transfer`` gives way to an additive model by CV (``select=True``)
SELECT = {"m0.5+refit+select"}
#: policies that ship the most accurate measured cell under the budget when no finalist
#: meets it (``AdaptiveConfig.fallback``, the live mode's default since session 15); the
#: others ship nothing then, as the live mode did before
FALLBACK = {"m0.5+refit+fallback"}
QUANTILES = (0.25, 0.5, 0.75)


def run(out: Path, ks: tuple[int, ...], seeds: int, families: list[str],
        policies: list[str]) -> None:
    from nasloop.data import available_devices, load_accuracy, load_device
    from nasloop.predictors import create_predictor
    from nasloop.search import SearchConfig, TableOracle
    from nasloop.search.adaptive import AdaptiveConfig, adaptive_search
    from nasloop.space import arch_from_index
    from nasloop.transfer import informative_cells

    done = set()
    if out.is_file():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["device"], r["k"]))
    names = [d.name for d in available_devices()]
    tables = {n: load_device(n) for n in names}
    acc = load_accuracy()
    tmp = Path(tempfile.mkdtemp(prefix="nasloop-live-"))
    every = [arch_from_index(i) for i in range(15625)]
    for fam in families:
        members = [m for m in LIVE_FAMILIES[fam] if m in tables]
        if all((m, k) in done for m in members for k in ks):
            continue
        t0 = time.perf_counter()
        path, _, _ = pretrain_without(members, {n: tables[n].latency_ms for n in names}, tmp,
                                      fam)
        for dev in members:
            table = tables[dev]
            y_all = table.latency_ms
            cand = [every[i] for i in connected_measured(y_all)]
            for k in ks:
                if (dev, k) in done:
                    continue
                cells = informative_cells(k, cand, pretrained=path)
                y = table.lookup(cells)
                rows = []
                for q in QUANTILES:
                    budget = float(np.nanquantile(y_all, q))
                    for seed in range(seeds):
                        for pol in policies:
                            conf, rounds = POLICIES[pol]
                            res = adaptive_search(
                                create_predictor("transfer", pretrained=str(path),
                                                 select=pol in SELECT), cells, y,
                                table.lookup, budget, acc, SearchConfig(seed=seed),
                                AdaptiveConfig(confidence=conf, rounds=rounds,
                                               fallback=pol in FALLBACK),
                                validator=TableOracle(table), table=table)
                            b = res.best
                            rows.append({"policy": pol, "quantile": q, "budget_ms": budget,
                                         "seed": seed, "failed": res.failed,
                                         "fallback": res.fallback,
                                         "regret": res.regret, "margin": res.margin,
                                         "rounds": res.rounds,
                                         "cells_measured": res.cells_measured,
                                         "true_checks": res.true_checks,
                                         "accuracy_evaluations": res.accuracy_evaluations,
                                         "slack": None if b is None else
                                         1 - b.true_latency_ms / budget})
                with out.open("a") as f:
                    f.write(json.dumps({"family": fam, "device": dev, "k": k,
                                        "runs": rows}) + "\n")
            print(f"{fam}/{dev} done ({time.perf_counter() - t0:.0f} s)", flush=True)


def report(path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    recs = [json.loads(x) for x in path.read_text().splitlines()]
    for k in sorted({r["k"] for r in recs}):
        runs = [(r["device"], x) for r in recs if r["k"] == k for x in r["runs"]]
        devices = sorted({d for d, _ in runs})
        t = Table(title=f"live job replayed on {len(devices)} tables, K={k} informative cells "
                        f"({len(runs) // len({x['policy'] for _, x in runs})} searches per policy)")
        for c in ("policy", "failed %", "tables with a failure", "fallbacks %", "mean regret",
                  "median slack %",
                  "cells fitted", "true checks", "accuracy evals"):
            t.add_column(c, justify="right" if c != "policy" else "left")
        for pol in POLICIES:
            xs = [(d, x) for d, x in runs if x["policy"] == pol]
            if not xs:
                continue
            fails = [x["failed"] for _, x in xs]
            bad = len({d for d, x in xs if x["failed"]})
            slack = [x["slack"] for _, x in xs if x["slack"] is not None]
            t.add_row(pol, f"{100 * np.mean(fails):.1f}", f"{bad}/{len(devices)}",
                      f"{100 * np.mean([x.get('fallback', False) for _, x in xs]):.1f}",
                      f"{np.mean([x['regret'] for _, x in xs]):.3f}",
                      f"{100 * np.median(slack):.1f}" if slack else "-",
                      f"{np.mean([x['cells_measured'] for _, x in xs]):.1f}",
                      f"{np.mean([x['true_checks'] for _, x in xs]):.2f}",
                      f"{np.mean([x['accuracy_evaluations'] for _, x in xs]):.0f}")
        Console().print(t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--report", type=Path, default=None)
    ap.add_argument("--k", default="30")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--families", default=",".join(LIVE_FAMILIES))
    a = ap.parse_args()
    if a.out:
        run(a.out, tuple(int(k) for k in a.k.split(",")), a.seeds, a.families.split(","),
            a.policies.split(","))
    if a.report or a.out:
        report(a.report or a.out)


if __name__ == "__main__":
    main()
