"""Fixed-length feature vectors of cells for the non-graph backends."""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from ..network import CELLS_PER_STAGE, STAGE_CHANNELS, STAGE_RESOLUTION, network_cost
from ..space import CONV1, CONV3, EDGES, NUM_EDGES, OPS, POOL, SKIP, Arch


def onehot(archs: Sequence[Arch]) -> np.ndarray:
    """The paper's encoding: one-hot op per edge, 6 x 5 = 30 columns."""
    out = np.zeros((len(archs), NUM_EDGES * len(OPS)))
    for r, a in enumerate(archs):
        for k, o in enumerate(a.ops):
            out[r, k * len(OPS) + o] = 1.0
    return out


def flops_params(archs: Sequence[Arch]) -> np.ndarray:
    """MFLOPs and millions of parameters of each cell's full network."""
    return np.array([_cost(a) for a in archs], dtype=np.float64).reshape(len(archs), 2)


@lru_cache(maxsize=None)
def _cost(a: Arch) -> tuple[float, float]:
    c = network_cost(a, form="reference")  # the NAS-Bench-201 network's FLOPs
    return c.flops / 1e6, c.params / 1e6


#: per-layer kinds counted by the layer-wise model (``none`` costs nothing)
LAYER_OPS = (SKIP, CONV1, CONV3, POOL)


def stage_op_counts(archs: Sequence[Arch]) -> np.ndarray:
    """How many of each op the network runs in each stage: 3 stages x 4 ops = 12 columns."""
    out = np.zeros((len(archs), len(STAGE_CHANNELS) * len(LAYER_OPS)))
    for r, a in enumerate(archs):
        for s in range(len(STAGE_CHANNELS)):
            for j, op in enumerate(LAYER_OPS):
                out[r, s * len(LAYER_OPS) + j] = CELLS_PER_STAGE * a.ops.count(op)
    return out


def rich(archs: Sequence[Arch]) -> np.ndarray:
    """One-hot ops, the same restricted to live edges, per-node fan-in, FLOPs and params.

    Dead edges (on no input-output path) and the number of tensors summed at each node
    change what a framework actually executes; the one-hot code alone cannot see either.
    """
    rows = []
    for a in archs:
        live = a.live_edges()
        live_oh = np.zeros(NUM_EDGES * len(OPS))
        fan_in = np.zeros(3)
        for k, o in enumerate(a.ops):
            if live[k]:
                live_oh[k * len(OPS) + o] = 1.0
                fan_in[EDGES[k][1] - 1] += 1
        f, p = _cost(a)
        rows.append(np.concatenate([live_oh, fan_in, [f, p, float(any(live))]]))
    return np.concatenate([onehot(archs), np.array(rows)], axis=1)


__all__ = ["onehot", "flops_params", "stage_op_counts", "rich", "STAGE_RESOLUTION"]
