"""Few-shot latency transfer, leave one device family out (issue #13).

For each family of the 27 public tables (every table of one chip: defined here, and only
here: the predictor never sees a name), pretrain the ``transfer`` model on every other
table plus nasloop's measured ones, then on each table of the family fit on K cells and
test on all its other measured cells. Beside it, from the same K cells:

* ``ridge_tables``: ridge regression of the target's log latency on the same cells' log
  latencies in the pretraining tables (missing entries filled by the pretraining
  completion), alpha by leave-one-out CV: the baseline to beat;
* ``linear`` / ``layerwise`` / ``xgboost`` fitted from scratch (``auto`` itself fits GCNs
  and is too slow for 27 x 5 x 5 fits on this machine);
* ``auto`` on 900 cells (refitted), read from the stored
  ``benchmarks/results/auto_refit_*random*.jsonl`` (every seed run so far).

Cells: ``transfer`` uses the model's informative cells (deterministic: one run) and also
random cells (5 seeds); every other method uses the random cells. ``transfer_factors_*``
is ``transfer`` with ``table_weight=0`` (its factor model alone, without the ridge view);
``transfer_select_*`` is ``transfer`` with ``select=True`` (session 7: an additive model
replaces it where 10-fold CV on the K cells prefers one).

    python benchmarks/transfer.py --out benchmarks/results/transfer_lofo.jsonl
    python benchmarks/transfer.py --report benchmarks/results/transfer_lofo.jsonl \
        --png docs/figures/transfer_spearman.png
"""
from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # 2 shared cores: one BLAS thread
import numpy as np  # noqa: E402

FAMILIES: dict[str, list[str]] = {
    "gtx1080ti": ["desktop_gpu", "desktop_gpu_large", "help_1080ti_bs1", "help_1080ti_bs32",
                  "help_1080ti_bs256"],
    # Titan X (Pascal) and Titan Xp are both GP102 boards: one family, to be safe
    "titan": [f"help_titan{x}_bs{b}" for x in ("x", "xp") for b in (1, 32, 256)],
    "edgetpu": ["edgetpu", "edgetpu_large"],
    **{n: [n] for n in ("desktop_cpu", "jetson_nano", "mobile_cpu_a53", "mobile_cpu_kryo460",
                        "mobile_cpu_kryo485", "mobile_dsp_685", "mobile_dsp",
                        "mobile_gpu_adreno506", "mobile_gpu_adreno612", "mobile_gpu_adreno640",
                        "help_silver_4114", "help_silver_4210r", "help_pixel3", "help_fpga")},
}
#: tables nasloop measured late (the H100): never in any pretraining here (so the public
#: families' results stay comparable), and each a family of its own to hold out
#: (``--families h100_graph``): a device outside the data. The shipped model, rebuilt
#: since, does include them: a check against it must exclude them first
UNSEEN: dict[str, list[str]] = {"h100_graph": ["measured_gpu_h100_graph"]}
UNSEEN_TABLES = [n for fam in UNSEEN.values() for n in fam]
KS = (5, 10, 20, 50, 100)
METRICS = ("spearman", "kendall", "acc_5", "acc_10")
SCRATCH = ("linear", "layerwise", "xgboost")
RESULTS = Path(__file__).resolve().parent / "results"


def pretrain_without(members: list[str], lat: dict[str, np.ndarray], folder: Path,
                     label: str) -> tuple[Path, np.ndarray, list[str]]:
    """Pretrain ``transfer`` on every table in ``lat`` but ``members`` (one family held out)
    and the ``UNSEEN`` tables (never pretrained on here).

    Returns the saved model's path, the pretraining tables' log latencies (cells x tables)
    and their names. Every leave-one-family-out benchmark pretrains through here.
    """
    from nasloop.transfer.pretrain import DEFAULT_RANK, Pretrained, pretrain_factors, save_pretrained

    src = [n for n in lat if n not in members and n not in UNSEEN_TABLES]
    logl = np.stack([np.log(lat[n]) for n in src], axis=1)
    model = pretrain_factors(logl, rank=DEFAULT_RANK)
    path = save_pretrained(Pretrained(model, {"format": "nasloop-transfer/1",
                                              "sources": [{"name": n} for n in src],
                                              "excluded": [n for n in lat if n not in src]}),
                           folder / f"{label}.npz")
    return path, logl, src


def connected_measured(y: np.ndarray) -> np.ndarray:
    """Indices of the cells a table measured whose network is connected (the candidates)."""
    from nasloop.space import arch_from_index

    return np.array([i for i in np.flatnonzero(~np.isnan(y)) if arch_from_index(int(i)).is_connected()])


def few_shot_sets(k: int, cand_idx: np.ndarray, path: Path, draws: int = 3) -> list:
    """The K informative cells and ``draws`` seeded random draws, each as sorted indices."""
    from nasloop.space import arch_from_index, arch_index
    from nasloop.transfer import informative_cells

    cand = [arch_from_index(int(i)) for i in cand_idx]
    sets = [("inf", sorted(arch_index(a) for a in informative_cells(k, cand, pretrained=path)))]
    sets += [(f"rnd{s}", sorted(np.random.default_rng(s).choice(cand_idx, k, replace=False)))
             for s in range(draws)]
    return [(tag, np.array(idx)) for tag, idx in sets]


def few_shot_cases(ks: tuple[int, ...] = (20, 50), draws: int = 3,
                   families: list[str] | None = None):
    """Every (family, table, K, cell set) of a leave-one-family-out few-shot experiment
    (``families``: only these).

    Yields ``(family, device, k, tag, path, cells, y, test, y_test)``: the model pretrained
    without the family, the K fitted cells and their latencies, the test cells (every other
    measured cell) and theirs. The family's progress is printed after each table.
    """
    import tempfile

    from nasloop.data import available_devices, load_device
    from nasloop.space import arch_from_index

    names = [d.name for d in available_devices()]
    lat = {n: load_device(n).latency_ms for n in names}
    every = [arch_from_index(i) for i in range(15625)]
    tmp = Path(tempfile.mkdtemp())
    for fam, members in FAMILIES.items():
        if families is not None and fam not in families:
            continue
        path, _, _ = pretrain_without(members, lat, tmp, fam)
        for dev in members:
            y_all = lat[dev]
            meas = np.flatnonzero(~np.isnan(y_all))
            for k in ks:
                for tag, idx in few_shot_sets(k, connected_measured(y_all), path, draws):
                    test = np.setdiff1d(meas, idx)
                    yield (fam, dev, k, tag, path, [every[i] for i in idx], y_all[idx],
                           [every[i] for i in test], y_all[test])
            print(fam, dev, flush=True)


def _stats(v: list[float]) -> tuple[float, float]:
    a = np.asarray(v, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else math.nan


def _metrics(true_ms: np.ndarray, pred_ms: np.ndarray) -> dict:
    from nasloop.metrics import latency_metrics

    m = latency_metrics(true_ms, pred_ms)
    return {k: m[k] for k in METRICS}


def run(out: Path, ks: tuple[int, ...], seeds: int, scratch: tuple[str, ...],
        families: list[str]) -> None:
    import torch
    torch.set_num_threads(1)
    from sklearn.linear_model import RidgeCV

    from nasloop.data import available_devices, load_device
    from nasloop.predictors import create_predictor
    from nasloop.space import arch_from_index, arch_index
    from nasloop.transfer import informative_cells
    from nasloop.transfer.core import complete_log_matrix
    from nasloop.transfer.pretrain import DEFAULT_RANK

    done = set()
    if out.is_file():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["device"], r["method"], r["k"]))
    names = [d.name for d in available_devices()]
    lat = {n: load_device(n).latency_ms for n in names}
    public = [n for fam in FAMILIES.values() for n in fam]
    missing = sorted(set(public) - set(names))
    if missing:
        raise SystemExit(f"tables missing from the data directory: {', '.join(missing)}")
    tmp = Path(tempfile.mkdtemp(prefix="nasloop-transfer-"))
    every = [arch_from_index(i) for i in range(15625)]
    for fam in families:
        members = {**FAMILIES, **UNSEEN}[fam]
        t0 = time.perf_counter()
        path, logl, src = pretrain_without(members, lat, tmp, fam)
        filled = complete_log_matrix(logl, DEFAULT_RANK)
        print(f"{fam}: pretrained on {len(src)} tables in {time.perf_counter() - t0:.1f} s",
              flush=True)
        for dev in members:
            y = lat[dev]
            meas = np.flatnonzero(~np.isnan(y))
            cand_idx = connected_measured(y)
            cand = [every[i] for i in cand_idx]
            for k in ks:
                runs: dict[str, list[dict]] = {}
                draws = [np.random.default_rng(s).choice(cand_idx, k, replace=False)
                         for s in range(seeds)]
                chosen = informative_cells(k, cand, pretrained=path)
                inf = [np.array(sorted(arch_index(a) for a in chosen))]
                plan = [("transfer_informative", inf), ("transfer_random", draws),
                        ("transfer_factors_informative", inf), ("transfer_factors_random", draws),
                        ("transfer_select_informative", inf), ("transfer_select_random", draws),
                        ("ridge_tables", draws)]
                plan += [(s, draws) for s in scratch]
                for method, idx_list in plan:
                    if (dev, method, k) in done:
                        continue
                    for idx in idx_list:
                        test = np.setdiff1d(meas, idx)
                        t1 = time.perf_counter()
                        if method.startswith("transfer"):
                            alone = ({"table_weight": 0.0} if method.startswith("transfer_factors")
                                     else {"select": True} if method.startswith("transfer_select")
                                     else {})
                            p = create_predictor("transfer", pretrained=str(path), **alone)
                            p.fit([every[i] for i in idx], y[idx])
                            pred = p.predict([every[i] for i in test])
                        elif method == "ridge_tables":
                            r = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(filled[idx], np.log(y[idx]))
                            pred = np.exp(r.predict(filled[test]))
                        else:
                            # auto from scratch: no transfer candidate (its shipped model
                            # has seen the held-out family)
                            p = create_predictor(method, **({"seed": 0} if method == "xgboost"
                                                            else {"transfer_below": 0}
                                                            if method == "auto" else {}))
                            p.fit([every[i] for i in idx], y[idx])
                            pred = p.predict([every[i] for i in test])
                        m = _metrics(y[test], pred)
                        m["fit_seconds"] = time.perf_counter() - t1
                        runs.setdefault(method, []).append(m)
                with out.open("a") as f:
                    for method, rs in runs.items():
                        mean, std = {}, {}
                        for key in (*METRICS, "fit_seconds"):
                            mean[key], std[key] = _stats([r[key] for r in rs])
                        f.write(json.dumps({"family": fam, "device": dev, "method": method, "k": k,
                                            "n_runs": len(rs), "mean": mean, "std": std,
                                            "runs": rs}) + "\n")
            print(f"  {dev} done ({time.perf_counter() - t0:.0f} s)", flush=True)


#: ``auto`` on 900 random cells, newest runs first (a run listed first replaces the same
#: seeds in later files): the every-device check's random-split list (docs/results.md)
AUTO900_FILES = (
    "auto_s16_random.jsonl",
    "auto_s15_random.jsonl", "auto_s14_random.jsonl", "auto_s14_gated_random.jsonl",
    "auto_s13_random.jsonl", "auto_s13_random_more.jsonl", "auto_blendacc_random.jsonl",
    "auto_blendacc_random_b.jsonl", "auto_floor_random.jsonl", "auto_ema_random.jsonl",
    "auto_ema_random_cpu.jsonl", "auto_ema_random_dsp.jsonl", "auto_ema_random_more.jsonl",
    "auto_ema_deployable.jsonl", "auto_pair_random.jsonl", "auto_hedged_random.jsonl",
    "auto_hedged_check.jsonl", "every_device_random.jsonl", "deployable_table.jsonl",
    "auto_refit_random.jsonl", "auto_refit_all_random.jsonl", "auto_refit_all_random_s12.jsonl",
    "auto_refit_all_random_s12b.jsonl", "auto_refit_gpu_random.jsonl",
    "deployable_auto_5seeds.jsonl")


def auto900() -> dict[str, dict]:
    """``auto`` on 900 random cells per table, from the stored every-device results: every
    seed run so far, merged per table (``every_device.merge_seeds``), the newest runs
    (:data:`AUTO900_FILES`) replacing older ones of the same seeds."""
    from every_device import load_results, merge_seeds

    rows = [r for name in AUTO900_FILES if (RESULTS / name).is_file()
            for r in load_results(RESULTS / name)
            if r.get("predictor") == "auto" and r["protocol"]["split"] == "random"]
    return {r["device"]: {"acc_10": r["mean"]["acc_10"], "spearman": r["mean"]["spearman"],
                          "n_runs": r["n_runs"]} for r in merge_seeds(rows)}


def report(path: Path, png: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    fam_of = {d: f for f, ds in FAMILIES.items() for d in ds}
    methods = sorted({r["method"] for r in rows})
    ks = sorted({r["k"] for r in rows})
    by = {(r["device"], r["method"], r["k"]): r for r in rows}
    con = Console(width=200)
    # family means (over the family's tables) of the per-table means; std over seeds pooled
    fam_val: dict[tuple[str, str, int, str], float] = {}
    for f, ds in FAMILIES.items():
        for m in methods:
            for k in ks:
                got = [by[(d, m, k)] for d in ds if (d, m, k) in by]
                if len(got) == len(ds):
                    for key in METRICS:
                        fam_val[(f, m, k, key)] = float(np.mean([g["mean"][key] for g in got]))
    summary = Table(title="Leave one family out: mean over the 17 families (min family)")
    summary.add_column("method")
    for k in ks:
        summary.add_column(f"K={k} Spearman", justify="right")
        summary.add_column(f"K={k} acc_10", justify="right")
    for m in methods:
        cells = []
        for k in ks:
            sp = [fam_val.get((f, m, k, "spearman")) for f in FAMILIES]
            a10 = [fam_val.get((f, m, k, "acc_10")) for f in FAMILIES]
            if any(v is None for v in sp):
                cells += ["", ""]
                continue
            cells += [f"{np.mean(sp):.3f} ({min(sp):.3f})", f"{np.mean(a10):.1f} ({min(a10):.1f})"]
        summary.add_row(m, *cells)
    con.print(summary)
    a900 = auto900()
    for key in ("spearman", "acc_10"):
        t = Table(title=f"{key} per family, transfer on informative cells; std over seeds of "
                        "transfer_random in brackets; auto on 900 from stored results")
        t.add_column("family")
        for k in ks:
            t.add_column(f"K={k}", justify="right")
        t.add_column("random K=20", justify="right")
        t.add_column("ridge K=20", justify="right")
        t.add_column("auto 900", justify="right")
        for f, ds in FAMILIES.items():
            nd = 3 if key == "spearman" else 1
            vals = [fam_val.get((f, "transfer_informative", k, key)) for k in ks]
            rnd = fam_val.get((f, "transfer_random", 20, key))
            rsd = np.mean([by[(d, "transfer_random", 20)]["std"][key] for d in ds
                           if (d, "transfer_random", 20) in by] or [math.nan])
            rdg = fam_val.get((f, "ridge_tables", 20, key))
            au = [a900[d][key] for d in ds if d in a900]
            aus = (f"{np.mean(au) / (1 if key == 'acc_10' else 1):.{nd}f}" if len(au) == len(ds)
                   else "?")
            t.add_row(f, *[f"{v:.{nd}f}" if v is not None else "" for v in vals],
                      f"{rnd:.{nd}f} ± {rsd:.{nd}f}" if rnd is not None else "",
                      f"{rdg:.{nd}f}" if rdg is not None else "", aus)
        con.print(t)
    gap = Table(title="K=50: transfer acc_10 against auto on 900 cells (done-when: within 5 points)")
    for c in ("table", "transfer informative", "transfer random", "auto 900", "Δ best", "ok"):
        gap.add_column(c, justify="left" if c == "table" else "right")
    for d in fam_of:
        a = a900.get(d, {}).get("acc_10")
        ti = by.get((d, "transfer_informative", 50), {}).get("mean", {}).get("acc_10")
        tr = by.get((d, "transfer_random", 50), {}).get("mean", {}).get("acc_10")
        if a is None or ti is None or tr is None:
            continue
        best = max(ti, tr)
        gap.add_row(d, f"{ti:.1f}", f"{tr:.1f}", f"{a:.1f}", f"{best - a:+.1f}",
                    "yes" if best >= a - 5 else "[red]no[/red]")
    con.print(gap)
    unseen = [d for d in UNSEEN_TABLES if any(r["device"] == d for r in rows)]
    for d in unseen:
        t = Table(title=f"{d}: a device outside the data (pretrained without it); "
                        "Spearman / acc_10, mean over cell draws")
        t.add_column("method")
        for k in ks:
            t.add_column(f"K={k}", justify="right")
        for m in methods:
            t.add_row(m, *[f"{by[(d, m, k)]['mean']['spearman']:.3f} / "
                           f"{by[(d, m, k)]['mean']['acc_10']:.1f}" if (d, m, k) in by else ""
                           for k in ks])
        con.print(t)
    if png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(9, 6))
        cmap = plt.get_cmap("tab20")
        for i, f in enumerate(FAMILIES):
            v = [fam_val.get((f, "transfer_informative", k, "spearman")) for k in ks]
            if any(x is None for x in v):
                continue
            ax.plot(ks, v, marker="o", color=cmap(i % 20), label=f)
        base = [np.mean([fam_val[(f, "ridge_tables", k, "spearman")] for f in FAMILIES])
                for k in ks if all((f, "ridge_tables", k, "spearman") in fam_val for f in FAMILIES)]
        if len(base) == len(ks):
            ax.plot(ks, base, "k--", lw=2, label="ridge on other tables (mean)")
        ax.axhline(0.96, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("measured cells K (informative choice)")
        ax.set_ylabel("Spearman on the other cells")
        ax.set_title("transfer, leave one family out")
        ax.legend(fontsize=7, ncol=2, loc="lower right")
        fig.tight_layout()
        png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(png, dpi=120)
        print(f"wrote {png}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=RESULTS / "transfer_lofo.jsonl")
    ap.add_argument("--ks", default=",".join(map(str, KS)))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--scratch", default=",".join(SCRATCH),
                    help="from-scratch backends fitted on the same cells ('' for none)")
    ap.add_argument("--families", default=",".join(FAMILIES),
                    help=f"families to hold out; also {', '.join(UNSEEN)} (not by default)")
    ap.add_argument("--report", type=Path, default=None, help="print tables of a results file")
    ap.add_argument("--png", type=Path, default=None)
    a = ap.parse_args()
    if a.report:
        report(a.report, a.png)
        return
    run(a.out, tuple(int(k) for k in a.ks.split(",")), a.seeds,
        tuple(s for s in a.scratch.split(",") if s), a.families.split(","))
    report(a.out, a.png)


if __name__ == "__main__":
    main()
