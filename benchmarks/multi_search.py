"""One network for several devices: what a joint search finds and what it costs (issue #11).

For each pair of devices and each oracle: budgets at the same latency quantile of each
device (25/50/75 %), ``--seeds`` seeds, ``--trials`` accuracy evaluations. Reports mean
regret against the best cell meeting both budgets (a failed search counts as the optimum
minus the least accurate such cell), failed searches, over-budget answers on either
device, true-latency reads (finalists x devices) and the feasible networks.

    python benchmarks/multi_search.py --pairs desktop_cpu:desktop_gpu,desktop_gpu:mobile_dsp,help_silver_4210r:mobile_dsp \\
        --oracles true,linear --seeds 5 --trials 100 --out benchmarks/results/multi_search.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict

import numpy as np
from rich.table import Table

from nasloop.console import err, out, progress
from nasloop.data import load_accuracy, load_device
from nasloop.errors import ConfigError
from nasloop.search import SearchConfig, Target, get_oracle, run_multi_search


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", default="desktop_cpu:desktop_gpu")
    ap.add_argument("--oracles", default="true")
    ap.add_argument("--quantiles", default="25,50,75")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--data-dir", default=os.environ.get("NASLOOP_DATA"))
    ap.add_argument("--out", default=None, help="JSON lines, one per search (appended)")
    a = ap.parse_args()
    acc = load_accuracy(a.data_dir)
    rows = []
    pairs = [p.split(":") for p in a.pairs.split(",")]
    qs = [float(q) for q in a.quantiles.split(",")]
    oracles = a.oracles.split(",")
    total = len(pairs) * len(oracles) * len(qs) * a.seeds
    with progress() as bar:
        task = bar.add_task("joint searches", total=total, info="")
        for names in pairs:
            tables = [load_device(n, a.data_dir) for n in names]
            for oracle in oracles:
                fitted = [get_oracle(oracle, t, train=900, seed=0) for t in tables]
                for q in qs:
                    budgets = [float(np.nanpercentile(t.latency_ms, q)) for t in tables]
                    targets = [Target(t, b, o) for t, b, o in zip(tables, budgets, fitted)]
                    for seed in range(a.seeds):
                        try:
                            res = run_multi_search(targets, acc, SearchConfig(trials=a.trials,
                                                                              seed=seed))
                        except ConfigError as e:  # no cell meets both budgets: say so, go on
                            err.print(f"{'+'.join(names)} q{q:g}: {e}")
                            bar.update(task, advance=1)
                            continue
                        over = bool(res.best and not all(r["meets_budget"]
                                                         for r in res.best.per_device))
                        row = {"pair": "+".join(names), "oracle": oracle, "quantile": q,
                               "budgets_ms": budgets, "seed": seed, "regret": res.regret,
                               "failed": res.failed, "over_budget": over,
                               "true_checks": res.true_checks,
                               "evaluations": res.accuracy_evaluations,
                               "feasible_networks": res.feasible_networks,
                               "best": res.best.arch if res.best else None}
                        rows.append(row)
                        if a.out:
                            with open(a.out, "a") as f:
                                f.write(json.dumps(row) + "\n")
                        bar.update(task, advance=1, info=f"{row['pair']} {oracle} q{q:g}")
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["pair"], r["oracle"])].append(r)
    t = Table(title=f"joint search, {a.trials} accuracy evaluations, budgets at the "
                    f"{a.quantiles} % quantiles of each device, {a.seeds} seeds")
    for c in ("devices", "oracle", "searches", "mean regret", "failed", "over budget",
              "true reads / search", "feasible networks"):
        t.add_column(c, justify="left" if c in ("devices", "oracle") else "right",
                     overflow="fold")
    for (pair, oracle), rs in groups.items():
        t.add_row(pair, oracle, str(len(rs)), f"{np.mean([r['regret'] for r in rs]):.3f}",
                  str(sum(r["failed"] for r in rs)), str(sum(r["over_budget"] for r in rs)),
                  f"{np.mean([r['true_checks'] for r in rs]):.1f}",
                  f"{np.mean([r['feasible_networks'] for r in rs]):.0f}")
    out.print(t)
    err.print("regret: optimum (best cell meeting both budgets) minus the answer; a failed "
              "search counts as optimum minus the least accurate such cell")


if __name__ == "__main__":
    main()
