"""Measurement noise: the floor under any predictor's error. Prints markdown tables.

    python benchmarks/noise.py --devices desktop_gpu,desktop_cpu,mobile_dsp,measured_cpu_epyc_1t
    python benchmarks/noise.py --loo --devices desktop_gpu,desktop_cpu,mobile_dsp
    python benchmarks/noise.py --pair nasloop/data/measured/noise/cpu_epyc_1t_300.csv,nasloop/data/measured/noise/cpu_epyc_1t_300.run2.csv

Isomorphs: cells with the same NAS-Bench-201 unique string compute the same function but
were timed separately; each one's deviation from its group median is measurement noise.
With ``--loo``, each isomorph against the median of the others in its group, by group
size: in large groups that median is near the true latency, so "within 10 %" there is
about the acc_10 a predictor that knew the truth would score (the noise ceiling).
Pairs: two runs of ``nasloop measure`` over the same cells (``--repeat-check`` writes them).
"""
from __future__ import annotations

import argparse
import os

from nasloop.data import load_device
from nasloop.data.tables import load_csv_table
from nasloop.measure.noise import isomorph_loo, isomorph_spread, run_to_run


def _row(label: str, s: dict) -> str:
    return (f"| {label} | {s['cells']} | {s['within_1']:.1f} | {s['within_5']:.1f} | "
            f"{s['within_10']:.1f} | {s['median_pct']:.2f} | {s['p90_pct']:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", default="")
    ap.add_argument("--loo", action="store_true",
                    help="each isomorph against the median of the others, by group size")
    ap.add_argument("--pair", default="", help="two measured CSVs, comma-separated")
    ap.add_argument("--data-dir", default=os.environ.get("NASLOOP_DATA"))
    a = ap.parse_args()
    head = ("| {} | cells | within 1 % | within 5 % | within 10 % | median % | p90 % |\n"
            "|---|---|---|---|---|---|---|")
    if a.devices and a.loo:
        print(head.format("device, group size (isomorphs vs median of the others)"))
        for dev in a.devices.split(","):
            for s in isomorph_loo(load_device(dev, a.data_dir)):
                print(_row(f"{dev}, {s['band']}", s) if s["cells"] else f"| {dev}, {s['band']} | 0 |")
    elif a.devices:
        print(head.format("device (isomorphs vs group median)"))
        for dev in a.devices.split(","):
            print(_row(dev, isomorph_spread(load_device(dev, a.data_dir))), flush=True)
    if a.pair:
        first, second = a.pair.split(",")
        print(head.format("run-to-run"))
        print(_row(f"{first} vs {second}", run_to_run(load_csv_table(first), load_csv_table(second))))


if __name__ == "__main__":
    main()
