"""Presenting a :class:`SearchResult`: a rich table, and files for ``--out``."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from rich.table import Table

from ..console import _clean, fmt
from ..data.accuracy import DATASETS
from ..units import format_ms
from .study import Candidate, SearchResult


def _score_label(res: SearchResult) -> str:
    """``CIFAR-10 test acc (%)`` for an accuracy table; the proxy's name (``synflow``) otherwise."""
    names = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet16": "ImageNet16-120"}
    return f"{names[res.objective]} test acc (%)" if res.objective in DATASETS else res.objective


def cost_line(res: SearchResult) -> str:
    """The three costs of a search, in words."""
    refits = (f", {res.rounds} searches (the oracle refitted on the finalists that failed)"
              if res.rounds and res.rounds > 1 else "")
    return (f"cost: {res.accuracy_evaluations} accuracy evaluation(s), {res.oracle_calls:,} "
            f"latency-oracle answers, {res.true_checks} true-latency check(s){refits}")


def result_table(res: SearchResult) -> Table:
    """The finalists, most accurate first, and the optimum; several targets get a latency
    column per device (true and predicted ms) instead of one pair of columns."""
    several = res.unit == "load"
    if several:
        margin = f", {res.confidence:g}-confidence margins" if res.confidence is not None else ""
        title = (f"{len(res.targets)} targets: oracle {res.oracle}{margin}, sampler "
                 f"{res.sampler}, {res.feasible_networks:,} networks feasible on all")
        heads = [f"{tg['device']} <= {format_ms(tg['budget_ms'])}\ntrue (predicted)"
                 for tg in res.targets]
    else:
        margin = (f", {res.confidence:g}-confidence margin x{res.margin:.3f}"
                  if res.confidence is not None else "")
        title = (f"{res.device}: budget {format_ms(res.budget_ms)}, oracle {res.oracle}{margin}, "
                 f"sampler {res.sampler}, {res.feasible_networks:,} feasible "
                 + ("network" if res.feasible_networks == 1 else "networks"))
        heads = ["predicted ms", "true ms"]
    caption = f"objective: {res.objective_description}\n{cost_line(res)}"
    if res.failed:
        caption += ("\nFAILED: no finalist truly meets "
                    + ("every budget" if several else "the budget"))
    fallback = (res.fallback and res.best is not None
                and all(c.arch != res.best.arch for c in res.finalists))
    if fallback:
        caption += ("\nno finalist met the budget: the answer (★) is the most accurate cell "
                    "timed to fit the oracle under it, not a good network")
    t = Table(title=title, caption=caption)
    t.add_column("")
    t.add_column("arch", overflow="fold")  # the answer and the verdict are never cut
    t.add_column(_score_label(res), justify="right")
    for h in heads:
        t.add_column(h, justify="right")
    t.add_column("verdict", overflow="fold")
    for c in res.finalists:
        chosen = res.best is not None and c.arch == res.best.arch
        t.add_row("★" if chosen else "", c.arch, fmt(c.accuracy, 2), *_latencies(c, several),
                  _verdict(c, several))
    if fallback:
        t.add_row("★", res.best.arch, fmt(res.best.accuracy, 2), *_latencies(res.best, several),
                  "fallback: a timed cell, meets budget")
    if res.optimum:
        label = f"regret {res.regret:.2f}" if res.regret is not None else ""
        if res.failed and res.regret is not None:
            label += " (failed: scored as the worst feasible cell)"
        lat = ([fmt(r["true_ms"]) for r in res.optimum.get("per_device", [])] if several
               else ["", fmt(res.optimum["true_latency_ms"])])
        t.add_row("opt", res.optimum["arch"], fmt(res.optimum["accuracy"], 2), *lat, label)
    return t


def front_table(res: SearchResult) -> Table | None:
    """``--mode pareto``: the accuracy / predicted-latency front the study found, fastest
    first (None in the constrained mode or when the front is empty)."""
    if not res.pareto_front:
        return None
    load = res.unit == "load"  # several targets: the largest share of a budget
    t = Table(title=f"Pareto front: {len(res.pareto_front)} network(s) no other beats on "
                    f"both {_score_label(res)} and "
                    f"{'predicted load' if load else 'predicted latency'}")
    t.add_column("arch", overflow="fold")
    t.add_column(_score_label(res), justify="right")
    t.add_column("predicted load" if load else "predicted ms", justify="right")
    for r in res.pareto_front:
        t.add_row(r["arch"], fmt(r["accuracy"], 2), fmt(r["predicted_latency_ms"]))
    return t


def _latencies(c: Candidate, several: bool) -> list[str]:
    if several:
        return [f"{fmt(r['true_ms'])} ({fmt(r['predicted_ms'])})" for r in c.per_device]
    return [fmt(c.predicted_latency_ms), fmt(c.true_latency_ms)]


def _verdict(c: Candidate, several: bool) -> str:
    if several:
        over = [r["device"] for r in c.per_device if r["meets_budget"] is False]
        unknown = [r["device"] for r in c.per_device if r["meets_budget"] is None]
        return ("over on " + ", ".join(over) if over else
                "not verified on " + ", ".join(unknown) if unknown else "meets every budget")
    if c.true_latency_ms is None:  # absent from the table: neither true nor false
        return "not verified (absent from the table)"
    return "false positive" if c.false_positive else "meets budget"


#: the files :func:`write_outputs` writes (``search --out`` refuses to overwrite them unasked)
OUTPUT_FILES = ("trials.csv", "summary.json", "search.png")


def write_outputs(res: SearchResult, folder: str | Path) -> None:
    """trials.csv, summary.json and search.png (accuracy vs latency, budget, front, choice)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "trials.csv", "w", newline="") as f:
        # several targets: the oracle's answer is a load (largest latency/budget), say so
        col = "predicted_latency_ms" if res.unit == "ms" else "predicted_load"
        w = csv.DictWriter(f, fieldnames=["number", "arch", "accuracy", col])
        w.writeheader()
        w.writerows({**{k: v for k, v in h.items() if k != "predicted_latency_ms"},
                     col: h["predicted_latency_ms"]} for h in res.history)
    (folder / "summary.json").write_text(json.dumps(_clean(res.to_dict()), indent=2))
    plot_search(res, folder / "search.png")


def plot_search(res: SearchResult, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(h["predicted_latency_ms"], h["accuracy"]) for h in res.history
           if h["predicted_latency_ms"] is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    if pts:
        xs, ys = zip(*pts)
        ax.scatter(xs, ys, s=8, alpha=0.35, label="evaluated networks (oracle answer)")
    # feasible front: best accuracy so far as latency grows, among oracle-feasible trials
    feas = sorted(p for p in pts if p[0] <= res.budget_ms)
    front, best = [], -1.0
    for x, y in feas:
        if y > best:
            front.append((x, y))
            best = y
    if front:
        fx, fy = zip(*front)
        ax.step(fx, fy, where="post", color="tab:green", label="feasible front")
    load = res.unit == "load"
    ax.axvline(res.budget_ms, color="tab:red", ls="--",
               label="every budget" if load else f"budget {format_ms(res.budget_ms)}")
    if res.best is not None:
        ax.scatter([res.best.true_latency_ms], [res.best.accuracy], marker="*", s=220,
                   color="gold", edgecolor="k", zorder=5, label="chosen (true latency)")
    ax.set_xlabel("largest latency / budget over the targets" if load else "latency (ms)")
    ax.set_ylabel(_score_label(res))
    ax.set_title(f"{res.device}: {res.oracle} oracle, {res.sampler}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
