import csv

import numpy as np
import pytest

from nasloop.data import load_device
from nasloop.measure.timing import measure_to_csv
from nasloop.measure.zero_cost import synflow
from nasloop.space import Arch, all_archs


def test_measure_resumes_after_interruption(tmp_path):
    cells = [a for a in all_archs() if a.is_connected()][:6]
    out = tmp_path / "m.csv"

    def boom(n, total, row):
        if n == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        measure_to_csv(cells, out, warmup=1, repeats=2, on_cell=boom)
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 3  # rows were flushed as they were measured
    assert measure_to_csv(cells, out, warmup=1, repeats=2) == 3  # only the rest
    rows = list(csv.DictReader(open(out)))
    assert [r["arch"] for r in rows] == [str(a) for a in cells]
    assert (tmp_path / "m.json").is_file()
    table = load_device(str(out))  # the file is a device
    assert len(table) == 6 and all(v > 0 for v in table.lookup(cells))


def test_synflow_prefers_bigger_networks():
    big, small = Arch((3,) * 6), Arch((1, 1, 1, 1, 1, 1))
    assert np.isfinite(synflow(big)) and synflow(big) > synflow(small)


def test_profiled_layerwise_sums_layer_times():
    from nasloop.predictors import create_predictor
    p = create_predictor("layerwise", profile="cpu", repeats=3)
    cells = [Arch((3,) * 6), Arch((2,) * 6)]
    p.fit(cells, [1.0, 1.0])  # profiled mode ignores the latencies
    pred = p.predict(cells)
    t = p.profile_table_
    assert all(v > 0 for v in t.values())
    # all-3x3 cell: 6 conv3x3 per cell, 5 cells per stage, plus stem/reductions/head
    expect = t["fixed"] + sum(30 * t[f"stage{s}/3"] for s in range(3))
    assert pred[0] == pytest.approx(expect)
    assert pred[1] == pytest.approx(t["fixed"] + sum(30 * t[f"stage{s}/2"] for s in range(3)))


def test_noise_statistics_on_known_tables():
    from nasloop.data.tables import LatencyTable
    from nasloop.measure.noise import isomorph_spread, run_to_run
    from nasloop.space import NUM_CELLS, arch_index

    a, b = Arch.from_tuple((3, 2, 2, 1, 0, 0)), Arch.from_tuple((4, 3, 1, 1, 0, 0))  # isomorphic
    c = Arch.from_tuple((3, 3, 3, 3, 3, 3))
    lat = np.full(NUM_CELLS, np.nan)
    lat[[arch_index(a), arch_index(b), arch_index(c)]] = [10.0, 12.0, 5.0]
    spread = isomorph_spread(LatencyTable("t", "", "", lat))
    assert spread["groups"] == 1 and spread["cells"] == 2  # c has no isomorph measured
    np.testing.assert_allclose(spread["median_pct"], (1 / 11 * 100 + 1 / 11 * 100) / 2)
    lat2 = lat.copy()
    lat2[arch_index(c)] = 5.5
    rr = run_to_run(LatencyTable("1", "", "", lat), LatencyTable("2", "", "", lat2))
    assert rr["cells"] == 3 and rr["within_1"] == pytest.approx(200 / 3)
    np.testing.assert_allclose(rr["max_pct"], 0.5 / 5.25 * 100)


def test_profiled_layerwise_calibration_fits_scale_and_offset(monkeypatch):
    import nasloop.measure.profile as profile
    from nasloop.predictors import create_predictor
    cells = [Arch((3,) * 6), Arch((2,) * 6), Arch((4, 3, 2, 1, 0, 3)), Arch((1, 2, 3, 4, 2, 1))]
    plain = create_predictor("layerwise", profile="cpu", repeats=3).fit(cells, [1.0] * 4)
    table = dict(plain.profile_table_)
    monkeypatch.setattr(profile, "profile_layers", lambda *a, **k: table)  # same layer times
    raw = plain.predict(cells)
    target = 2.0 * raw + 0.5  # a device twice as slow plus a fixed overhead
    cal = create_predictor("layerwise", profile="cpu", calibrate=True).fit(cells, target)
    np.testing.assert_allclose(cal.predict(cells), target, rtol=1e-9)
    assert cal.scale_ == pytest.approx(2.0) and cal.offset_ == pytest.approx(0.5)
    uncal = create_predictor("layerwise", profile="cpu").fit(cells, target)
    np.testing.assert_allclose(uncal.predict(cells), raw)  # without calibration: the plain sum
