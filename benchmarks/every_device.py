"""Every registered predictor on every latency table: the "every device" benchmark.

Runs :func:`nasloop.evaluation.evaluate_predictors` (the one protocol) for each device x
backend, streams each summary to a JSON-lines file as soon as it is done (a re-run skips
what the file already holds, so an interrupted run loses nothing), and prints a markdown
table: mean ± std (ddof=1) of acc_1/5/10 and Spearman, the best acc_10 and the best
Spearman per device in bold, failed runs counted.

    python benchmarks/every_device.py --predictors linear,layerwise,xgboost,flops --seeds 5 \
        --out benchmarks/results/every_device_random.jsonl
    python benchmarks/every_device.py --predictors auto,gcn_plus --seeds 3 --split grouped \
        --out benchmarks/results/every_device_grouped.jsonl
    python benchmarks/every_device.py --report benchmarks/results/every_device_random.jsonl
"""
from __future__ import annotations

import argparse
import json
import math
import os
from collections import defaultdict
from pathlib import Path

from nasloop.config import parse_sets
from nasloop.data import available_devices, load_device
from nasloop.evaluation import Protocol, evaluate_predictors
from nasloop.predictors import list_predictors

METRICS = ("acc_1", "acc_5", "acc_10", "spearman")


def _key(r: dict) -> tuple:
    return (r["device"], r.get("label", r["predictor"]), r["protocol"]["split"])


def _run_key(r: dict) -> tuple:
    return _key(r) + (tuple(r["protocol"]["split_seeds"]),)


def merge_seeds(results: list[dict]) -> list[dict]:
    """One row per (device, label, split): rows run with other seeds (``--seed-from``) join.

    Runs are concatenated (a (split seed, model seed) pair counts once: the first file
    listed wins, so list a re-run with changed code before the files it replaces) and summarised
    again the one way every evaluation is (``Evaluation.summary``: mean, std with ddof=1,
    failures), so a table never averages averages.
    """
    from nasloop.evaluation import Evaluation, Protocol

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        groups[_key(r)].append(r)
    out = []
    for rows in groups.values():
        if len(rows) == 1 or not all(r.get("runs") for r in rows):
            out.extend(rows)
            continue
        runs, seen = [], set()
        for r in rows:
            for run in r["runs"]:
                k = (run["split_seed"], run["model_seed"])
                if k not in seen:
                    seen.add(k)
                    runs.append(run)
        first, p = rows[0], rows[0]["protocol"]
        protocol = Protocol(p["train"], p["val"], p["split"],
                            tuple(sorted({run["split_seed"] for run in runs})),
                            None if p.get("model_seeds") is None else tuple(p["model_seeds"]))
        ev = Evaluation(first["device"], first["predictor"], first.get("params", {}), protocol,
                        runs)
        out.append({**first, **ev.summary()})
    return out


def load_results(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _stats(values: list[float]) -> tuple[float, float]:
    a = [float(v) for v in values]
    mean = sum(a) / len(a)
    std = math.sqrt(sum((v - mean) ** 2 for v in a) / (len(a) - 1)) if len(a) > 1 else math.nan
    return mean, std


def expand_candidates(results: list[dict]) -> list[dict]:
    """Rows for the candidates ``auto`` fitted, scored on the same test cells.

    Inside ``auto`` the GCNs train on 90 % of the training cells and early-stop on the
    other 10 % (the validation cells stay unseen for the choice); the other backends are
    fitted exactly as standalone. A candidate that failed scores 0, as everywhere.
    """
    out = []
    for r in results:
        runs = r.get("runs", [])
        labels = sorted({k for run in runs for k in run.get("candidates", {})})
        for label in labels:
            vals = [run.get("candidates", {}).get(label, FAILED) for run in runs]
            mean, std = {}, {}
            for k in METRICS:
                mean[k], std[k] = _stats([v.get(k, 0.0) for v in vals])
            out.append({"device": r["device"], "predictor": label, "label": f"{label} (in auto)",
                        "protocol": r["protocol"], "n_runs": len(runs),
                        "failures": sum(1 for v in vals if v is FAILED), "mean": mean, "std": std})
    return out


FAILED = {k: 0.0 for k in METRICS}


def _on_seeds(row: dict, seeds: set[int]) -> dict:
    """``row``'s mean over the runs with these split seeds, where it has them all; else its
    mean over every run (a row recorded without its runs)."""
    runs = [r for r in row.get("runs", []) if r.get("split_seed") in seeds]
    if not seeds or {r["split_seed"] for r in runs} != seeds:
        return row["mean"]
    return {k: _stats([r.get(k, 0.0) for r in runs])[0] for k in METRICS}


def check_auto(results: list[dict]) -> str:
    """Per device: auto against the best single backend (the issue's done-when), every row
    averaged over the split seeds auto was run on, so one lucky or unlucky split is not
    set against five (a row without those seeds counts with all of its own)."""
    by_dev: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in results:
        by_dev[r["device"]][r.get("label", r["predictor"])] = r
    lines = ["| device | split seeds | auto acc_10 | best other acc_10 (who) | Δ | auto Spearman | best other Spearman (who) | Δ | within 1 pt / 0.005 |",
             "|---|---|---|---|---|---|---|---|---|"]
    ok_all = 0
    for dev in sorted(by_dev):
        rows = by_dev[dev]
        if "auto" not in rows:
            continue
        auto = rows["auto"]["mean"]
        seeds = {r["split_seed"] for r in rows["auto"].get("runs", []) if "split_seed" in r}
        others = {k: _on_seeds(v, seeds) for k, v in rows.items() if k != "auto"}
        if not others:
            continue
        b10 = max(others, key=lambda k: others[k]["acc_10"])
        bsp = max(others, key=lambda k: others[k]["spearman"])
        d10 = auto["acc_10"] - others[b10]["acc_10"]
        dsp = auto["spearman"] - others[bsp]["spearman"]
        ok = d10 >= -1.0 and dsp >= -0.005
        ok_all += ok
        lines.append(f"| {dev} | {','.join(map(str, sorted(seeds))) or '—'} | {auto['acc_10']:.1f} | "
                     f"{others[b10]['acc_10']:.1f} ({b10}) | "
                     f"{d10:+.1f} | {auto['spearman']:.3f} | {others[bsp]['spearman']:.3f} ({bsp}) | "
                     f"{dsp:+.3f} | {'yes' if ok else '**no**'} |")
    lines.append(f"\n{ok_all} of {len(lines) - 2} devices within 1 point and 0.005 of the best other row"
                 " (on auto's split seeds).")
    return "\n".join(lines)


def choices(results: list[dict]) -> str:
    """What auto chose on each device, run by run (the choice is made on validation cells)."""
    lines = ["| device | runs | chosen (weights) per run |", "|---|---|---|"]
    for r in sorted(results, key=lambda r: r["device"]):
        if r["predictor"] != "auto" or "runs" not in r:
            continue
        picks = []
        for run in r["runs"]:
            c = run.get("choice")
            if not c:
                picks.append("failed")
                continue
            picks.append(" + ".join(f"{m} {w:.2f}" if len(c["chosen"]) > 1 else m
                                    for m, w in zip(c["chosen"], c["weights"]))
                         + (f", band {c['band']:g}" if c.get("band") is not None else "")
                         + (", transfer {seen:g} seen / {unseen:g} unseen".format(**c["kinds"])
                            if c.get("kinds") else "")
                         + (f", refit dropped: {', '.join(c['refit_dropped'])}"
                            if c.get("refit_dropped") else ""))
        lines.append(f"| {r['device']} | {len(r['runs'])} | {'; '.join(picks)} |")
    return "\n".join(lines)


COMPACT = ("auto", "gcn_plus (in auto)", "gcn_residual (in auto)", "gcn_gated (in auto)",
           "transfer", "xgboost", "linear", "layerwise", "flops")


def compact(results: list[dict]) -> str:
    """One row per device: acc_10 and Spearman of each backend, the best in bold."""
    by_dev: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in results:
        by_dev[r["device"]][r.get("label", r["predictor"])] = r
    cols = [c for c in COMPACT if any(c in rows for rows in by_dev.values())]
    lines = ["| device | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for dev in sorted(by_dev):
        rows = by_dev[dev]
        b10 = max(r["mean"]["acc_10"] for r in rows.values())
        bsp = max(r["mean"]["spearman"] for r in rows.values())
        cells = []
        for c in cols:
            if c not in rows:
                cells.append("—")
                continue
            m = rows[c]["mean"]
            a = f"{m['acc_10']:.1f}"
            sp = f"{m['spearman']:.3f}"
            cells.append(f"{'**' + a + '**' if m['acc_10'] == b10 else a} / "
                         f"{'**' + sp + '**' if m['spearman'] == bsp else sp}")
        lines.append(f"| {dev} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(results: list[dict]) -> str:
    """Markdown table, one row per (device, predictor); best acc_10 and Spearman in bold."""
    by_dev: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        by_dev[r["device"]].append(r)
    lines = ["| device | predictor | split | runs | acc_1 | acc_5 | acc_10 | spearman | fit s | failed |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for dev in sorted(by_dev):
        rows = by_dev[dev]
        best = {k: max(r["mean"][k] for r in rows) for k in ("acc_10", "spearman")}
        for r in sorted(rows, key=lambda r: -r["mean"]["acc_10"]):
            cells = []
            for k in METRICS:
                nd = 3 if k == "spearman" else 1
                m, s = r["mean"][k], r["std"].get(k, math.nan)
                txt = f"{m:.{nd}f}" + ("" if s != s else f" ± {s:.{nd}f}")
                if k in best and m == best[k]:
                    txt = f"**{txt}**"
                cells.append(txt)
            fit = r["mean"].get("fit_seconds", math.nan)
            fit_txt = "—" if fit != fit else f"{fit:.1f}"
            lines.append(f"| {dev} | {r.get('label', r['predictor'])} | {r['protocol']['split']} | "
                         f"{r['n_runs']} | " + " | ".join(cells) + f" | {fit_txt} | {r['failures']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="all", help="comma-separated names, or 'all'")
    ap.add_argument("--predictors", default="all", help="comma-separated names, or 'all'")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--seed-from", type=int, default=0,
                    help="first split (= model) seed: add seeds to rows run before, e.g. "
                         "--seed-from 1 --seeds 2; --report merges the rows")
    ap.add_argument("--split", default="random", choices=("random", "grouped"))
    ap.add_argument("--train", type=int, default=900)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--label", default=None, help="name the rows (e.g. a variant with --set)")
    ap.add_argument("--out", type=Path, default=None, help="JSON-lines file of summaries")
    ap.add_argument("--report", type=Path, nargs="+", default=None,
                    help="only render these results files (with auto's candidates and the check)")
    ap.add_argument("--data-dir", default=os.environ.get("NASLOOP_DATA"))
    a = ap.parse_args()
    if a.report:
        results = merge_seeds([r for path in a.report for r in load_results(path)
                               if r["protocol"]["split"] == a.split])
        results += expand_candidates(results)
        print(compact(results))
        print()
        print(render(results))
        print()
        print(check_auto(results))
        print()
        print(choices(results))
        return
    devices = ([d.name for d in available_devices(a.data_dir)] if a.devices == "all"
               else a.devices.split(","))
    names = list_predictors() if a.predictors == "all" else a.predictors.split(",")
    seeds = tuple(range(a.seed_from, a.seed_from + a.seeds))
    protocol = Protocol(a.train, 100, a.split, seeds)
    done = {_run_key(r) for r in load_results(a.out)} if a.out else set()
    overrides = parse_sets(a.sets)
    results = load_results(a.out) if a.out else []

    def keep(summary: dict) -> None:
        summary["label"] = a.label or summary["predictor"]
        summary["overrides"] = overrides
        results.append(summary)
        if a.out:
            a.out.parent.mkdir(parents=True, exist_ok=True)
            with a.out.open("a") as f:
                f.write(json.dumps(summary) + "\n")
        m = summary["mean"]
        print(f"{summary['device']:28s} {summary['label']:14s} {m['acc_1']:5.1f} {m['acc_5']:5.1f} "
              f"{m['acc_10']:5.1f} {m['spearman']:.4f} failed {summary['failures']}", flush=True)

    for dev in devices:
        table = load_device(dev, a.data_dir)
        todo = [n for n in names if (table.name, a.label or n, a.split, seeds) not in done]
        if todo:
            evaluate_predictors([table], todo, protocol, overrides=overrides, on_result=keep)
    print(render(merge_seeds([r for r in results if r["protocol"]["split"] == a.split])))


if __name__ == "__main__":
    main()
