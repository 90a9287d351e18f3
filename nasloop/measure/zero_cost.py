"""Synflow: a data-free zero-cost proxy of accuracy, the objective when no table is present.

Synflow (Tanaka et al. 2020) scores a network by the sum over parameters of
``|theta * dR/dtheta|`` where ``R`` is the output summed for an all-ones input through the
network with every weight replaced by its absolute value. No data, no labels.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from ..network import INPUT_SHAPE, CellNetwork
from ..space import Arch
from .timing import pinned_threads


@lru_cache(maxsize=None)
def synflow(arch: Arch, seed: int = 0) -> float:
    """log10 of the synflow score of ``arch``'s network (higher: expected more accurate).

    One torch thread: a search scores one small network per trial, where threads only
    add overhead, and on a busy machine they stall (a median of 3.5 s a cell with two
    threads against 0.07 s with one, at load 3; ``benchmarks/threads.py``, session 17).
    """
    with pinned_threads(1):
        return _synflow(arch, seed)


def _synflow(arch: Arch, seed: int) -> float:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = CellNetwork(arch, form="reference").double()
    net.eval()  # BN uses running stats (identity-like at init): the score is data-free
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    x = torch.ones(1, *INPUT_SHAPE, dtype=torch.float64)
    net.zero_grad()
    net(x).sum().backward()
    score = sum(float((p.detach() * p.grad).abs().sum()) for p in net.parameters() if p.grad is not None)
    return float(np.log10(score)) if score > 0 else -np.inf


def synflow_scores(archs: Sequence[Arch]) -> np.ndarray:
    return np.array([synflow(a) for a in archs], dtype=np.float64)
