"""Shared fixtures. Real-data tests need the benchmark folder: $NASLOOP_DATA or ../shared/data.

They are never skipped silently: without data they fail with the fix in the message.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    raw = os.environ.get("NASLOOP_DATA") or str(ROOT.parent / "shared" / "data")
    path = Path(raw)
    if not (path / "eagle").is_dir():
        pytest.fail(f"benchmark data not found at {path}: set NASLOOP_DATA to the folder "
                    "holding eagle/, help/ and nats/")
    return path


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path, data_dir):
    monkeypatch.setenv("NASLOOP_DATA", str(data_dir))
    monkeypatch.setenv("NASLOOP_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def gpu_table(data_dir):
    from nasloop.data import load_device
    return load_device("desktop_gpu", data_dir)


@pytest.fixture(scope="session")
def sample(gpu_table):
    """200 seeded measured cells of desktop_gpu with their latencies (ms)."""
    cells = gpu_table.cells()
    idx = np.random.default_rng(0).permutation(len(cells))[:200]
    archs = [cells[i] for i in idx]
    return archs, gpu_table.lookup(archs)
