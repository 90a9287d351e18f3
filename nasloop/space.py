"""The NAS-Bench-201 cell search space.

A cell is a DAG on 4 nodes whose 6 edges each carry one of 5 operations. :class:`Arch`
is the one value type for a cell everywhere in nasloop: it parses and prints the
NAS-Bench-201 arch string and the BRP-NAS op-index tuple, and it knows the cell's
structure (connectivity, live edges, canonical form).
"""
from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Union

import numpy as np

from .errors import ArchError

#: operation names in BRP-NAS index order (none=0 ... avg_pool_3x3=4)
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
OP_INDEX = {name: i for i, name in enumerate(OPS)}
NONE, SKIP, CONV1, CONV3, POOL = range(5)

#: (from_node, to_node) of the 6 edges, in arch-string order
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
NUM_NODES = 4
NUM_EDGES = len(EDGES)
NUM_CELLS = len(OPS) ** NUM_EDGES  # 15,625

_TUPLE_RE = re.compile(r"^\(?\s*-?\d+(\s*,\s*-?\d+)*\s*,?\s*\)?$")


@dataclass(frozen=True, order=True)
class Arch:
    """An immutable NAS-Bench-201 cell: the op index on each of the 6 edges."""

    ops: tuple[int, ...]

    def __post_init__(self) -> None:
        ops = self.ops
        if not isinstance(ops, tuple):
            raise ArchError(f"Arch.ops must be a tuple of 6 op indices, got {type(ops).__name__}")
        if len(ops) != NUM_EDGES:
            raise ArchError(f"a cell has {NUM_EDGES} edges, got {len(ops)} op indices in {ops!r}")
        for k, o in enumerate(ops):
            if isinstance(o, bool) or not isinstance(o, int) or not 0 <= o < len(OPS):
                raise ArchError(
                    f"op index {o!r} on edge {k} ({EDGES[k][0]}->{EDGES[k][1]}) is out of range: "
                    f"use 0..{len(OPS) - 1} ({', '.join(f'{i}={n}' for i, n in enumerate(OPS))})")

    # ----- construction -------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> "Arch":
        """Parse an arch string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
        if not isinstance(text, str):
            raise ArchError(f"arch string expected, got {type(text).__name__}")
        s = text.strip()
        nodes = s.split("+")
        if len(nodes) != NUM_NODES - 1:
            raise ArchError(
                f"arch {text!r} has {len(nodes)} node groups separated by '+', expected 3 "
                "(form: |op~0|+|op~0|op~1|+|op~0|op~1|op~2|)")
        ops: list[int] = []
        for j, group in enumerate(nodes, start=1):
            if not (group.startswith("|") and group.endswith("|")):
                raise ArchError(f"node group {group!r} in arch {text!r} must be wrapped in '|'")
            items = group[1:-1].split("|")
            if len(items) != j:
                raise ArchError(
                    f"node {j} of arch {text!r} has {len(items)} inputs ({group!r}), expected {j}")
            for i, item in enumerate(items):
                name, sep, src = item.partition("~")
                if not sep or src != str(i):
                    raise ArchError(
                        f"edge {item!r} into node {j} of arch {text!r} should read 'op~{i}'")
                if name not in OP_INDEX:
                    raise ArchError(
                        f"unknown op {name!r} in arch {text!r}; known ops: {', '.join(OPS)}")
                ops.append(OP_INDEX[name])
        # groups list edges per target node: (0,1) | (0,2),(1,2) | (0,3),(1,3),(2,3) == EDGES order
        return cls(tuple(ops))

    @classmethod
    def from_tuple(cls, ops: Iterable[int]) -> "Arch":
        """Build from the BRP-NAS 6-tuple of op indices."""
        try:
            t = tuple(int(o) if not isinstance(o, bool) and float(o) == int(o) else o for o in ops)
        except (TypeError, ValueError):
            raise ArchError(f"op indices must be integers 0..4, got {ops!r}") from None
        return cls(t)

    @classmethod
    def coerce(cls, value: "ArchLike") -> "Arch":
        """Accept an :class:`Arch`, an arch string, a ``"(3,3,1,...)"`` string or a tuple."""
        if isinstance(value, Arch):
            return value
        if isinstance(value, str):
            s = value.strip()
            if _TUPLE_RE.match(s):
                return cls.from_tuple(int(x) for x in s.strip("()").split(",") if x.strip())
            return cls.parse(s)
        if isinstance(value, (tuple, list)):
            return cls.from_tuple(value)
        raise ArchError(f"cannot read an arch from {value!r}: give an arch string or 6 op indices")

    # ----- printing -----------------------------------------------------------------
    def __str__(self) -> str:
        o = [OPS[i] for i in self.ops]
        return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"

    @property
    def arch_str(self) -> str:
        return str(self)

    def to_tuple(self) -> tuple[int, ...]:
        return self.ops

    @property
    def op_names(self) -> tuple[str, ...]:
        return tuple(OPS[i] for i in self.ops)

    # ----- structure ----------------------------------------------------------------
    def neighbours(self) -> list["Arch"]:
        """The 24 cells that differ from this one on exactly one edge."""
        out = []
        for k in range(NUM_EDGES):
            for o in range(len(OPS)):
                if o != self.ops[k]:
                    out.append(Arch(self.ops[:k] + (o,) + self.ops[k + 1:]))
        return out

    def live_edges(self) -> tuple[bool, ...]:
        """Which edges lie on some input-to-output path (``none`` edges never do)."""
        forward = [False] * NUM_NODES
        forward[0] = True
        for k, (i, j) in enumerate(EDGES):  # EDGES is topologically ordered by target
            if self.ops[k] != NONE and forward[i]:
                forward[j] = True
        backward = [False] * NUM_NODES
        backward[3] = True
        for k in reversed(range(NUM_EDGES)):
            i, j = EDGES[k]
            if self.ops[k] != NONE and backward[j]:
                backward[i] = True
        return tuple(self.ops[k] != NONE and forward[i] and backward[j]
                     for k, (i, j) in enumerate(EDGES))

    def is_connected(self) -> bool:
        """Whether any path leads from the input node to the output node."""
        return any(self.live_edges())

    def canonical_key(self) -> str:
        """A key shared by cells that compute the same network (NAS-Bench-201's notion).

        Each node is written as an expression over the input ``0``: an op edge gives
        ``(input)@op``, ``skip_connect`` passes its input's expression through, ``none``
        (or an input that is itself zero) gives the zero term ``#``, and the terms summed
        at a node are sorted so their order does not matter. This is NAS-Bench-201's
        ``UniqueString``: 6,466 distinct keys over the 15,625 cells. (Fully flattening
        nested sums would merge a few more cells; we keep the benchmark's notion so keys
        line up with its tables.)
        """
        node = ["0", "", "", ""]
        for j in range(1, NUM_NODES):
            terms = []
            for k, (i, jj) in enumerate(EDGES):
                if jj != j:
                    continue
                op = self.ops[k]
                if op == NONE or node[i] == "#":
                    terms.append("#")
                elif op == SKIP:
                    terms.append(node[i])
                else:
                    terms.append(f"({node[i]})@{OPS[op]}")
            node[j] = "+".join(sorted(terms))
        return node[3]


ArchLike = Union[Arch, str, tuple, list]


def all_archs() -> Iterator[Arch]:
    """Every cell of the space (15,625), in op-index product order."""
    for ops in itertools.product(range(len(OPS)), repeat=NUM_EDGES):
        yield Arch(ops)


@functools.lru_cache(maxsize=1)
def connected_indices() -> np.ndarray:
    """Indices of the connected cells (an input-output path), ascending; read-only, as
    the array is cached and shared."""
    idx = np.array([i for i, a in enumerate(all_archs()) if a.is_connected()], dtype=np.int64)
    idx.setflags(write=False)
    return idx


def sample_cells(n: int, seed: int) -> list[Arch]:
    """A seeded sample of ``n`` connected cells (cells with an input-output path)."""
    cells = connected_indices()
    idx = np.random.default_rng(seed).permutation(len(cells))[:n]
    return [arch_from_index(int(cells[i])) for i in idx]


def coerce_archs(archs: Iterable[ArchLike]) -> list[Arch]:
    """Coerce many arch-likes, naming the position of the first bad one."""
    out = []
    for n, a in enumerate(archs):
        try:
            out.append(Arch.coerce(a))
        except ArchError as e:
            msg = str(e)
            if not isinstance(a, str) or a.strip() not in msg:  # name the input as given
                msg = f"{a!r}: {msg}"
            raise ArchError(f"arch #{n}: {msg}") from None
    return out


def arch_index(arch: Arch) -> int:
    """Position of ``arch`` in :func:`all_archs` order (0..15,624), for array-backed tables."""
    idx = 0
    for o in arch.ops:
        idx = idx * len(OPS) + o
    return idx


def arch_from_index(index: int) -> Arch:
    """Inverse of :func:`arch_index`."""
    if not 0 <= int(index) < NUM_CELLS:
        raise ArchError(f"cell index {index} is out of range 0..{NUM_CELLS - 1}")
    ops = []
    for _ in range(NUM_EDGES):
        index, o = divmod(int(index), len(OPS))
        ops.append(o)
    return Arch(tuple(reversed(ops)))


@functools.lru_cache(maxsize=1)
def canonical_representatives() -> np.ndarray:
    """For every cell index, the index of the first cell with the same canonical key.

    Lets whole-space consumers (oracles, tables) compute once per isomorphism class.
    """
    first: dict[str, int] = {}
    reps = np.empty(NUM_CELLS, dtype=np.int64)
    for i, arch in enumerate(all_archs()):
        reps[i] = first.setdefault(arch.canonical_key(), i)
    reps.flags.writeable = False
    return reps


def network_ids(archs: Iterable[Arch]) -> np.ndarray:
    """Each cell's network: the index of the first cell with its canonical key, one per
    cell. Cells with one id are isomorphs, one network once dead ops are removed."""
    reps = canonical_representatives()
    return np.array([int(reps[arch_index(a)]) for a in archs], dtype=np.int64)
