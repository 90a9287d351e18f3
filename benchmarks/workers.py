"""Several workers on one study: distinct cells, duplicates, wall time, a worker killed.

An objective that sleeps 0.5 s stands in for training. On each storage (PostgreSQL, the
journal file): 4 workers run a study of 200 evaluations (50 each on average), and one
worker runs 200 alone; then 4 workers run 200 while one is killed with SIGKILL after 40
evaluations. Workers are forked processes calling ``run_search`` (the library API, as
``nasloop search --workers`` does in fresh processes; forking keeps the ~9 s import of a
fresh process on this loaded 2-core machine out of the comparison). Every call of the
objective is logged, so duplicates count real evaluations, not just trials.

    export NASLOOP_DATA=/work/shared/data
    python benchmarks/workers.py --postgres postgresql+psycopg2://postgres@127.0.0.1:54331/nasloop
    python benchmarks/workers.py --postgres URL --json   # one JSON object per scenario

Without ``--postgres`` only the journal file is run.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path

SLEEP_S = 0.5
_LOG_ENV = "NASLOOP_BENCH_CALLS"


def sleepy(arch: str, seed: int = 0) -> float:
    """The stand-in for training: 0.5 s, a fixed pseudo-accuracy; every call is logged."""
    log = os.environ.get(_LOG_ENV)
    if log:
        with open(log, "a") as f:
            f.write(f"start {os.getpid()} {arch}\n")
    time.sleep(SLEEP_S)
    if log:
        with open(log, "a") as f:
            f.write(f"done {os.getpid()} {arch}\n")
    return (zlib.crc32(arch.encode()) % 10_000) / 100


def _worker(storage: str, name: str, trials: int, heartbeat: int) -> None:
    from nasloop.data import load_device
    from nasloop.search import TableOracle, run_search
    from nasloop.search.objective import UserObjective

    table = load_device("desktop_cpu")
    obj = UserObjective(sleepy, "benchmarks/workers.py:sleepy")
    run_search(table, 4.0, TableOracle(table), obj, trials=trials, objective=obj.label,
               storage=storage, study_name=name, heartbeat=heartbeat)


def scenario(storage: str, workers: int, trials: int, kill_after: int | None = None,
             heartbeat: int = 2) -> dict:
    """Run one study with ``workers`` forked workers; count evaluations from the call log."""
    import optuna

    from nasloop.search.shared import shared_storage
    from nasloop.space import Arch, canonical_representatives, arch_index

    name = f"bench-{uuid.uuid4().hex[:8]}"
    log = Path(tempfile.mkdtemp()) / "calls.log"
    os.environ[_LOG_ENV] = str(log)
    ctx = mp.get_context("fork")
    t0 = time.perf_counter()
    procs = [ctx.Process(target=_worker, args=(storage, name, trials, heartbeat))
             for _ in range(workers)]
    for p in procs:
        p.start()
    killed = None
    if kill_after is not None:
        storage_obj = shared_storage(storage, heartbeat)
        while killed is None:
            time.sleep(0.1)
            try:
                study = optuna.load_study(study_name=name, storage=storage_obj)
            except KeyError:
                continue
            done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
            if done >= kill_after:
                victim = procs[0]
                complete_before = {t.number for t in study.get_trials(
                    deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))}
                os.kill(victim.pid, signal.SIGKILL)
                killed = victim.pid
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    del os.environ[_LOG_ENV]
    study = optuna.load_study(study_name=name, storage=shared_storage(storage, heartbeat))
    trials_ = study.get_trials(deepcopy=False)
    complete = [t for t in trials_ if t.state == optuna.trial.TrialState.COMPLETE]
    cls = canonical_representatives()
    classes = [int(cls[arch_index(Arch.parse(t.user_attrs["arch"]))]) for t in complete]
    lines = [ln.split() for ln in log.read_text().splitlines()]
    started = [ln[2] for ln in lines if ln[0] == "start"]
    finished = [(int(ln[1]), ln[2]) for ln in lines if ln[0] == "done"]
    call_classes = [int(cls[arch_index(Arch.parse(a))]) for a in started]
    complete_archs = {t.user_attrs["arch"] for t in complete}
    # a finished evaluation is lost when its cell is not among the complete trials
    lost = [a for pid, a in finished if a not in complete_archs
            and not (pid == killed)]
    killed_finished_lost = [a for pid, a in finished if pid == killed and a not in complete_archs]
    out = {
        "storage": "postgresql" if storage.startswith("postgresql") else "journal",
        "workers": workers, "trials": trials, "killed": killed is not None,
        "wall_s": round(wall, 1),
        "complete": len(complete), "distinct_cells": len(set(classes)),
        "duplicates": len(classes) - len(set(classes)),
        "objective_calls": len(started),
        "duplicate_calls": len(call_classes) - len(set(call_classes)),
        "finished_evaluations_lost": len(lost),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in trials_),
        "failed": sum(t.state == optuna.trial.TrialState.FAIL for t in trials_),
    }
    if killed is not None:
        still = {t.number for t in complete}
        out["complete_before_kill_kept"] = complete_before <= still
        out["killed_worker_finished_lost"] = len(killed_finished_lost)
    return out


def main() -> None:
    import argparse

    from rich.console import Console
    from rich.table import Table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--postgres", default=os.environ.get("NASLOOP_TEST_POSTGRES"),
                    help="PostgreSQL URL (default $NASLOOP_TEST_POSTGRES); none: journal only")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    storages = []
    if args.postgres:
        storages.append(args.postgres)
    folder = Path(tempfile.mkdtemp())
    storages.append(f"journal:{folder / 'study.log'}")
    rows = []
    for storage in storages:
        many = scenario(storage, args.workers, args.trials)
        one = scenario(storage, 1, args.trials)
        many["wall_vs_one_worker"] = round(many["wall_s"] / one["wall_s"], 3)
        one["wall_vs_one_worker"] = 1.0
        kill = scenario(storage, args.workers, args.trials, kill_after=args.trials // 5)
        kill["wall_vs_one_worker"] = round(kill["wall_s"] / one["wall_s"], 3)
        rows += [many, one, kill]
        if args.json:
            for r in (many, one, kill):
                print(json.dumps(r))
    if args.json:
        return
    t = Table(title=f"{args.workers} workers vs 1 on one study of {args.trials} evaluations "
                    f"(objective sleeps {SLEEP_S} s)")
    cols = ["storage", "workers", "killed", "complete", "distinct_cells", "duplicates",
            "objective_calls", "duplicate_calls", "finished_evaluations_lost", "pruned",
            "failed", "wall_s", "wall_vs_one_worker"]
    for c in cols:
        t.add_column(c.replace("_", " "), justify="left" if c == "storage" else "right")
    for r in rows:
        t.add_row(*[("yes" if r[c] else "no") if c == "killed" else
                    f"{r[c]:.0%}" if c == "wall_vs_one_worker" else str(r[c]) for c in cols])
    Console().print(t)


if __name__ == "__main__":
    sys.exit(main())
