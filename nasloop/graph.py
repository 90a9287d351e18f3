"""The BRP-NAS graph encoding of a cell, the GCN predictor's input.

Nine nodes: input, the six edge-ops as nodes, output, and a global node linked to every
kept node (latency is read from it). ``none`` nodes are removed, ``skip_connect`` nodes are
bypassed (their predecessors linked straight to their successors). Op nodes on no
input-to-output path ("dead" ops) are pruned as in the paper (rows, columns and features
all zero), or, with ``prune=False``, kept with a ``dead`` feature column set: some devices
execute them and pay for them (the HELP tables, nasloop's own network), others do not (the
BRP-NAS tables), and the flag lets a model learn which from the device's data.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from .space import EDGES, NONE, SKIP, Arch

NUM_GRAPH_NODES = 9
INPUT_NODE, OUTPUT_NODE, GLOBAL_NODE = 0, 7, 8
#: one-hot feature columns
NODE_TYPES = ("input", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "output", "global")
#: every feature column: the node types, then a flag for op nodes on no input-output path
FEATURES = NODE_TYPES + ("dead",)
DEAD_COLUMN = len(NODE_TYPES)
_OP_TYPE = {2: 2, 3: 3, 4: 4}  # op index -> feature column for the three real ops


def _op_edges(arch: Arch) -> set[tuple[int, int]]:
    """Directed edges between graph nodes before removing none/skip."""
    edges = set()
    for k, (i, j) in enumerate(EDGES):
        node = 1 + k
        if i == 0:
            edges.add((INPUT_NODE, node))
        else:
            for m, (_, jj) in enumerate(EDGES):
                if jj == i:
                    edges.add((1 + m, node))
        if j == 3:
            edges.add((node, OUTPUT_NODE))
    return edges


def encode(arch: Arch, prune: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(adjacency, features)``: a directed 9x9 0/1 matrix and 9x8 feature rows.

    ``adjacency[a, b] = 1`` for an edge a -> b (data flows from a to b); every kept node has
    an edge to the global node and one from it (propagation modes choose which to use).
    ``prune=False`` keeps op nodes that lie on no input-output path, flagged ``dead``: the
    paper prunes them, but the NAS-Bench-201 network still executes them (even in a cell
    with no input-output path at all), and some devices pay for them.
    """
    edges = _op_edges(arch)
    alive = set(range(8))
    for k, op in enumerate(arch.ops):
        node = 1 + k
        if op == NONE:
            edges = {(a, b) for a, b in edges if node not in (a, b)}
            alive.discard(node)
        elif op == SKIP:
            preds = [a for a, b in edges if b == node]
            succs = [b for a, b in edges if a == node]
            edges = {(a, b) for a, b in edges if node not in (a, b)}
            edges |= {(p, s) for p in preds for s in succs}
            alive.discard(node)
    # prune nodes on no input->output path
    fwd = {INPUT_NODE}
    for _ in range(8):
        fwd |= {b for a, b in edges if a in fwd}
    bwd = {OUTPUT_NODE}
    for _ in range(8):
        bwd |= {a for a, b in edges if b in bwd}
    on_path = alive & fwd & bwd
    live = on_path if prune else set(alive)
    adj = np.zeros((NUM_GRAPH_NODES, NUM_GRAPH_NODES), dtype=np.float32)
    feat = np.zeros((NUM_GRAPH_NODES, len(FEATURES)), dtype=np.float32)
    if OUTPUT_NODE not in live:  # pruned cell with no path at all: only the global node
        feat[GLOBAL_NODE, NODE_TYPES.index("global")] = 1
        return adj, feat
    for a, b in edges:
        if a in live and b in live:
            adj[a, b] = 1
    for v in live:
        adj[GLOBAL_NODE, v] = adj[v, GLOBAL_NODE] = 1
        if v == INPUT_NODE:
            feat[v, 0] = 1
        elif v == OUTPUT_NODE:
            feat[v, NODE_TYPES.index("output")] = 1
        else:
            feat[v, _OP_TYPE[arch.ops[v - 1]]] = 1
            if v not in on_path:
                feat[v, DEAD_COLUMN] = 1
    feat[GLOBAL_NODE, NODE_TYPES.index("global")] = 1
    return adj, feat


def encode_batch(archs: Sequence[Arch], prune: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Stack encodings: ``(N, 9, 9)`` adjacency and ``(N, 9, 8)`` features."""
    pairs = [_encode_cached(a, prune) for a in archs]
    if not pairs:
        return (np.zeros((0, NUM_GRAPH_NODES, NUM_GRAPH_NODES), np.float32),
                np.zeros((0, NUM_GRAPH_NODES, len(FEATURES)), np.float32))
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


@lru_cache(maxsize=32768)
def _encode_cached(arch: Arch, prune: bool) -> tuple[np.ndarray, np.ndarray]:
    adj, feat = encode(arch, prune)
    adj.flags.writeable = False
    feat.flags.writeable = False
    return adj, feat


def clear_encoding_cache() -> None:
    """Forget cached encodings (benchmarks time the cold path with it)."""
    _encode_cached.cache_clear()
