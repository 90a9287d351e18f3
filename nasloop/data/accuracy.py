"""The NATS-Bench (NAS-Bench-201 topology) accuracy table: the search objective."""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ArchError, DataError
from ..space import NUM_CELLS, Arch, ArchLike, arch_index

#: objective name -> CSV column (test accuracy in %, 200-epoch training)
DATASETS = {
    "cifar10": "CIFAR10TestAccuracy200Epochs",
    "cifar100": "CIFAR100TestAccuracy200Epochs",
    "imagenet16": "ImageNetTestAccuracy200Epochs",
}


@dataclass
class AccuracyTable:
    """Test accuracy (%) per cell and dataset; arrays indexed by ``arch_index``."""

    source: str
    accuracy: dict[str, np.ndarray]

    def get(self, arch: ArchLike, dataset: str = "cifar10") -> float | None:
        v = self.accuracy[dataset][arch_index(Arch.coerce(arch))]
        return None if math.isnan(v) else float(v)

    def lookup(self, archs: list[Arch], dataset: str = "cifar10") -> np.ndarray:
        idx = np.fromiter((arch_index(a) for a in archs), dtype=np.int64)
        return self.accuracy[dataset][idx]


def load_accuracy_csv(path: str | Path) -> AccuracyTable:
    """Read ``nats_bench.csv`` (columns in :data:`DATASETS` plus ``ArchitectureString``)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read accuracy table {path}: {e}") from None
    reader = csv.DictReader(lines)
    need = ["ArchitectureString", *DATASETS.values()]
    missing = [c for c in need if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; is this nats_bench.csv?")
    acc = {k: np.full(NUM_CELLS, np.nan) for k in DATASETS}
    for row in reader:
        if any(row.get(c) is None for c in need):  # csv leaves missing fields as None
            raise DataError(f"{path}, line {reader.line_num}: the row has fewer columns than the "
                            "header (a truncated file?); re-download nats_bench.csv")
        try:
            i = arch_index(Arch.parse(row["ArchitectureString"]))
            for key, col in DATASETS.items():
                acc[key][i] = float(row[col])
        except (ArchError, ValueError, TypeError) as e:
            raise DataError(f"{path}, line {reader.line_num}: {e}") from None
    return AccuracyTable(str(path), acc)
