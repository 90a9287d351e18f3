"""The paper's Figure 1: true versus predicted latency on the test cells, one PNG per predictor.

    python benchmarks/figure1.py --device desktop_gpu --predictors flops,layerwise,gcn_plus \
        --out docs/figures

Prints a markdown table of the test metrics behind each plot.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nasloop.config import predictor_params  # noqa: E402
from nasloop.data import load_device  # noqa: E402
from nasloop.metrics import latency_metrics  # noqa: E402
from nasloop.search.oracles import fit_on_device, split_cells  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="desktop_gpu")
    ap.add_argument("--predictors", default="flops,layerwise,gcn_plus")
    ap.add_argument("--train", type=int, default=900)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/figures")
    ap.add_argument("--data-dir", default=os.environ.get("NASLOOP_DATA"))
    a = ap.parse_args()
    table = load_device(a.device, a.data_dir)
    _, _, test = split_cells(table, a.train, 100, a.seed)
    y = table.lookup(test)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    print("| device | predictor | acc_1 | acc_5 | acc_10 | spearman | png |")
    print("|---|---|---|---|---|---|---|")
    for name in a.predictors.split(","):
        pred, _ = fit_on_device(name, table, train=a.train, seed=a.seed,
                                params=predictor_params(name))
        p = pred.predict(test)
        m = latency_metrics(y, p)
        lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
        fig, ax = plt.subplots(figsize=(4.2, 4.2))
        ax.scatter(y, p, s=2, alpha=0.3, color="tab:blue", rasterized=True)
        ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
        for f in (0.9, 1.1):
            ax.plot([lo, hi], [lo * f, hi * f], color="grey", lw=0.6, ls="--")
        ax.set_xlabel("measured latency (ms)")
        ax.set_ylabel("predicted latency (ms)")
        ax.set_title(f"{name} on {a.device}: {m['acc_10']:.1f} % within 10 %", fontsize=9)
        fig.tight_layout()
        png = out / f"figure1_{a.device}_{name}.png"
        fig.savefig(png, dpi=120)
        plt.close(fig)
        print(f"| {a.device} | {name} | {m['acc_1']:.1f} | {m['acc_5']:.1f} | {m['acc_10']:.1f} | "
              f"{m['spearman']:.3f} | {png} |", flush=True)


if __name__ == "__main__":
    main()
