"""The main job with no downloaded data: measure, fit, search, and measure the finalists.

``nasloop search --device cpu --budget 5ms`` on a bare machine: time cells here (the ~30
the shipped ``transfer`` model finds most informative, else a seeded sample of 200), fit
the oracle on them, search with it (objective: the accuracy table when a data directory
is given, else the data-free synflow proxy), then time the finalists for real and return
the best that truly meets the budget. It lives above ``measure`` and ``search``, which
know nothing of each other.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..console import err
from ..data import load_accuracy
from ..data.tables import load_csv_table
from ..errors import ConfigError
from ..predictors import load_predictor
from ..search.oracles import (DEFAULT_ORACLE, LatencyOracle, PredictorOracle, default_cache_dir,
                              oracle_label)
from ..search.storage import check_study, study_settings
from ..search.study import SearchResult, check_budget, run_search
from ..space import Arch, sample_cells
from ..measure.timing import TimingProtocol, _cpu_model, _device, measure_arch, measure_to_csv

#: the live mode's timing: 3 interleaved rounds of 1 + 5 runs (18 runs a cell, as before)
LIVE_PROTOCOL = TimingProtocol(rounds=3, repeats=5, warmup=1)
#: cells measured for the oracle when --train is not given, and the fewest accepted: below
#: ~30 cells a fitted predictor extrapolates wildly (linear on 20 cells predicted < 0 ms)
LIVE_TRAIN, MIN_LIVE_TRAIN = 200, 30
#: with a pretrained ``transfer`` model the live oracle needs only this many cells, the
#: ones the model finds most informative (docs/results.md, "Few-shot: transfer")
TRANSFER_TRAIN, MIN_TRANSFER_TRAIN = 30, 5


def default_live_oracle() -> str:
    """``transfer`` when a pretrained model ships with nasloop, else the default predictor."""
    from ..transfer import SHIPPED

    return "transfer" if SHIPPED.is_file() else DEFAULT_ORACLE


class MeasureOracle(LatencyOracle):
    """True latency measured now on this machine (used to validate finalists).

    It times exactly the network of the cell asked: in the reference form isomorphs are
    different networks, so answers are never shared across a class there.
    """

    def __init__(self, device: str, repeats: int = 30, network: str = "deployable"):
        super().__init__()
        self.device, self.repeats, self.name = device, repeats, f"measured:{device}"
        self.network = network
        self.canonical_cache = network == "deployable"  # one network per class only there

    def _compute(self, archs: list[Arch]) -> np.ndarray:
        return np.array([measure_arch(a, self.device, warmup=5, repeats=self.repeats,
                                      network=self.network, threads=LIVE_PROTOCOL.threads
                                      )["latency_ms"] for a in archs])


def live_search(device: str, budget_ms: float, *, oracle: str | None, train: int | None,
                trials: int,
                sampler: str, mode: str, seed: int, top: int, storage: str | None,
                study_name: str | None, params: dict, data_dir: str | None, objective: str,
                out_dir: str | None = None, cache_dir: str | None = None,
                network: str = "deployable", objective_fn=None) -> SearchResult:
    """Measure cells here, fit the oracle, search, and time the finalists for real.

    ``objective_fn`` (a loaded ``--objective-fn``, e.g. a short training run) replaces the
    accuracy table or synflow as the score to maximise.
    """
    from ..console import progress
    from ..predictors import create_predictor
    from ..measure.zero_cost import synflow_scores

    import time

    started = time.perf_counter()
    _device(device)
    name = oracle or default_live_oracle()
    few_shot = name == "transfer"
    least, default = (MIN_TRANSFER_TRAIN, TRANSFER_TRAIN) if few_shot else (MIN_LIVE_TRAIN, LIVE_TRAIN)
    train = default if train is None else int(train)
    if train < least:
        raise ConfigError(f"--train {train}: fitting {name} needs at least {least} measured "
                          f"cells (default {default})")
    if oracle == "true":
        raise ConfigError("--oracle true needs a table of measured latencies; with --device "
                          f"{device} every cell would have to be timed. Use a predictor name "
                          "(default auto) or measure a table with `nasloop measure --all`")
    device_name = f"this machine ({device})"
    acc = None
    if objective_fn is None and (data_dir or __import__("os").environ.get("NASLOOP_DATA")):
        acc = load_accuracy(data_dir)
    used = objective_fn.label if objective_fn is not None else (
        objective if acc is not None else "synflow")
    # a bad budget, storage or mismatched resume fails before any cell is timed
    check_budget(None, budget_ms)
    check_study(storage, study_name,
                study_settings(budget_ms, device_name, oracle_label(name), used, mode, sampler))
    timing = TimingProtocol(**{**LIVE_PROTOCOL.__dict__, "network": network})
    # one cache file per machine and protocol: tables never mix protocols
    machine = hashlib.sha1(f"{device}:{_cpu_model()}:{sorted(timing.key().items())}"
                           .encode()).hexdigest()[:10]
    csv_path = default_cache_dir(cache_dir) / f"live-{device}-{network}-{machine}.csv"
    if few_shot:  # the cells that tell the pretrained model most about this machine
        from ..transfer import informative_cells
        cells = informative_cells(train, pretrained=params.get("pretrained"))
    else:
        cells = sample_cells(train, seed)
    with progress() as bar:
        task = bar.add_task(f"measure {train} cells on {device}", total=train, info="")
        measure_to_csv(cells, csv_path, device, protocol=timing,
                       on_cell=lambda n, tot, row: bar.update(task, completed=n))
    table = load_csv_table(csv_path, name=f"live_{device}")
    y = table.lookup(cells)
    if Path(name).exists():
        pred = load_predictor(name)
        err.print(f"using the saved predictor {name} (not refitted)")
    else:
        pred = create_predictor(name, **params)
        if "seed" in pred.get_params():
            pred.set_params(seed=seed)
        if ("prune_dead" in pred.get_params() and "prune_dead" not in params
                and network == "reference"):
            # the reference network executes every edge, dead ones included: on its
            # timings the unpruned graph fits far better (docs/results.md, 76.9 vs 46.1 %
            # within 10 % on the whole-space CPU table)
            pred.set_params(prune_dead=False)
        err.print(f"fitting {name} on {len(cells)} cells measured on this machine ({csv_path})")
        pred.fit(cells, y)
        if hasattr(pred, "summary"):  # auto: say what it chose and how well it validated
            err.print(pred.summary(), highlight=False)
    oracle_obj = PredictorOracle(pred, name=oracle_label(name))
    everything = oracle_obj.predict_all()
    bad = int(np.sum(~(everything > 0)))
    if bad:
        err.print(f"[yellow]{name} fitted on {len(cells)} cells predicts a non-positive latency "
                  f"for {bad} of {len(everything)} cells: its answers there are meaningless "
                  f"(finalists are still timed for real); use a larger --train[/yellow]")
    if objective_fn is not None:
        score = objective_fn
    elif acc is not None:
        score = acc
    else:
        score = synflow_scores
        err.print("[yellow]no accuracy table: the objective is synflow, a data-free zero-cost "
                  "proxy of accuracy (log10 score; higher is better)[/yellow]")
    with progress(transient=True) as bar:
        task = bar.add_task("search", total=trials, info="")
        res = run_search(None, budget_ms, oracle_obj, score,
                         objective=used, trials=trials, sampler=sampler, mode=mode, seed=seed,
                         storage=storage, study_name=study_name, top=top,
                         validator=MeasureOracle(device, network=network), device_name=device_name,
                         on_trial=lambda n, tot, info: bar.update(task, completed=n))
    res.cells_measured = len(cells)
    res.seconds = time.perf_counter() - started
    return res
