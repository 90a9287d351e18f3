"""Replay `auto`'s single-candidate choice under another validation score (issue #9, session 16).

Each stored `auto` run (from ``every_device.py`` since session 16) keeps every candidate's
validation scores beside its choice (``choice.val``) and every candidate's test scores as
fitted inside `auto` (``candidates``; before the chosen one's refit). For each run this
prints which candidate each criterion picks *alone* and that candidate's test acc_10, with
`auto`'s own result beside them. Blends and the refit are not replayed: a criterion that
looks better here still needs a real rerun before it is adopted.

    python benchmarks/choice_replay.py benchmarks/results/auto_s16_grouped_val.jsonl
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

CRITERIA = ("val_log_loss", "val_class_log_loss")


def replay(paths: list[Path]) -> list[dict]:
    out = []
    for path in paths:
        for line in path.read_text().splitlines():
            r = json.loads(line)
            for run in r.get("runs", []):
                val = run.get("choice", {}).get("val")
                if not val or "candidates" not in run:
                    continue
                row = {"device": r["device"], "split": r["protocol"]["split"],
                       "seed": run["split_seed"], "auto": run["acc_10"],
                       "chosen": "+".join(run["choice"]["chosen"])}
                for c in CRITERIA:
                    scored = {k: v[c] for k, v in val.items() if c in v}
                    pick = min(scored, key=scored.get) if scored else None
                    row[c] = (pick, run["candidates"][pick]["acc_10"] if pick else np.nan)
                out.append(row)
    return out


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    rows = replay(ap.parse_args().files)
    t = Table(title="auto's choice replayed: the candidate each criterion picks alone "
                    "(test acc_10 as fitted inside auto)")
    for col in ("device", "split", "seed", "auto (chosen)", *CRITERIA):
        t.add_column(col)
    for r in rows:
        t.add_row(r["device"], r["split"], str(r["seed"]), f"{r['auto']:.1f} ({r['chosen']})",
                  *[f"{r[c][1]:.1f} ({r[c][0]})" for c in CRITERIA])
    if rows:
        t.add_row("mean", "", str(len(rows)), f"{np.mean([r['auto'] for r in rows]):.2f}",
                  *[f"{np.mean([r[c][1] for r in rows]):.2f}" for c in CRITERIA])
    Console().print(t)


if __name__ == "__main__":
    main()
