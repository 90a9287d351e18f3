"""Few-shot latency transfer: pretraining across tables and choosing the cells to measure.

Layering: this package uses ``data``, ``space`` and ``predictors.features`` only; the
``transfer`` predictor and the CLI build on it.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..space import Arch, ArchLike, arch_from_index, arch_index, coerce_archs, connected_indices
from .core import FactorModel, adapt, pretrain_factors, select_cells
from .pretrain import (SHIPPED, Pretrained, default_pretrained, load_pretrained, pretrain,
                       save_pretrained)


def informative_cells(k: int, candidates: Iterable[ArchLike] | None = None, *,
                      pretrained: str | Path | None = None,
                      criterion: str = "average") -> list[Arch]:
    """The ``k`` cells whose latencies tell the pretrained model most about a new device.

    A greedy Bayesian design on the model's cell features (see :func:`select_cells`:
    by default the cells that most lower the mean predictive variance over the space), among
    ``candidates`` (default: every connected cell). Deterministic for a given model; the
    ``transfer`` predictor fitted on exactly these cells is what ``measure --cells-for
    transfer`` and ``fit-predictor -p transfer`` produce.
    """
    pre = load_pretrained(pretrained) if pretrained else default_pretrained()
    if candidates is None:
        idx = connected_indices()
    else:
        idx = np.array(sorted({arch_index(a) for a in coerce_archs(candidates)}), dtype=np.int64)
    return [arch_from_index(int(i)) for i in select_cells(pre.model, k, idx, criterion=criterion)]


__all__ = ["FactorModel", "Pretrained", "SHIPPED", "adapt", "default_pretrained",
           "informative_cells", "load_pretrained", "pretrain", "pretrain_factors",
           "save_pretrained", "select_cells"]


def split_informative(table, k: int, *, pretrained: str | Path | None = None
                      ) -> tuple[list[Arch], list[Arch]]:
    """Train on the ``k`` most informative measured cells of ``table``; test on the rest."""
    from ..errors import ConfigError

    cells = table.cells()
    if k > len(cells):
        raise ConfigError(f"device {table.name!r} has {len(cells)} measured cells; --train {k} "
                          "is more than that")
    train = informative_cells(k, [a for a in cells if a.is_connected()], pretrained=pretrained)
    chosen = set(train)
    return train, [a for a in cells if a not in chosen]
