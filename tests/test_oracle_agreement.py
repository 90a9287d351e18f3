"""Issue 10: ``search`` and ``predict`` agree on every arch, for every registered backend.

Each backend is fitted cheaply through ``nasloop fit-predictor --out``; ``nasloop predict``
on that folder and the search's oracle built from the same folder must then answer the
same latency for every cell, including isomorphs that differ only in dead ops: one
predictor, one answer per arch (the oracle never answers a cell with its class
representative's prediction).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nasloop.cli import main
from nasloop.predictors import list_predictors
from nasloop.space import Arch, all_archs, arch_index, canonical_representatives

#: cheap settings per backend (tiny GCNs); a backend not listed is fitted with its defaults
_GCN = {"hidden": 16, "epochs": 3, "batch_size": 16, "lr": 3e-3}
FAST: dict[str, dict] = {
    "gcn": {**_GCN, "threads": 1},
    "gcn_plus": _GCN,
    "xgboost": {"n_estimators": 30},
    "auto": {"candidate_params": {"xgboost": {"n_estimators": 30}, "gcn_plus": _GCN,
                                  "gcn_residual": _GCN, "gcn_gated": _GCN}},
}


def _cli(*args: str) -> str:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.stdout


def _isomorph_pairs(n: int) -> list[tuple[Arch, Arch]]:
    """``n`` seeded (cell with dead ops, its class representative) pairs, cell != representative."""
    reps = canonical_representatives()
    every = list(all_archs())
    dead = np.flatnonzero(reps != np.arange(len(reps)))
    pick = np.random.default_rng(0).choice(dead, size=n, replace=False)
    return [(every[i], every[int(reps[i])]) for i in pick]


@pytest.mark.parametrize("name", list_predictors())
def test_search_oracle_and_predict_agree_on_every_arch(name: str, tmp_path: Path, data_dir: Path
                                                       ) -> None:
    from nasloop.data import load_device
    from nasloop.search import get_oracle

    folder = tmp_path / name
    sets = [x for k, v in FAST.get(name, {}).items() for x in ("--set", f"{k}={json.dumps(v)}")]
    _cli("fit-predictor", "-d", "desktop_gpu", "-p", name, "--train", "150", "--val", "30",
         *sets, "--out", str(folder), "--json")

    every = list(all_archs())
    by_predict = np.array([r["latency_ms"] for r in json.loads(
        _cli("predict", "-p", str(folder), "--all", "--json"))])
    oracle = get_oracle(str(folder), load_device("desktop_gpu", data_dir))
    np.testing.assert_array_equal(oracle.latency(every), by_predict)
    if hasattr(oracle, "latency_all"):  # what a search reads, when it asks for every cell
        np.testing.assert_array_equal(oracle.latency_all(), by_predict)

    # cells with dead ops and their representatives, asked by name, in a small batch
    pairs = _isomorph_pairs(40)
    cells = [c for pair in pairs for c in pair]
    rows = json.loads(_cli("predict", "-p", str(folder), *map(str, cells), "--json"))
    asked = np.array([r["latency_ms"] for r in rows])
    np.testing.assert_allclose(oracle.latency(cells), asked, rtol=1e-6, atol=0)
    np.testing.assert_allclose(asked, by_predict[[arch_index(c) for c in cells]], rtol=1e-6, atol=0)
    if name == "linear":  # a backend that sees dead ops tells isomorphs apart: the test bites
        assert not np.allclose(asked[0::2], asked[1::2])
