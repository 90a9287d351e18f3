"""Latency tables: one device's measured latency per cell, always in milliseconds.

A :class:`LatencyTable` is array-backed (index = :func:`~nasloop.space.arch_index`) with
NaN for cells the source did not measure, so missing cells stay missing and lookups of
all 15,625 cells are a single array gather.
"""
from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ArchError, DataError
from ..space import (NUM_CELLS, Arch, ArchLike, arch_from_index, arch_index,
                     canonical_representatives)
from .safe_load import load_pickle, load_torch


@dataclass
class LatencyTable:
    """Measured latency (ms) of cells on one device."""

    name: str
    description: str
    source: str
    latency_ms: np.ndarray  # shape (15625,), NaN where not measured
    notes: list[str] = field(default_factory=list)
    #: the cells actually timed, where ``latency_ms`` also answers their isomorphs
    #: (a deployable table: one network per class); None: every answer was timed
    timed: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.latency_ms = np.asarray(self.latency_ms, dtype=np.float64)
        if self.latency_ms.shape != (NUM_CELLS,):
            raise ValueError("latency_ms must have one entry per cell (15625)")

    @property
    def measured(self) -> np.ndarray:
        """Boolean mask of measured (timed) cells: what splits draw train and test from.

        In a deployable table the isomorphs of a timed cell answer too (``get``,
        ``lookup``) but are not counted here, so no copy of a training network is ever a
        test cell.
        """
        known = ~np.isnan(self.latency_ms)
        return known if self.timed is None else known & self.timed

    def __len__(self) -> int:
        return int(self.measured.sum())

    def __contains__(self, arch: ArchLike) -> bool:
        return not math.isnan(self.latency_ms[arch_index(Arch.coerce(arch))])

    def get(self, arch: ArchLike) -> float | None:
        v = self.latency_ms[arch_index(Arch.coerce(arch))]
        return None if math.isnan(v) else float(v)

    def lookup(self, archs: Iterable[ArchLike]) -> np.ndarray:
        """Latencies of ``archs`` (NaN for unmeasured cells)."""
        idx = np.fromiter((arch_index(Arch.coerce(a)) for a in archs), dtype=np.int64)
        return self.latency_ms[idx]

    def cells(self) -> list[Arch]:
        """The measured cells, in index order."""
        return [arch_from_index(i) for i in np.flatnonzero(self.measured)]

    def summary(self) -> dict:
        v = self.latency_ms[self.measured]
        return {
            "name": self.name, "description": self.description, "source": self.source,
            "cells": int(v.size),
            "median_ms": float(np.median(v)) if v.size else None,
            "min_ms": float(v.min()) if v.size else None,
            "max_ms": float(v.max()) if v.size else None,
        }


def _check_latency(path: Path, where: str, value: object) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"{path}: latency for {where} is not a number ({value!r})") from None
    if not math.isfinite(v) or v <= 0:
        raise DataError(f"{path}: latency for {where} is {v}, expected a positive number")
    return v


def load_brpnas_pickle(path: str | Path, name: str, description: str) -> LatencyTable:
    """A BRP-NAS (Eagle) pickle: ``{(o1..o6): seconds}``."""
    path = Path(path)
    raw = load_pickle(path)
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a dict of op-index tuples to latencies, "
                        f"found {type(raw).__name__}")
    lat = np.full(NUM_CELLS, np.nan)
    for key, value in raw.items():
        try:
            arch = Arch.from_tuple(key) if isinstance(key, tuple) else None
        except ArchError:
            arch = None
        if arch is None:
            raise DataError(f"{path}: key {key!r} is not a tuple of 6 op indices 0..4")
        lat[arch_index(arch)] = _check_latency(path, str(key), value) * 1e3  # s -> ms
    return LatencyTable(name, description, str(path), lat)


def load_help_arch2idx(path: str | Path) -> dict[str, int]:
    """HELP's ``str_arch2idx.pt``: arch string -> NAS-Bench-201 index."""
    path = Path(path)
    raw = load_torch(path)
    if not isinstance(raw, dict) or len(raw) != NUM_CELLS:
        raise DataError(f"{path}: expected a dict of {NUM_CELLS} arch strings to indices")
    return raw


def load_help_latency(path: str | Path, arch2idx: dict[str, int], name: str,
                      description: str) -> LatencyTable:
    """A HELP ``latency/<device>.pt``: list of ms in NAS-Bench-201 index order."""
    path = Path(path)
    raw = load_torch(path)
    if hasattr(raw, "tolist"):
        raw = raw.tolist()
    if not isinstance(raw, list) or len(raw) != NUM_CELLS:
        raise DataError(f"{path}: expected a list of {NUM_CELLS} latencies in ms, "
                        f"found {type(raw).__name__} of length {len(raw) if hasattr(raw, '__len__') else '?'}")
    lat = np.full(NUM_CELLS, np.nan)
    for arch_str, nb_idx in arch2idx.items():
        try:
            arch = Arch.parse(arch_str)
        except ArchError as e:
            raise DataError(f"str_arch2idx.pt: {e}") from None
        if not isinstance(nb_idx, int) or not 0 <= nb_idx < NUM_CELLS:
            raise DataError(f"str_arch2idx.pt: index {nb_idx!r} for {arch_str} is out of range")
        lat[arch_index(arch)] = _check_latency(path, arch_str, raw[nb_idx])
    return LatencyTable(name, description, str(path), lat)


@dataclass
class CsvProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def load_csv_table(path: str | Path, *, skip_bad_rows: bool = False,
                   name: str | None = None, description: str | None = None) -> LatencyTable:
    """A user's measurements: a CSV with columns ``arch,latency_ms``.

    ``arch`` is an arch string or a 6-tuple like ``(3,3,1,0,2,4)``. Bad rows (duplicates,
    NaN, zero or negative latency, unreadable archs) are all reported with line numbers;
    with ``skip_bad_rows`` they are left out and listed in ``table.notes`` instead.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"device CSV {path} is not UTF-8 text (byte {e.object[e.start]:#04x} at "
                        f"offset {e.start}): give a text CSV with the header arch,latency_ms") from None
    except OSError as e:
        raise DataError(f"cannot read device CSV {path}: {e.strerror or e}") from None
    if "\x00" in text:
        raise DataError(f"device CSV {path} holds NUL bytes, so it is not a text CSV: give a "
                        "text file with the header arch,latency_ms")
    try:
        return _parse_csv_table(path, text, skip_bad_rows, name, description)
    except csv.Error as e:
        raise DataError(f"device CSV {path} is not a readable CSV ({e}): give a text file with "
                        "the header arch,latency_ms") from None


def _parse_csv_table(path: Path, text: str, skip_bad_rows: bool, name: str | None,
                     description: str | None) -> LatencyTable:
    reader = csv.DictReader(text.splitlines())
    cols = [c.strip() for c in (reader.fieldnames or [])]
    if "arch" not in cols or "latency_ms" not in cols:
        raise DataError(f"{path}: a device CSV needs the header 'arch,latency_ms' "
                        f"(found {','.join(cols) or 'no header'})")
    twice = sorted({c for c in cols if c and cols.count(c) > 1})  # blanks: trailing commas
    if twice:
        raise DataError(f"{path}: the header names {', '.join(twice)} more than once; keep "
                        "one column of each")
    lat = np.full(NUM_CELLS, np.nan)
    first_line: dict[int, int] = {}
    problems: list[CsvProblem] = []
    for row in reader:
        line = reader.line_num
        extra = [f for f in row.get(None) or [] if f.strip()]  # fields beyond the header
        if extra:  # (a trailing comma leaves an empty one: harmless)
            tup = (row.get("arch") or "").strip().startswith("(")
            problems.append(CsvProblem(line, f"{len(extra)} more field(s) than the header "
                                             f"({','.join(cols)})" + (
                                                 "; quote an arch written as a tuple"
                                                 if tup else "")))
            continue
        row = {(k or "").strip(): v for k, v in row.items()}
        try:
            arch = Arch.coerce((row.get("arch") or "").strip())
        except ArchError as e:
            problems.append(CsvProblem(line, f"unknown arch: {e}"))
            continue
        try:
            v = float((row.get("latency_ms") or "").strip())
        except ValueError:
            problems.append(CsvProblem(line, f"latency_ms {row.get('latency_ms')!r} is not a number"))
            continue
        if math.isnan(v):
            problems.append(CsvProblem(line, "latency_ms is NaN"))
            continue
        if not math.isfinite(v) or v <= 0:
            problems.append(CsvProblem(line, f"latency_ms is {v}; it must be a finite "
                                             "positive number"))
            continue
        i = arch_index(arch)
        if i in first_line:
            same = lat[i] == v
            problems.append(CsvProblem(line, f"duplicate of line {first_line[i]} ({arch})" + (
                "" if same else f", with another latency ({v:g} ms here, {lat[i]:g} ms "
                                "there): keep the right one")))
            continue
        first_line[i] = line
        lat[i] = v
    if problems and not skip_bad_rows:
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise DataError(f"{path}: {len(problems)} bad row(s): {shown}{more}. Fix them, or pass "
                        "--skip-bad-rows to use the remaining rows")
    if not first_line:
        raise DataError(f"{path}: no usable rows; expected lines like "
                        "'|nor_conv_3x3~0|+|...|,4.2'")
    table = LatencyTable(name or path.stem, description or f"user measurements from {path.name}",
                         str(path), lat)
    table.notes = [f"skipped {p}" for p in problems]
    if sidecar_network(path) == "deployable":
        # not a warning: in the deployable form isomorphic cells are one network
        timed = ~np.isnan(table.latency_ms)
        filled = fill_isomorphs(table.latency_ms)
        if filled:
            table.timed = timed
            table.description += f" ({filled:,} more cells answered by a timed isomorph)"
    return table


def read_sidecar(csv_path: Path) -> dict | None:
    """The JSON object in a measured CSV's ``.json`` sidecar (``nasloop measure`` writes
    one); None when it is missing, unreadable or not an object."""
    try:
        meta = json.loads(csv_path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def sidecar_network(path: Path) -> str | None:
    """The network form recorded in a measured CSV's sidecar, if any.

    A missing or unreadable sidecar means "unknown" and the table is used as it is.
    """
    form = (read_sidecar(path) or {}).get("network")
    return form if isinstance(form, str) else None


def fill_isomorphs(latency_ms: np.ndarray) -> int:
    """Give each unmeasured cell the mean of its measured isomorphs, in place.

    In the deployable form isomorphic cells are the same network, so one timing per
    class (``nasloop measure --all`` times the 6,466 classes) covers all 15,625 cells.
    Returns the number of cells filled.
    """
    reps = canonical_representatives()
    known = ~np.isnan(latency_ms)
    sums = np.bincount(reps[known], weights=latency_ms[known], minlength=NUM_CELLS)
    counts = np.bincount(reps[known], minlength=NUM_CELLS)
    todo = ~known & (counts[reps] > 0)
    latency_ms[todo] = sums[reps[todo]] / counts[reps[todo]]
    return int(todo.sum())
