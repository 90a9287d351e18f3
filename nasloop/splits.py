"""Train / validation / test splits of a device's cells, and fitting on one.

Two protocols, used by ``fit-predictor``, ``evaluate``, the oracles and every benchmark:

* ``random`` (the paper's): a seeded permutation of the measured cells;
* ``grouped``: whole isomorphism classes (cells with one canonical key, one network once
  dead ops are removed) go to one side, so no test cell has an isomorph in training. On a
  random split about 40 % of test cells do, which flatters memorising models.

The split seed and the model's seed are separate: ``fit_on_split(..., seed=S,
model_seed=M)`` draws the cells with ``S`` and initialises the model with ``M``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .data.tables import LatencyTable
from .errors import ConfigError
from .predictors import Predictor, create_predictor
from .space import Arch, network_ids

SPLITS = ("random", "grouped")


@dataclass(frozen=True)
class SplitSpec:
    """How cells are divided: sizes, protocol and seed."""

    train: int = 900
    val: int = 100
    seed: int = 0
    kind: str = "random"

    def as_dict(self) -> dict:
        return {"train": self.train, "val": self.val, "seed": self.seed, "kind": self.kind}


def split_cells(table: LatencyTable, train: int, val: int, seed: int, kind: str = "random"
                ) -> tuple[list[Arch], list[Arch], list[Arch]]:
    """Seeded split of the measured cells: train, validation, and the rest (test)."""
    cells = table.cells()
    if kind not in SPLITS:
        raise ConfigError(f"unknown split {kind!r}: use one of {', '.join(SPLITS)}")
    if train < 1 or val < 0:
        raise ConfigError(f"--train must be >= 1 and --val >= 0 (got {train}, {val})")
    if train + val > len(cells):
        n = len(cells)
        raise ConfigError(f"device {table.name!r} has {n} measured cells; "
                          f"--train {train} + --val {val} is more than that: give fewer, "
                          f"e.g. --train {max(1, int(n * 0.7))} --val {int(n * 0.1)}")
    rng = np.random.default_rng(seed)
    if kind == "random":
        perm = rng.permutation(len(cells))
        pick = lambda idx: [cells[i] for i in idx]  # noqa: E731
        return pick(perm[:train]), pick(perm[train:train + val]), pick(perm[train + val:])
    groups: dict[int, list[Arch]] = {}
    for a, key in zip(cells, network_ids(cells)):
        groups.setdefault(int(key), []).append(a)
    order = [groups[k] for k in sorted(groups)]
    sides: list[list[Arch]] = [[], [], []]
    wants = (train, val)
    for g in rng.permutation(len(order)):
        group = order[g]
        for s, want in enumerate(wants):  # whole classes fill train, then val, exactly
            if len(sides[s]) + len(group) <= want:
                sides[s].extend(group)
                break
        else:
            sides[2].extend(group)
    if len(sides[0]) < train or len(sides[1]) < val:
        raise ConfigError(f"device {table.name!r}: cannot fill --train {train} / --val {val} "
                          "with whole isomorphism classes; use fewer cells or --split random")
    return sides[0], sides[1], sides[2]


def fair_params(name: str, table: str, params: dict) -> dict:
    """``params`` of predictor ``name`` to fit on ``table``'s cells, with ``pretrained`` set
    to a model pretrained without ``table`` where the predictor takes one, none is given
    and the default model has seen ``table`` (a public table): its test cells are then a
    fair test, as a user's new device would be (``transfer.pretrained_without``)."""
    from .predictors.registry import get_predictor_class
    from .transfer.pretrain import pretrained_without

    if params.get("pretrained") or "pretrained" not in get_predictor_class(name)._param_names():
        return params
    path = pretrained_without(table)
    return params if path is None else {**params, "pretrained": str(path)}


def fit_on_split(name: str, table: LatencyTable, split: SplitSpec, *, params: dict | None = None,
                 model_seed: int | None = None,
                 progress: Callable[[int, int, dict], None] | None = None
                 ) -> tuple[Predictor, dict]:
    """Fit predictor ``name`` on ``split`` of ``table``; returns it and the split info.

    ``model_seed`` (default: the split seed) seeds the model where it has a ``seed``
    parameter and none is given in ``params``.
    """
    tr, va, te = split_cells(table, split.train, split.val, split.seed, split.kind)
    params = fair_params(name, table.name, dict(params or {}))
    if "seed" in create_predictor(name).get_params() and "seed" not in params:
        params["seed"] = split.seed if model_seed is None else int(model_seed)
    pred = create_predictor(name, **params)
    pred.fit(tr, table.lookup(tr), val=(va, table.lookup(va)) if va else None, progress=progress)
    info = {**split.as_dict(), "test": len(te), "model_seed": params.get("seed")}
    return pred, {"device": table.name, "device_source": table.source, "split": info}
