"""The feasible set: every network the oracle calls within budget, one cell per network.

The oracle answers the whole space (15,625 cells) in about a second, while one accuracy
evaluation is a trained network. So a search first asks the oracle about every cell, then
evaluates only networks in this set, each once: isomorphic cells (one canonical key, see
:meth:`nasloop.space.Arch.canonical_key`) are one network, and a network is feasible when
any of its cells is. Its **representative**, the cell whose accuracy is evaluated, is the
cell the oracle calls fastest (ties: the lowest cell index), the one most likely to meet
the budget for real.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..space import NUM_CELLS, Arch, arch_from_index, arch_index, canonical_representatives


@dataclass
class FeasibleSpace:
    """Oracle latency of every cell, the budget, and the networks that meet it.

    ``margin`` multiplies every oracle answer before the comparison with the budget (a
    calibrated safety factor, see :func:`nasloop.search.oracles.conformal_margin`; 1 means
    none), except the answers of ``exact`` cells (indices): those are measurements.
    """

    latency_ms: np.ndarray
    budget_ms: float
    margin: float = 1.0
    exact: np.ndarray | None = None
    #: per cell index, the index of the first cell of its class (the class id)
    class_of: np.ndarray = field(init=False, repr=False)
    #: representative cell index of every feasible class, ascending
    representatives: np.ndarray = field(init=False, repr=False)
    _rep_of_class: dict[int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        lat = np.asarray(self.latency_ms, dtype=np.float64)
        if lat.shape != (NUM_CELLS,):
            raise ValueError(f"latency_ms must hold all {NUM_CELLS} cells, got shape {lat.shape}")
        self.latency_ms = lat
        self.class_of = canonical_representatives()
        eff = lat * self.margin
        if self.exact is not None and len(self.exact):
            eff[self.exact] = lat[self.exact]
        ok = np.isfinite(eff) & (eff <= self.budget_ms)
        key = np.where(ok, eff, np.inf)
        order = np.lexsort((np.arange(NUM_CELLS), key))  # fastest first, then lowest index
        order = order[ok[order]]
        _, first = np.unique(self.class_of[order], return_index=True)
        reps = order[first]
        self._rep_of_class = {int(self.class_of[i]): int(i) for i in reps}
        self.representatives = np.sort(reps)

    @property
    def n_networks(self) -> int:
        """Feasible networks (isomorphism classes with a cell the oracle calls within budget)."""
        return len(self.representatives)

    def class_id(self, arch: Arch) -> int:
        return int(self.class_of[arch_index(arch)])

    def representative(self, arch: Arch) -> int | None:
        """Cell index evaluated for ``arch``'s network, or None when that network is infeasible."""
        return self._rep_of_class.get(self.class_id(arch))

    def is_representative(self, arch: Arch) -> bool:
        return self.representative(arch) == arch_index(arch)

    def unseen(self, seen_classes: set[int]) -> np.ndarray:
        """Representatives of the feasible networks not in ``seen_classes``, ascending."""
        if not seen_classes:
            return self.representatives
        taken = np.fromiter(seen_classes, dtype=np.int64, count=len(seen_classes))
        return self.representatives[~np.isin(self.class_of[self.representatives], taken)]

    def random_unseen(self, rng: np.random.Generator, seen_classes: set[int]) -> Arch | None:
        """A uniformly drawn feasible network not yet evaluated (None when none is left)."""
        left = self.unseen(seen_classes)
        if not len(left):
            return None
        return arch_from_index(int(left[rng.integers(len(left))]))

    def predicted(self, arch: Arch) -> float:
        """The oracle's raw answer for ``arch`` (inf where it has none)."""
        v = float(self.latency_ms[arch_index(arch)])
        return v if math.isfinite(v) else math.inf
