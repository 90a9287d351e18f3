import csv
import json

import numpy as np
import pytest

from nasloop.data import load_device
from nasloop.measure.timing import TimingProtocol, measure_to_csv
from nasloop.measure.zero_cost import synflow
from nasloop.space import Arch, all_archs


def test_measure_resumes_after_interruption(tmp_path):
    cells = [a for a in all_archs() if a.is_connected()][:6]
    out = tmp_path / "m.csv"

    def boom(n, total, row):
        if n == 3:
            raise KeyboardInterrupt

    quick = TimingProtocol(rounds=2, warmup=1, repeats=2, block=3)
    with pytest.raises(KeyboardInterrupt):
        measure_to_csv(cells, out, protocol=quick, on_cell=boom)
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 3  # the first block was flushed as soon as it was measured
    assert measure_to_csv(cells, out, protocol=quick) == 3  # only the rest
    rows = list(csv.DictReader(open(out)))
    assert [r["arch"] for r in rows] == [str(a) for a in cells]
    assert (tmp_path / "m.json").is_file()
    table = load_device(str(out))  # the file is a device
    assert len(table) == 6 and all(v > 0 for v in table.lookup(cells))


def test_a_resume_drops_a_row_cut_by_an_interrupted_write(tmp_path):
    """A kill mid-write leaves a row without its line end: the resume cuts it (with a
    warning) and measures that cell again, instead of gluing the next row onto it."""
    cells = [a for a in all_archs() if a.is_connected()][:3]
    out = tmp_path / "m.csv"
    quick = TimingProtocol(rounds=1, warmup=0, repeats=1, block=3)
    assert measure_to_csv(cells[:2], out, protocol=quick) == 2
    text = out.read_text()
    out.write_text(text[:-25])  # the second row cut short
    with pytest.warns(UserWarning, match="dropped a partial last row"):
        assert measure_to_csv(cells, out, protocol=quick) == 2  # the cut cell and the new one
    rows = list(csv.DictReader(open(out)))
    assert [r["arch"] for r in rows] == [str(a) for a in cells]
    assert len(load_device(str(out))) == 3


def test_rows_without_a_sidecar_are_not_appended_to(tmp_path):
    """A CSV whose protocol is unknown (no sidecar) would mix protocols: refused."""
    from nasloop.errors import ConfigError

    cells = [a for a in all_archs() if a.is_connected()][:2]
    out = tmp_path / "m.csv"
    quick = TimingProtocol(rounds=1, warmup=0, repeats=1)
    measure_to_csv(cells[:1], out, protocol=quick)
    (tmp_path / "m.json").unlink()
    before = out.read_text()
    with pytest.raises(ConfigError, match="no m.json recording how they were measured"):
        measure_to_csv(cells, out, protocol=quick)
    assert out.read_text() == before and not (tmp_path / "m.json").exists()


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
    from nasloop.measure.noise import isomorph_loo, isomorph_spread, run_to_run
    from nasloop.space import NUM_CELLS, arch_index

    a, b = Arch.from_tuple((3, 2, 2, 1, 0, 0)), Arch.from_tuple((4, 3, 1, 1, 0, 0))  # isomorphic
    c = Arch.from_tuple((3, 3, 3, 3, 3, 3))
    lat = np.full(NUM_CELLS, np.nan)
    lat[[arch_index(a), arch_index(b), arch_index(c)]] = [10.0, 12.0, 5.0]
    spread = isomorph_spread(LatencyTable("t", "", "", lat))
    assert spread["groups"] == 1 and spread["cells"] == 2  # c has no isomorph measured
    np.testing.assert_allclose(spread["median_pct"], (1 / 11 * 100 + 1 / 11 * 100) / 2)
    loo = {s["band"]: s for s in isomorph_loo(LatencyTable("t", "", "", lat))}
    assert loo["2"]["cells"] == 2 and loo["3-4"]["cells"] == 0
    np.testing.assert_allclose(loo["2"]["max_pct"], 2 / 10 * 100)  # 12 against the other's 10
    np.testing.assert_allclose(loo["2"]["median_pct"], (2 / 10 + 2 / 12) / 2 * 100)
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


def test_a_resume_with_another_protocol_is_refused(tmp_path):
    from nasloop.errors import ConfigError

    cells = [a for a in all_archs() if a.is_connected()][:2]
    out = tmp_path / "m.csv"
    measure_to_csv(cells, out, protocol=TimingProtocol(rounds=1, warmup=0, repeats=1))
    with pytest.raises(ConfigError, match="another protocol.*rounds 1 -> 2"):
        measure_to_csv(cells, out, protocol=TimingProtocol(rounds=2, warmup=0, repeats=1))
    with pytest.raises(ConfigError, match="network 'deployable' -> 'reference'"):
        measure_to_csv(cells, out, protocol=TimingProtocol(rounds=1, warmup=0, repeats=1,
                                                           network="reference"))
    side = json.loads((tmp_path / "m.json").read_text())
    assert side["network"] == "deployable" and side["protocol"]["rounds"] == 1


def test_a_table_from_before_cuda_graphs_resumes_as_eager(tmp_path):
    from nasloop.errors import ConfigError
    from nasloop.measure.timing import check_sidecar

    cells = [a for a in all_archs() if a.is_connected()][:2]
    out = tmp_path / "m.csv"
    quick = TimingProtocol(rounds=1, warmup=0, repeats=1)
    measure_to_csv(cells[:1], out, protocol=quick)
    side = json.loads((tmp_path / "m.json").read_text())
    assert side["protocol"]["graph"] is False
    del side["protocol"]["graph"]  # a sidecar written before the option existed
    (tmp_path / "m.json").write_text(json.dumps(side))
    assert measure_to_csv(cells, out, protocol=quick) == 1
    graphed = TimingProtocol(rounds=1, warmup=0, repeats=1, graph=True)
    with pytest.raises(ConfigError, match="graph False -> True"):
        check_sidecar(tmp_path / "m.json", graphed, "cpu")
    with pytest.raises(ConfigError, match="needs --device cuda"):
        measure_to_csv(cells, tmp_path / "g.csv",
                       protocol=TimingProtocol(rounds=1, warmup=0, repeats=1, graph=True))
    assert not (tmp_path / "g.csv").exists()


def test_a_table_without_a_recorded_protocol_resumes_only_as_the_old_protocol(tmp_path):
    from nasloop.errors import ConfigError

    out = tmp_path / "old.csv"
    out.write_text("arch,latency_ms,median_ms,iqr_ms,min_ms,repeats\n")
    (tmp_path / "old.json").write_text(json.dumps({"device": "cpu", "threads": 1, "batch": 1,
                                                   "warmup": 10, "repeats": 50}))
    cell = [a for a in all_archs() if a.is_connected()][:1]
    with pytest.raises(ConfigError, match="network 'reference' -> 'deployable'"):
        measure_to_csv(cell, out, protocol=TimingProtocol(warmup=0, repeats=1))
    old = TimingProtocol(network="reference", rounds=1, warmup=10, repeats=50, statistic="median")
    assert measure_to_csv(cell, out, protocol=old) == 1
    rows = list(csv.DictReader(open(out)))  # appended in the file's own columns
    assert list(rows[0]) == ["arch", "latency_ms", "median_ms", "iqr_ms", "min_ms", "repeats"]


def test_timing_restores_torch_threads(tmp_path):
    import torch

    from nasloop.measure.profile import profile_layers

    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    cells = [a for a in all_archs() if a.is_connected()][:1]
    measure_to_csv(cells, tmp_path / "t.csv",
                   protocol=TimingProtocol(rounds=1, warmup=0, repeats=1, threads=target))
    assert torch.get_num_threads() == before
    profile_layers("cpu", repeats=1, threads=target)
    assert torch.get_num_threads() == before


def test_shaky_cells_get_more_rounds(monkeypatch):
    import nasloop.measure.timing as timing

    visits: dict = {}
    ran: list = []

    class Spy(timing.CellNetwork):  # tells the fake timer which cell's forward it ran
        def forward(self, x):
            ran.append(self.arch)
            return super().forward(x)

    def fake(run, *, cuda, warmup, repeats):
        run()
        arch = ran[-1]
        n = visits[arch] = visits.get(arch, 0) + 1
        wild = arch == cells[0] and n % 2  # cell 0's rounds disagree, cell 1's agree
        return [10.0 if wild else 1.0] * repeats

    cells = [a for a in all_archs() if a.is_connected()][:2]
    monkeypatch.setattr(timing, "CellNetwork", Spy)
    monkeypatch.setattr(timing, "time_calls", fake)
    rows = timing.measure_block(cells, "cpu", TimingProtocol(rounds=3, repeats=2, warmup=0,
                                                             remeasure_pct=10.0))
    assert rows[0]["rounds"] == 6 and rows[0]["spread_pct"] > 10
    assert rows[1]["rounds"] == 3 and rows[1]["spread_pct"] == 0
    assert rows[1]["latency_ms"] == 1.0
    visits.clear()  # the default protocol re-times nothing: every cell gets its 3 rounds
    rows = timing.measure_block(cells, "cpu", TimingProtocol(rounds=3, repeats=2, warmup=0))
    assert [r["rounds"] for r in rows] == [3, 3] and rows[0]["latency_ms"] == 1.0


@pytest.mark.parametrize("network", ["deployable", "reference"])
def test_live_validation_times_exactly_the_cell_asked(monkeypatch, network):
    import nasloop.workflow.live as live

    timed = []
    monkeypatch.setattr(live, "measure_arch", lambda a, *args, network, **kw: timed.append(
        (str(a), network)) or {"latency_ms": 1.0 + len(timed)})
    a = Arch.parse("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|")
    b = Arch.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|")
    assert a.canonical_key() == b.canonical_key() and a != b  # isomorphs, b has a dead conv
    oracle = live.MeasureOracle("cpu", network=network)
    oracle.latency([b]), oracle.latency([a])
    if network == "reference":  # different networks: each timed as itself
        assert timed == [(str(b), "reference"), (str(a), "reference")]
    else:  # one deployable network (the dead conv is not built): timed once, shared
        assert [n for _, n in timed] == ["deployable"]
        from nasloop.network import network_cost
        assert network_cost(Arch.parse(timed[0][0])) == network_cost(a) == network_cost(b)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cuda_graph_replays_the_forward_pass_of_new_inputs():
    import torch

    from nasloop.measure.timing import graph_replay
    from nasloop.network import INPUT_SHAPE, CellNetwork

    cell = [a for a in all_archs() if a.is_connected()][100]
    model = CellNetwork(cell).eval().cuda()
    x = torch.randn(2, *INPUT_SHAPE, device="cuda")
    with torch.inference_mode():
        replay = graph_replay(model, x)
        for _ in range(2):  # the graph reads x's memory: new inputs give new outputs
            x.copy_(torch.randn_like(x))
            eager = model(x).clone()
            got = replay().clone()
            torch.testing.assert_close(got, eager, rtol=1e-3, atol=1e-3)


def test_cuda_graph_timing_is_refused_off_a_gpu_before_anything_is_timed(monkeypatch):
    """measure_arch and the live mode refuse --cuda-graph on the CPU in one clear error,
    and the live mode does so before it times a single cell."""
    from nasloop.errors import ConfigError
    from nasloop.measure import timing
    from nasloop.measure.timing import measure_arch
    from nasloop.workflow.live import live_search

    cell = next(a for a in all_archs() if a.is_connected())
    with pytest.raises(ConfigError, match="--cuda-graph .*needs --device cuda"):
        measure_arch(cell, "cpu", graph=True)
    monkeypatch.setattr(timing, "measure_block", lambda *a, **k: pytest.fail("timed a cell"))
    with pytest.raises(ConfigError, match="--cuda-graph .*needs --device cuda"):
        live_search("cpu", 5.0, graph=True)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_measure_arch_times_a_cuda_graph_on_a_gpu():
    from nasloop.measure.timing import measure_arch

    cell = [a for a in all_archs() if a.is_connected()][100]
    row = measure_arch(cell, "cuda", warmup=2, repeats=5, graph=True)
    assert row["latency_ms"] > 0
