"""The main job with no downloaded data: measure, fit, search, and measure the finalists.

``nasloop search --device cpu --budget 5ms`` on a bare machine: time cells here (the 20
the shipped ``transfer`` model finds most informative, else a seeded sample of 200), fit
the oracle on them, search with it (objective: the accuracy table when a data directory
is given, else the data-free synflow proxy), then time the finalists for real and return
the best that truly meets the budget; when none does, they join the fitted cells and the
search runs again (:mod:`nasloop.search.adaptive`). It lives above ``measure`` and ``search``, which
know nothing of each other.
"""
from __future__ import annotations

import dataclasses
import hashlib
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from ..console import err
from ..data import load_accuracy
from ..data.tables import load_csv_table
from ..errors import ConfigError
from ..units import format_ms
from ..predictors import load_predictor
from ..search.adaptive import AdaptiveConfig, adaptive_search, measured_cells
from ..search.oracles import (DEFAULT_ORACLE, Calibration, LatencyOracle, PredictorOracle,
                              default_cache_dir, oracle_label)
from ..search.storage import check_study, study_settings
from ..search.study import SearchConfig, SearchResult, check_budget, run_search
from ..space import Arch, sample_cells
from ..measure.timing import (TimingProtocol, _device, check_graph, check_out_csv, device_model,
                              measure_arch, measure_to_csv)

#: the live mode's timing: 3 interleaved rounds of 1 + 5 runs (18 runs a cell, as before)
LIVE_PROTOCOL = TimingProtocol(rounds=3, repeats=5, warmup=1)
#: cells measured for the oracle when --train is not given, and the fewest accepted: below
#: ~30 cells a fitted predictor extrapolates wildly (linear on 20 cells predicted < 0 ms)
LIVE_TRAIN, MIN_LIVE_TRAIN = 200, 30
#: with a pretrained ``transfer`` model the live oracle needs only this many cells, the
#: ones the model finds most informative (docs/results.md, "Few-shot: transfer"); 20, as
#: good as 30 in the live job replayed on 29 tables with refits (0.24 vs 0.25 points of
#: regret, no failed search; docs/results.md "The main job's budget guard")
TRANSFER_TRAIN, MIN_TRANSFER_TRAIN = 20, 5


def default_live_oracle() -> str:
    """``transfer`` when a pretrained model ships with nasloop, else the default predictor."""
    from ..transfer import SHIPPED

    return "transfer" if SHIPPED.is_file() else DEFAULT_ORACLE


class MeasureOracle(LatencyOracle):
    """True latency measured now on this machine (used to validate finalists).

    It times exactly the network of the cell asked: in the reference form isomorphs are
    different networks, so answers are never shared across a class there.
    """

    def __init__(self, device: str, repeats: int = 30, network: str = "deployable",
                 graph: bool = False):
        super().__init__()
        self.device, self.repeats = device, repeats
        self.name = f"measured:{device}" + ("+graph" if graph else "")
        self.network, self.graph = network, graph
        self.canonical_cache = network == "deployable"  # one network per class only there

    def _compute(self, archs: list[Arch]) -> np.ndarray:
        return np.array([measure_arch(a, self.device, warmup=5, repeats=self.repeats,
                                      network=self.network, threads=LIVE_PROTOCOL.threads,
                                      graph=self.graph)["latency_ms"] for a in archs])


def live_search(device: str, budget_ms: float, config: SearchConfig | None = None, *,
                oracle: str | None = None, train: int | None = None, params: dict | None = None,
                data_dir: str | None = None, cache_dir: str | None = None,
                network: str = "deployable", objective_fn=None,
                adaptive: AdaptiveConfig | None = None, graph: bool = False) -> SearchResult:
    """Measure cells here, fit the oracle, search, and time the finalists for real.

    ``config`` is the search's (objective, trials, sampler, seed, top, storage...); its
    ``confidence`` is replaced by ``adaptive``'s, which guards the budget: a margin
    calibrated on out-of-sample predictions of the timed cells, and refits on the
    finalists that failed (:mod:`nasloop.search.adaptive`). ``objective_fn`` (a loaded
    ``--objective-fn``, e.g. a short training run) replaces the accuracy table or
    synflow as the score to maximise. ``graph`` (``--device cuda`` only) times every cell,
    the fitted ones and the finalists, as the replay of a CUDA graph (``measure
    --cuda-graph``): eager launches on a GPU time Python's launch path, not the network.
    """
    from ..console import progress
    from ..predictors.registry import checked_predictor
    from ..measure.zero_cost import synflow_scores

    import time

    started = time.perf_counter()
    config = config or SearchConfig()
    adaptive = adaptive or AdaptiveConfig()
    adaptive.check()
    params = dict(params or {})
    _device(device)
    check_graph(TimingProtocol(graph=graph), device)  # before anything is timed
    name = oracle or default_live_oracle()
    few_shot = name == "transfer"
    least, default = (MIN_TRANSFER_TRAIN, TRANSFER_TRAIN) if few_shot else (MIN_LIVE_TRAIN, LIVE_TRAIN)
    train = default if train is None else int(train)
    if train < least:
        raise ConfigError(f"--train {train}: fitting {name} needs at least {least} measured "
                          f"cells (default {default})")
    need = adaptive.calibration_cells()
    if train < need:
        raise ConfigError(f"--train {train}: a margin at --confidence {adaptive.confidence:g} "
                          f"needs at least {need} timed cells to calibrate on; give --train "
                          f"{need} or more, or a lower --confidence")
    if oracle == "true":
        raise ConfigError("--oracle true needs a table of measured latencies; with --device "
                          f"{device} every cell would have to be timed. Use a predictor name "
                          "(default auto) or measure a table with `nasloop measure --all`")
    # the oracle and its --set values fail here, before any cell is timed
    saved = load_predictor(name) if Path(name).exists() else None
    if saved is not None and params:
        raise ConfigError(f"--set {', '.join(sorted(params))}: {name} is a saved predictor, "
                          "used as it was fitted; leave --set out, or name a backend to fit")
    template = checked_predictor(name, **params) if saved is None else None
    device_name = f"this machine ({device}{', CUDA graph' if graph else ''})"
    acc = None
    if objective_fn is None and (data_dir or __import__("os").environ.get("NASLOOP_DATA")):
        acc = load_accuracy(data_dir)
    used = objective_fn.label if objective_fn is not None else (
        config.objective if acc is not None else "synflow")
    config = dataclasses.replace(config, objective=used, confidence=adaptive.confidence)
    # a bad budget, storage or mismatched resume fails before any cell is timed
    check_budget(None, budget_ms)
    check_study(config.storage, config.study_name,
                study_settings(budget_ms, device_name, oracle_label(name), used, config.mode,
                               config.sampler_label))
    timing = TimingProtocol(**{**LIVE_PROTOCOL.__dict__, "network": network, "graph": graph})
    # one cache file per machine and protocol: tables never mix protocols
    machine = hashlib.sha1(f"{device}:{device_model(device)}:{sorted(timing.key().items())}"
                           .encode()).hexdigest()[:10]
    csv_path = default_cache_dir(cache_dir) / f"live-{device}-{network}-{machine}.csv"
    check_out_csv(csv_path, "--cache-dir")  # an unwritable cache fails before any timing
    if few_shot:  # the cells that tell the pretrained model most about this machine
        from ..transfer import informative_cells
        cells = informative_cells(train, pretrained=params.get("pretrained"))
    else:
        cells = sample_cells(train, seed=int(config.seed))

    live_bar: list = []  # the search's bar while it runs: one live display at a time

    def measure(new: list[Arch], what: str) -> np.ndarray:
        """Time cells with the table's protocol (cached in ``csv_path``); their latencies."""
        with nullcontext(live_bar[0]) if live_bar else progress() as bar:
            task = bar.add_task(f"measure {len(new)} {what} on {device}", total=len(new),
                                info="")
            try:
                measure_to_csv(new, csv_path, device, protocol=timing,
                               on_cell=lambda n, tot, row: bar.update(task, completed=n))
            finally:
                if live_bar:  # the search's bar goes on: leave no finished row in it
                    bar.remove_task(task)
        return load_csv_table(csv_path, name=f"live_{device}").lookup(new)

    y = measure(cells, "cells")
    if objective_fn is not None:
        score = objective_fn
    elif acc is not None:
        score = acc
    else:
        score = synflow_scores
        err.print("[yellow]no accuracy table: the objective is synflow, a data-free zero-cost "
                  "proxy of accuracy (log10 score; higher is better)[/yellow]")
    validator = MeasureOracle(device, network=network, graph=graph)
    if saved is not None:
        pred = saved
        err.print(f"using the saved predictor {name} (not refitted)")
        oracle_obj = PredictorOracle(pred, name=oracle_label(name))
        # it never saw these cells: they calibrate its margin as they are
        oracle_obj.calibration = Calibration(tuple(cells), tuple(float(v) for v in y),
                                             "cells timed here (the predictor never saw them)")
        oracle_obj.measured = measured_cells(cells, y, {}, share=validator.canonical_cache)
        _warn_non_positive(oracle_obj, name, len(cells))
        with progress(transient=True) as bar:
            task = bar.add_task("search", total=config.trials, info="")
            res = run_search(None, budget_ms, oracle_obj, score, config, validator=validator,
                             device_name=device_name,
                             on_trial=lambda n, tot, info: bar.update(task, completed=n))
        res.rounds = 1
    else:
        if "seed" in template.get_params():
            template.set_params(seed=int(config.seed))
        if ("prune_dead" in template.get_params() and "prune_dead" not in params
                and network == "reference"):
            # the reference network executes every edge, dead ones included: on its
            # timings the unpruned graph fits far better (docs/results.md, 76.9 vs 46.1 %
            # within 10 % on the whole-space CPU table)
            template.set_params(prune_dead=False)

        def on_round(r: int, rounds: int, n: int) -> None:
            again = "" if r == 1 else (f" (search {r} of at most {rounds}: no finalist met "
                                       "the budget, refitting on them)")
            err.print(f"fitting {name} on {n} cells measured on this machine{again}")

        def on_fitted(fitted: PredictorOracle) -> None:
            if hasattr(fitted.predictor, "summary"):  # auto: what it chose, how it validated
                err.print(fitted.predictor.summary(), highlight=False)
            _warn_non_positive(fitted, name, fitted.predictor.fit_info_["train_cells"])

        with progress(transient=True) as bar:
            live_bar.append(bar)
            task = bar.add_task("search", total=config.trials, info="")

            def on_trial(n: int, tot: int, info: dict) -> None:
                bar.update(task, completed=n)

            try:
                res = adaptive_search(template, cells, y, lambda new: measure(new, "finalists"),
                                      budget_ms, score, config, adaptive, validator=validator,
                                      name=oracle_label(name), device_name=device_name,
                                      on_round=lambda r, k, n: (bar.reset(task),
                                                                on_round(r, k, n)),
                                      on_fitted=on_fitted, on_trial=on_trial)
            finally:
                live_bar.clear()
    if res.margin != 1.0:
        err.print(f"feasible meant predicted x {res.margin:.3f} <= {format_ms(budget_ms)} (a margin "
                  f"calibrated for {adaptive.confidence:g} confidence on out-of-sample cells); "
                  "cells timed here counted as timed")
    res.seconds = time.perf_counter() - started
    if res.cells_measured is None:
        res.cells_measured = len(cells)
    return res


def _warn_non_positive(oracle: PredictorOracle, name: str, n: int) -> None:
    everything = oracle.predict_all()
    bad = int(np.sum(~(everything > 0)))
    if bad:
        err.print(f"[yellow]{name} fitted on {n} cells predicts a non-positive latency "
                  f"for {bad} of {len(everything)} cells: its answers there are meaningless "
                  f"(finalists are still timed for real); use a larger --train[/yellow]")
