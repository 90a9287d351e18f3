"""The full NAS-Bench-201 CIFAR network of a cell, with exact FLOPs and parameter counts.

Layout (as in NAS-Bench-201): a 3x3 stem conv to 16 channels, three stages of 5 cells at
16/32/64 channels and 32/16/8 pixels, residual reduction blocks between stages, then
BN-ReLU, global average pooling and a linear classifier. Each conv op is ReLU-Conv-BN.
FLOPs here are multiply-accumulates of conv and linear layers (NAS-Bench-201's convention).

Two forms of a cell's network (``form``):

* ``deployable`` (the default): only the ops on an input-to-output path are built, as a
  compiler would leave them (an op whose output no one reads is removed, ``none`` is no
  layer). Isomorphic cells (same canonical key) are then the same network.
* ``reference``: NAS-Bench-201's training network, every edge executed, ``none`` as a
  multiplication by zero. Isomorphs differ here (dead ops still run).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .space import EDGES, NONE, OPS, SKIP, CONV1, CONV3, Arch, ArchLike

STAGE_CHANNELS = (16, 32, 64)
STAGE_RESOLUTION = (32, 16, 8)
CELLS_PER_STAGE = 5
STEM_CHANNELS = 16
INPUT_SHAPE = (3, 32, 32)


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1):
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, bias=False),
                         nn.BatchNorm2d(c_out))


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def _op(op: int, c: int) -> nn.Module:
    if op == NONE:
        return Zero()
    if op == SKIP:
        return nn.Identity()
    if op == CONV1:
        return ReLUConvBN(c, c, 1)
    if op == CONV3:
        return ReLUConvBN(c, c, 3)
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


#: the forms a cell's network can be built in (module docstring)
FORMS = ("deployable", "reference")


def check_form(form: str) -> str:
    """``form`` if it is one of :data:`FORMS`, else one clear error."""
    if form not in FORMS:
        from .errors import ConfigError
        raise ConfigError(f"network form must be one of {', '.join(FORMS)}, got {form!r}")
    return form


class Cell(nn.Module):
    """One cell; in the deployable form only its live edges exist."""

    def __init__(self, arch: Arch, c: int, form: str = "deployable"):
        super().__init__()
        live = arch.live_edges() if check_form(form) == "deployable" else (True,) * len(EDGES)
        #: which edges are built (the others hold a parameter-free placeholder)
        self.keep = tuple(bool(k) for k in live)
        self.edges = nn.ModuleList(_op(o, c) if k else nn.Identity()
                                   for o, k in zip(arch.ops, self.keep))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x]
        for j in range(1, 4):
            terms = [self.edges[k](nodes[i]) for k, (i, jj) in enumerate(EDGES)
                     if jj == j and self.keep[k] and nodes[i] is not None]
            nodes.append(sum(terms) if terms else None)
        # no path from input to output (deployable form): the cell's output is zero
        return nodes[3] if nodes[3] is not None else torch.zeros_like(x)


class ResBlock(nn.Module):
    """Stride-2 residual block between stages."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


class CellNetwork(nn.Module):
    """The CIFAR network of one cell, in the ``deployable`` or ``reference`` form."""

    def __init__(self, arch: ArchLike, num_classes: int = 10, form: str = "deployable"):
        super().__init__()
        arch = Arch.coerce(arch)
        self.arch, self.form = arch, check_form(form)
        layers: list[nn.Module] = [nn.Sequential(
            nn.Conv2d(3, STEM_CHANNELS, 3, padding=1, bias=False), nn.BatchNorm2d(STEM_CHANNELS))]
        c_prev = STEM_CHANNELS
        for s, c in enumerate(STAGE_CHANNELS):
            if s > 0:
                layers.append(ResBlock(c_prev, c))
            layers.extend(Cell(arch, c, form) for _ in range(CELLS_PER_STAGE))
            c_prev = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(c_prev, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass(frozen=True)
class Cost:
    flops: int  # multiply-accumulates of conv + linear layers
    params: int


def _conv(c_in: int, c_out: int, k: int, hw: int) -> tuple[int, int]:
    return c_in * c_out * k * k * hw * hw, c_in * c_out * k * k


def cell_cost(arch: Arch, c: int, hw: int, form: str = "deployable") -> Cost:
    """FLOPs and params of one cell at ``c`` channels and ``hw`` pixels."""
    flops = params = 0
    live = arch.live_edges() if check_form(form) == "deployable" else (True,) * len(EDGES)
    for op, keep in zip(arch.ops, live):
        if keep and op in (CONV1, CONV3):
            f, p = _conv(c, c, 1 if op == CONV1 else 3, hw)
            flops, params = flops + f, params + p + 2 * c  # + BN affine
    return Cost(flops, params)


def network_cost(arch: ArchLike, num_classes: int = 10, form: str = "deployable") -> Cost:
    """Exact FLOPs and parameters of :class:`CellNetwork` for ``arch``, computed analytically."""
    arch = Arch.coerce(arch)
    f, p = _conv(3, STEM_CHANNELS, 3, 32)
    flops, params = f, p + 2 * STEM_CHANNELS
    c_prev = STEM_CHANNELS
    for s, (c, hw) in enumerate(zip(STAGE_CHANNELS, STAGE_RESOLUTION)):
        if s > 0:
            for (ci, co, k) in ((c_prev, c, 3), (c, c, 3)):
                f, p = _conv(ci, co, k, hw)
                flops, params = flops + f, params + p + 2 * co
            f, p = _conv(c_prev, c, 1, hw)
            flops, params = flops + f, params + p
        cc = cell_cost(arch, c, hw, form)
        flops, params = flops + CELLS_PER_STAGE * cc.flops, params + CELLS_PER_STAGE * cc.params
        c_prev = c
    params += 2 * c_prev + c_prev * num_classes + num_classes
    flops += c_prev * num_classes
    return Cost(flops, params)


def measure_cost(model: nn.Module) -> Cost:
    """FLOPs and params counted from the module itself (forward hooks), to check the formula."""
    flops = 0

    def hook(mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        nonlocal flops
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            flops += out.numel() * (mod.in_channels // mod.groups) * k
        elif isinstance(mod, nn.Linear):
            flops += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *INPUT_SHAPE))
    finally:
        for h in handles:
            h.remove()
    return Cost(flops, sum(p.numel() for p in model.parameters()))


__all__ = ["CellNetwork", "Cost", "FORMS", "network_cost", "cell_cost", "measure_cost", "OPS"]
