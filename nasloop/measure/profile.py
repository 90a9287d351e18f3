"""Profiling each distinct layer of the network in isolation (layer-wise predictor, real mode)."""
from __future__ import annotations

import torch

from ..network import (CELLS_PER_STAGE, INPUT_SHAPE, STAGE_CHANNELS, STAGE_RESOLUTION,
                       STEM_CHANNELS, ReLUConvBN, ResBlock, _op)
from ..space import CONV1, CONV3, POOL, SKIP
from .timing import _device, pinned_threads, time_module


def profile_layers(device: str = "cpu", *, repeats: int = 30, threads: int | None = None,
                   progress=None) -> dict[str, float]:
    """Median ms of each layer: ``stage{s}/{op}`` per op instance, and ``fixed`` for stem,
    reductions and head. Sum over a network's layers gives its layer-wise latency."""
    dev = _device(device)
    with pinned_threads(threads):
        return _profile(dev, repeats, progress)


def _profile(dev: torch.device, repeats: int, progress) -> dict[str, float]:
    import statistics
    table: dict[str, float] = {}
    jobs = []
    for s, (c, hw) in enumerate(zip(STAGE_CHANNELS, STAGE_RESOLUTION)):
        for op in (SKIP, CONV1, CONV3, POOL):
            jobs.append((f"stage{s}/{op}", _op(op, c), (1, c, hw, hw)))
    stem = torch.nn.Sequential(torch.nn.Conv2d(3, STEM_CHANNELS, 3, padding=1, bias=False),
                               torch.nn.BatchNorm2d(STEM_CHANNELS))
    jobs.append(("stem", stem, (1, *INPUT_SHAPE)))
    jobs.append(("reduce1", ResBlock(16, 32), (1, 16, 32, 32)))
    jobs.append(("reduce2", ResBlock(32, 64), (1, 32, 16, 16)))
    head = torch.nn.Sequential(torch.nn.BatchNorm2d(64), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(64, 10))
    jobs.append(("head", head, (1, 64, 8, 8)))
    for n, (key, mod, shape) in enumerate(jobs):
        x = torch.randn(*shape, device=dev)
        t = time_module(mod.eval().to(dev), x, warmup=5, repeats=repeats)
        table[key] = statistics.median(t)
        if progress:
            progress(n + 1, len(jobs), {})
    table["fixed"] = table["stem"] + table["reduce1"] + table["reduce2"] + table["head"]
    _ = CELLS_PER_STAGE, ReLUConvBN  # layout constants documented in network.py
    return table
