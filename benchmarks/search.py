"""What a search costs and what it finds: regret after N accuracy evaluations (issue #11).

For each device, oracle, sampler and confidence: budgets at the 25/50/75 % latency
quantiles, ``--seeds`` seeds each, ``--trials`` accuracy evaluations per search. Reports
mean regret (a failed search counts as the optimum minus the least accurate feasible
cell), the floor a one-evaluation-per-network search can reach, true-latency checks per
search, over-budget answers, failed searches and the share of checked finalists truly
within budget. One JSON line per search goes to ``--out``; ``--report FILES`` prints the
tables again and plots mean regret against accuracy evaluations.

    python benchmarks/search.py --devices desktop_cpu,desktop_gpu,mobile_dsp,help_silver_4210r,help_1080ti_bs1,help_pixel3 \\
        --oracles auto --samplers guided --seeds 10 --trials 100 --confidence none,0.95 \\
        --out benchmarks/results/search_auto.jsonl

Each predictor oracle is fitted once per device (900 cells, 100 validation cells, split
seed 0, cached on disk like the CLI's) and shared by every search on that device; the
fit time is printed and not included in s/search.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from rich.table import Table

from nasloop.config import predictor_params
from nasloop.console import err, out, progress
from nasloop.data import load_accuracy, load_device
from nasloop.search import SearchConfig, get_oracle, run_search
from nasloop.space import Arch, arch_index

CHECKPOINTS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 150, 200, 300)


def regret_curve(res, table, acc: np.ndarray, budget: float, upto: int) -> dict[int, float]:
    """Regret of the best evaluated network that truly meets the budget, after n evaluations."""
    opt, worst = res.optimum["accuracy"], res.optimum["worst_accuracy"]
    best, curve = -math.inf, {}
    marks = [n for n in CHECKPOINTS if n <= upto]
    for n, h in enumerate(res.history, start=1):
        i = arch_index(Arch.parse(h["arch"]))
        if table.latency_ms[i] <= budget:
            best = max(best, float(acc[i]))
        if n in marks:
            curve[n] = opt - (best if best > -math.inf else worst)
    return curve


def summarise(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["device"], r["oracle"], r["sampler"], r["confidence"])].append(r)
    out_rows = []
    for (dev, orc, smp, conf), rs in groups.items():
        checked = sum(r["true_checks"] for r in rs)
        passed = sum(r["finalists_within_budget"] for r in rs)
        out_rows.append({
            "device": dev, "oracle": orc, "sampler": smp, "confidence": conf, "searches": len(rs),
            "mean_regret": float(np.mean([r["regret"] for r in rs])),
            "mean_floor": float(np.mean([r["floor"] for r in rs])),
            "mean_evaluations": float(np.mean([r["accuracy_evaluations"] for r in rs])),
            "mean_true_checks": float(np.mean([r["true_checks"] for r in rs])),
            "max_true_checks": int(max(r["true_checks"] for r in rs)),
            "over_budget": int(sum(r["over_budget"] for r in rs)),
            "failed": int(sum(r["failed"] for r in rs)),
            "finalists_within_budget": passed / checked if checked else float("nan"),
            "s_per_search": float(np.mean([r["seconds"] for r in rs])),
        })
    return out_rows


def table_of(summary: list[dict], title: str) -> Table:
    t = Table(title=title)
    cols = ["device", "oracle", "sampler", "conf.", "searches", "mean regret", "floor",
            "true checks (mean/max)", "over budget", "failed", "finalists within budget",
            "s/search"]
    for c in cols:
        t.add_column(c, justify="left" if c in ("device", "oracle", "sampler") else "right")
    for s in summary:
        t.add_row(s["device"], s["oracle"], s["sampler"], str(s["confidence"] or "-"),
                  str(s["searches"]), f"{s['mean_regret']:.3f}", f"{s['mean_floor']:.3f}",
                  f"{s['mean_true_checks']:.2f} / {s['max_true_checks']}", str(s["over_budget"]),
                  str(s["failed"]), f"{s['finalists_within_budget']:.3f}",
                  f"{s['s_per_search']:.2f}")
    return t


def markdown(summary: list[dict]) -> str:
    lines = ["| device | oracle | sampler | confidence | searches | mean regret (pts) | floor (pts) "
             "| true checks mean / max | over-budget answers | failed | finalists within budget "
             "| s/search |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['device']} | {s['oracle']} | {s['sampler']} | {s['confidence'] or '-'} "
                     f"| {s['searches']} | {s['mean_regret']:.3f} | {s['mean_floor']:.3f} | "
                     f"{s['mean_true_checks']:.2f} / {s['max_true_checks']} | {s['over_budget']} | "
                     f"{s['failed']} | {s['finalists_within_budget']:.3f} | {s['s_per_search']:.2f} |")
    return "\n".join(lines)


def overall(summary: list[dict]) -> list[dict]:
    """One row per (oracle, sampler, confidence) over every device."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for s in summary:
        groups[(s["oracle"], s["sampler"], s["confidence"])].append(s)
    rows = []
    for (orc, smp, conf), ss in groups.items():
        n = sum(s["searches"] for s in ss)
        w = lambda k: sum(s[k] * s["searches"] for s in ss) / n  # noqa: E731
        rows.append({"device": "ALL", "oracle": orc, "sampler": smp, "confidence": conf,
                     "searches": n, "mean_regret": w("mean_regret"), "mean_floor": w("mean_floor"),
                     "mean_evaluations": w("mean_evaluations"),
                     "mean_true_checks": w("mean_true_checks"),
                     "max_true_checks": max(s["max_true_checks"] for s in ss),
                     "over_budget": sum(s["over_budget"] for s in ss),
                     "failed": sum(s["failed"] for s in ss),
                     "finalists_within_budget": w("finalists_within_budget"),
                     "s_per_search": w("s_per_search")})
    return rows


def plot_curves(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["oracle"], r["sampler"], r["confidence"])].append(r)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for (orc, smp, conf), rs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        marks = sorted({int(n) for r in rs for n in r["curve"]})
        ys = [np.mean([r["curve"][str(n)] for r in rs if str(n) in r["curve"]]) for n in marks]
        ax.plot(marks, ys, marker="o", ms=3,
                label=f"{smp}, {orc} oracle" + (f", conf {conf}" if conf else ""))
    ax.axhline(0.1, color="grey", ls=":", label="target 0.1")
    ax.set_xlabel("accuracy evaluations")
    ax.set_ylabel("mean regret (CIFAR-10 test acc. points)")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_title("best truly-feasible network evaluated so far vs. the optimum")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def report(rows: list[dict], as_json: bool, plot: Path | None) -> None:
    summary = summarise(rows)
    summary += overall(summary)
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        out.print(table_of(summary, "search: regret after the accuracy evaluations, cost, validation"))
        print(markdown(summary))
    if plot is not None:
        plot_curves(rows, plot)
        err.print(f"wrote {plot}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", default="desktop_cpu,desktop_gpu,mobile_dsp,help_silver_4210r,"
                                          "help_1080ti_bs1,help_pixel3")
    ap.add_argument("--oracles", default="auto")
    ap.add_argument("--samplers", default="guided")
    ap.add_argument("--confidence", default="none",
                    help="Comma list of confidences (or 'none') for the oracle's margin.")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--quantiles", default="0.25,0.5,0.75")
    ap.add_argument("--data-dir", default=os.environ.get("NASLOOP_DATA"))
    ap.add_argument("--cache-dir", default=None, help="Where fitted oracles are cached.")
    ap.add_argument("--out", default=None, help="JSONL file, one line per search (appended).")
    ap.add_argument("--report", nargs="+", default=None, help="Only summarise these JSONL files.")
    ap.add_argument("--plot", default=None, help="PNG: mean regret against accuracy evaluations.")
    ap.add_argument("--json", action="store_true", help="Print the summary as JSON.")
    a = ap.parse_args()
    plot = Path(a.plot) if a.plot else None
    if a.report:
        rows = [json.loads(line) for f in a.report for line in Path(f).read_text().splitlines()
                if line.strip()]
        report(rows, a.json, plot)
        return
    acc_table = load_accuracy(a.data_dir, required=True)
    acc = acc_table.accuracy["cifar10"]
    confs = [None if c.strip() == "none" else float(c) for c in a.confidence.split(",")]
    qs = [float(q) for q in a.quantiles.split(",")]
    devices, samplers = a.devices.split(","), a.samplers.split(",")
    oracles = a.oracles.split(",")
    total = len(devices) * len(oracles) * len(samplers) * len(confs) * len(qs) * a.seeds
    sink = open(a.out, "a") if a.out else None
    rows: list[dict] = []
    with progress() as bar:
        task = bar.add_task("searches", total=total, info="")
        for dev in devices:
            table = load_device(dev, a.data_dir)
            budgets = np.nanquantile(table.latency_ms, qs)
            for spec in oracles:
                params = predictor_params(spec) if spec != "true" else {}
                t0 = time.perf_counter()
                oracle = get_oracle(spec, table, seed=0, params=params, cache_dir=a.cache_dir)
                oracle.latency_all()  # predicted once, shared by every search below
                err.print(f"{dev} {spec}: oracle ready in {time.perf_counter() - t0:.1f} s")
                for sampler in samplers:
                    for conf in confs:
                        for q, b in zip(qs, budgets):
                            for seed in range(a.seeds):
                                cfg = SearchConfig(trials=a.trials, sampler=sampler, seed=seed,
                                                   top=a.top, confidence=conf)
                                t0 = time.perf_counter()
                                r = run_search(table, float(b), oracle, acc_table, cfg)
                                secs = time.perf_counter() - t0
                                row = {"device": dev, "oracle": spec, "sampler": sampler,
                                       "confidence": conf, "quantile": q, "budget_ms": float(b),
                                       "seed": seed, "trials": a.trials,
                                       "regret": r.regret, "failed": r.failed,
                                       "floor": r.optimum["accuracy"] - (r.optimum["reachable_accuracy"]
                                                                          or r.optimum["worst_accuracy"]),
                                       "accuracy_evaluations": r.accuracy_evaluations,
                                       "oracle_calls": r.oracle_calls, "true_checks": r.true_checks,
                                       "finalists_within_budget": sum(bool(c.feasible_true)
                                                                      for c in r.finalists),
                                       "over_budget": int(r.best is not None
                                                          and r.best.true_latency_ms > b),
                                       "margin": r.margin, "feasible_networks": r.feasible_networks,
                                       "best": r.best.arch if r.best else None, "seconds": secs,
                                       "curve": {str(k): v for k, v in regret_curve(
                                           r, table, acc, float(b), a.trials).items()}}
                                rows.append(row)
                                if sink:
                                    sink.write(json.dumps(row) + "\n")
                                    sink.flush()
                                bar.update(task, advance=1, info=f"{dev} {sampler} q{q} s{seed}")
    if sink:
        sink.close()
    report(rows, a.json, plot)


if __name__ == "__main__":
    sys.exit(main())
