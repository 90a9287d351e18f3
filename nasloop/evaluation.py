"""Evaluating predictors over devices, splits and seeds (``nasloop evaluate``, benchmarks).

One protocol for every number nasloop reports (:class:`Protocol`): the paper's random
split or the grouped one (no test cell with an isomorph in training), split seeds and
model seeds as separate axes, and every run counted: a fit that fails scores 0 % within
every bound and Spearman 0 (no ranking information) and is listed with its error, never
dropped from the means. Std is the sample std (ddof=1).
"""
from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .config import predictor_params
from .data.tables import LatencyTable
from .errors import ConfigError
from .metrics import latency_metrics
from .predictors import get_predictor_class
from .predictors.auto import refit_dropped
from .predictors.registry import checked_predictor
from .space import all_archs
from .splits import SPLITS, SplitSpec, fit_on_split, split_cells

#: what a failed fit scores: the worst value of each headline metric
FAILED_SCORES = {"acc_1": 0.0, "acc_5": 0.0, "acc_10": 0.0, "spearman": 0.0, "kendall": 0.0}


@dataclass(frozen=True)
class Protocol:
    """How predictors are evaluated: split sizes and kind, and which seeds.

    ``model_seeds=None`` pairs each split seed with the same model seed (the usual
    "N seeds"); a tuple runs every split seed with every model seed, so the variance of
    the split and of the model's initialisation can be read apart.
    """

    train: int = 900
    val: int = 100
    split: str = "random"
    split_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    model_seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ConfigError(f"unknown split {self.split!r}: use one of {', '.join(SPLITS)}")
        if not self.split_seeds or (self.model_seeds is not None and not self.model_seeds):
            raise ConfigError("a protocol needs at least one split seed and one model seed")

    def runs(self) -> list[tuple[int, int]]:
        """(split seed, model seed) pairs, in order."""
        if self.model_seeds is None:
            return [(s, s) for s in self.split_seeds]
        return list(itertools.product(self.split_seeds, self.model_seeds))

    def as_dict(self) -> dict:
        return {"train": self.train, "val": self.val, "split": self.split,
                "split_seeds": list(self.split_seeds),
                "model_seeds": None if self.model_seeds is None else list(self.model_seeds)}


@dataclass
class Evaluation:
    """Every run of one predictor on one device, and their summary."""

    device: str
    predictor: str
    params: dict
    protocol: Protocol
    runs: list[dict] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return sum(1 for r in self.runs if r.get("failed"))

    def summary(self) -> dict:
        keys: list[str] = []
        for r in self.runs:
            keys += [k for k, v in r.items() if k not in keys and k not in ("split_seed", "model_seed")
                     and isinstance(v, (int, float)) and not isinstance(v, bool)]
        mean, std = {}, {}
        for k in keys:
            vals = np.array([r.get(k, math.nan) for r in self.runs], dtype=np.float64)
            mean[k] = float(np.mean(vals))
            std[k] = float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan
        return {"device": self.device, "predictor": self.predictor, "params": self.params,
                "protocol": self.protocol.as_dict(), "n_runs": len(self.runs),
                "failures": self.failures, "mean": mean, "std": std, "runs": self.runs}


def resolve_params(name: str, overrides: dict | None = None) -> dict:
    """A predictor's parameters for evaluation: its config, then the overrides it accepts.

    Builds and validates the predictor, so a bad name or value fails before any fitting.
    """
    params = predictor_params(name)
    accepted = get_predictor_class(name)._param_names()
    params.update({k: v for k, v in (overrides or {}).items() if k in accepted})
    checked_predictor(name, **params)
    return params


def evaluate_one(table: LatencyTable, name: str, split: SplitSpec, *, model_seed: int,
                 params: dict | None = None, progress=None) -> dict:
    """Fit ``name`` on one split and return its test metrics and timings (or its failure)."""
    _, _, test = split_cells(table, split.train, split.val, split.seed, split.kind)
    run: dict = {"split_seed": split.seed, "model_seed": model_seed}
    t0 = time.perf_counter()
    try:
        pred, _ = fit_on_split(name, table, split, params=params, model_seed=model_seed,
                               progress=progress)
        fit_s = time.perf_counter() - t0
        cells = list(all_archs())
        t0 = time.perf_counter()
        pred.predict(cells)
        pred_s = time.perf_counter() - t0
        true = table.lookup(test)
        run.update(latency_metrics(true, pred.predict(test)))
        if table.name in pred.pretraining_tables():  # a pretrained model saw these cells
            run["seen_in_pretraining"] = True
        # a model that fitted candidates (auto) reports each one's test score too, as fitted
        # inside it: benchmarks read them, the choice never does
        if getattr(pred, "candidates_", None):
            run["candidates"] = {
                label: {k: v for k, v in latency_metrics(true, c.predict(test)).items()
                        if k in ("acc_1", "acc_5", "acc_10", "spearman", "mape")}
                for label, c in pred.candidates_.items()}
    except (KeyboardInterrupt, ConfigError):
        raise
    except Exception as e:  # counted as a failed run, never dropped
        run.update(FAILED_SCORES, failed=f"{type(e).__name__}: {e}",
                   fit_seconds=time.perf_counter() - t0)
        return run
    run.update(fit_seconds=fit_s, predict_seconds=pred_s)
    if hasattr(pred, "choice_"):
        run["choice"] = {"chosen": pred.choice_["chosen"], "weights": pred.choice_["weights"]}
        if pred.choice_.get("band") is not None:  # held within a band of transfer's
            run["choice"]["band"] = pred.choice_["band"]
        if pred.choice_.get("kinds") is not None:  # transfer weighed apart on seen networks
            run["choice"]["kinds"] = pred.choice_["kinds"]
        dropped = list(refit_dropped(pred.choice_))
        if dropped:  # members whose refit failed: their choice-stage model predicts alone
            run["choice"]["refit_dropped"] = dropped
        # each candidate's validation scores, so that a choice rule can be replayed from
        # the stored runs without refitting (no test cell is involved in them)
        run["choice"]["val"] = {
            label: {k: row[k] for k in ("val_log_loss", "val_class_log_loss", "val_acc_10")
                    if k in row}
            for label, row in pred.choice_.get("tried", {}).items() if isinstance(row, dict)}
    return run


def evaluate_predictors(tables: Sequence[LatencyTable], names: Sequence[str],
                        protocol: Protocol = Protocol(), *, overrides: dict | None = None,
                        bar=None, on_result: Callable[[dict], None] | None = None) -> list[dict]:
    """Summaries (mean, sample std, every run) per (device, predictor) under ``protocol``.

    Every predictor name and parameter is checked before the first fit; ``on_result``
    receives each summary as soon as it is done (benchmarks stream them to disk, so an
    interrupted run keeps what it finished).
    """
    if not names:
        raise ConfigError("no predictor to evaluate: give names, e.g. -p auto,linear")
    params_by_name = {name: resolve_params(name, overrides) for name in names}
    unused = sorted(set(overrides or {}) - {k for n in names
                                            for k in get_predictor_class(n)._param_names()})
    if unused:
        raise ConfigError(f"--set {', '.join(unused)}: no predictor among {', '.join(names)} "
                          "has such a parameter ('nasloop predictors' lists them; check the "
                          "spelling)")
    runs = protocol.runs()
    results = []
    task = bar.add_task("evaluate", total=len(tables) * len(names) * len(runs), info="") if bar else None
    for table in tables:
        for name in names:
            ev = Evaluation(table.name, name, params_by_name[name], protocol)
            for split_seed, model_seed in runs:
                if bar:
                    bar.update(task, info=f"{table.name} {name} split {split_seed} model {model_seed}")
                spec = SplitSpec(protocol.train, protocol.val, split_seed, protocol.split)
                ev.runs.append(evaluate_one(table, name, spec, model_seed=model_seed,
                                            params=params_by_name[name]))
                if bar:
                    bar.advance(task)
            summary = ev.summary()
            results.append(summary)
            if on_result is not None:
                on_result(summary)
    return results
