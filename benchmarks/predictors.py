"""Predictor accuracy and speed (the paper's Tables 1-6 setup). Prints a markdown table.

    python benchmarks/predictors.py --devices desktop_gpu,desktop_cpu,mobile_dsp \
        --predictors linear,flops,layerwise,xgboost --seeds 5
    python benchmarks/predictors.py --devices desktop_gpu --predictors gcn --config gcn_plus --seeds 1
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from nasloop.config import load_config, parse_sets
from nasloop.data import load_device
from nasloop.evaluation import Protocol, evaluate_predictors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", default="desktop_gpu")
    ap.add_argument("--predictors", default="linear,flops,layerwise,xgboost")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--train", type=int, default=900)
    ap.add_argument("--split", default="random", choices=("random", "grouped"))
    ap.add_argument("--config", default=None)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--label", default=None)
    ap.add_argument("--data-dir", default=os.environ.get("NASLOOP_DATA"))
    a = ap.parse_args()
    print("| device | predictor | acc_1 | acc_5 | acc_10 | spearman | mape | fit s | predict-all s |")
    print("|---|---|---|---|---|---|---|---|---|")
    overrides = load_config(a.config) if a.config else {}
    overrides.update(parse_sets(a.sets))
    for dev in a.devices.split(","):
        table = load_device(dev, a.data_dir)
        protocol = Protocol(a.train, 100, a.split, tuple(range(a.seeds)))
        for r in evaluate_predictors([table], a.predictors.split(","), protocol,
                                     overrides=overrides):
            mu, sd = r["mean"], {k: (0.0 if v != v else v) for k, v in r["std"].items()}
            label = a.label or r["predictor"]
            print(f"| {dev} | {label} | {mu['acc_1']:.1f} ± {sd['acc_1']:.1f} | "
                  f"{mu['acc_5']:.1f} ± {sd['acc_5']:.1f} | {mu['acc_10']:.1f} ± {sd['acc_10']:.1f} | "
                  f"{mu['spearman']:.3f} | {mu['mape']:.2f} | {mu['fit_seconds']:.1f} | "
                  f"{mu['predict_seconds']:.3f} |", flush=True)
            print(json.dumps({"device": dev, "predictor": label, "mean": mu}), file=sys.stderr)

if __name__ == "__main__":
    main()
