"""The live mode's budget guard: out-of-fold margins and refits on failed finalists."""
import numpy as np
import pytest

from nasloop.data import load_accuracy, load_device
from nasloop.errors import ConfigError
from nasloop.predictors import Predictor, create_predictor, cross_val_predict
from nasloop.search import Calibration, SearchConfig, TableOracle, conformal_margin
from nasloop.search.adaptive import AdaptiveConfig, adaptive_search, calibrated_oracle
from nasloop.search.oracles import PredictorOracle, calibration_cells_needed
from nasloop.space import arch_index, canonical_representatives, sample_cells

TABLE = {}


class Under(Predictor):
    """Knows the cells it was fitted on; says 80 % of the truth elsewhere (an optimist)."""

    name = "under"

    def __init__(self, *, scale: float = 0.8):
        self.scale = scale

    def _fit(self, x, y, val, progress):
        self.known_ = dict(zip(x, y))

    def _predict(self, x):
        t = TABLE["t"]
        return np.array([self.known_.get(a, self.scale * float(t.lookup([a])[0])) for a in x])

    def _save_state(self, folder):
        raise NotImplementedError

    def _load_state(self, folder):
        raise NotImplementedError


@pytest.fixture(scope="module")
def cpu(data_dir):
    TABLE["t"] = load_device("desktop_cpu", data_dir)
    return TABLE["t"], load_accuracy(data_dir)


def test_out_of_fold_predictions_never_see_their_cell(cpu):
    table, _ = cpu
    cells = sample_cells(12, 0)
    y = table.lookup(cells)
    for folds in (3, 12, 50):  # 12 and 50: leave-one-out
        oof = cross_val_predict(Under(), cells, y, folds=folds, seed=1)
        assert np.allclose(oof, 0.8 * y)  # no copy predicted a cell it was fitted on
    a = cross_val_predict(create_predictor("linear"), sample_cells(40, 0),
                          table.lookup(sample_cells(40, 0)), folds=5, seed=3)
    b = cross_val_predict(create_predictor("linear"), sample_cells(40, 0),
                          table.lookup(sample_cells(40, 0)), folds=5, seed=3)
    assert np.array_equal(a, b) and np.isfinite(a).all()
    with pytest.raises(ConfigError, match="at least 2"):
        cross_val_predict(Under(), cells[:1], y[:1])


def test_margin_from_out_of_fold_predictions(cpu):
    table, _ = cpu
    cells = sample_cells(30, 0)
    y = table.lookup(cells)
    oracle = calibrated_oracle(Under(), cells, y, name="under", folds=10)
    # in-sample the optimist is exact; out of fold it says 80 %: the margin is 1/0.8
    assert np.allclose(oracle.latency(cells), y)
    assert conformal_margin(oracle, 0.9) == pytest.approx(1.25)
    # given out-of-sample predictions are used as they are
    cal = Calibration(tuple(cells), tuple(y), "test", tuple(0.5 * y))
    oracle.calibration = cal
    assert conformal_margin(oracle, 0.9) == pytest.approx(2.0)
    assert [calibration_cells_needed(c) for c in (0.8, 0.9, 0.95)] == [4, 9, 19]


def test_a_predictors_own_held_out_cells_are_used_when_enough(cpu, monkeypatch):
    table, _ = cpu
    cells = sample_cells(30, 0)
    y = table.lookup(cells)

    class Holds(Under):
        def _fit(self, x, y, val, progress):
            super()._fit(x, y, val, progress)
            self.held_out_ = (x[:10], y[:10], 0.5 * y[:10])

    called = []
    monkeypatch.setattr("nasloop.search.adaptive.cross_val_predict",
                        lambda *a, **k: called.append(1) or 0.8 * np.asarray(a[2]))
    o = calibrated_oracle(Holds(), cells, y, name="h", least=9)
    assert not called and len(o.calibration.cells) == 10
    assert "validation cells" in o.calibration.source
    o = calibrated_oracle(Holds(), cells, y, name="h", least=19)  # too few: cross-validate
    assert called and len(o.calibration.cells) == 30


def test_margin_turns_a_failing_optimist_into_a_passing_search(cpu):
    table, acc = cpu
    cells = sample_cells(30, 0)
    y = table.lookup(cells)
    budget = float(np.nanmedian(table.latency_ms))
    common = dict(validator=TableOracle(table), table=table)
    bare = adaptive_search(Under(), cells, y, table.lookup, budget, acc, SearchConfig(seed=0),
                           AdaptiveConfig(confidence=None, rounds=1, fallback=False), **common)
    assert bare.failed and bare.best is None and bare.margin == 1.0
    guarded = adaptive_search(Under(), cells, y, table.lookup, budget, acc,
                              SearchConfig(seed=0), AdaptiveConfig(confidence=0.9, rounds=1),
                              **common)
    assert not guarded.failed and guarded.best.true_latency_ms <= budget
    assert guarded.margin == pytest.approx(1.25) and guarded.confidence == 0.9
    assert guarded.cells_measured == 30 and guarded.rounds == 1


def test_a_failed_search_falls_back_to_the_best_measured_cell_under_the_budget(cpu):
    table, acc = cpu
    cells = sample_cells(30, 0)
    y = table.lookup(cells)
    budget = float(np.nanmedian(table.latency_ms))
    run = lambda fb: adaptive_search(  # noqa: E731
        Under(), cells, y, table.lookup, budget, acc, SearchConfig(seed=0),
        AdaptiveConfig(confidence=None, rounds=1, fallback=fb), validator=TableOracle(table),
        table=table)
    bare, fb = run(False), run(True)
    assert bare.failed and bare.best is None and not bare.fallback
    assert not fb.failed and fb.fallback and "shipped instead" in fb.message
    # the answer was measured (a fitted cell or a checked finalist) and truly meets the budget
    measured = {str(a): float(v) for a, v in zip(cells, y)}
    measured.update({c.arch: c.true_latency_ms for c in bare.finalists})
    assert fb.best.arch in measured and measured[fb.best.arch] == fb.best.true_latency_ms <= budget
    # the most accurate of the measured cells under the budget that the search evaluated;
    # if it evaluated none (here), of the `top` slowest of them, each one more evaluation
    seen = {h["arch"]: h["accuracy"] for h in bare.history}
    under = sorted((-v, a) for a, v in measured.items() if v <= budget)
    pool = [seen[a] for _, a in under if a in seen]
    extra = 0 if pool else min(5, len(under))
    pool = pool or [acc.get(a) for _, a in under[:5]]
    assert fb.best.accuracy == max(pool)
    assert fb.accuracy_evaluations == bare.accuracy_evaluations + extra
    assert fb.true_checks == bare.true_checks + 1  # the pick is checked like a finalist
    assert fb.regret == pytest.approx(fb.optimum["accuracy"] - fb.best.accuracy)
    assert fb.finalists == bare.finalists  # the search itself is the same


class _Fixed(TableOracle):
    """A validator that answers one latency for every cell (and says whether isomorphs
    share their timing)."""

    def __init__(self, table, ms: float, share: bool):
        super().__init__(table)
        self.ms, self.canonical_cache = ms, share

    def latency(self, archs):
        return np.full(len(archs), self.ms)


def test_the_fallback_checks_its_pick_and_reads_isomorphs_as_one_network(cpu):
    import dataclasses

    from nasloop.search.adaptive import fall_back_to_measured
    from nasloop.space import arch_from_index

    table, acc = cpu
    cells = sample_cells(30, 0)
    y = table.lookup(cells)
    budget = float(np.nanmedian(table.latency_ms))
    bare = adaptive_search(Under(), cells, y, table.lookup, budget, acc, SearchConfig(seed=0),
                           AdaptiveConfig(confidence=None, rounds=1, fallback=False),
                           validator=TableOracle(table), table=table)
    cfg = SearchConfig(seed=0, top=3)
    # every re-check over the budget: nothing shipped, each check counted (at most --top)
    res = dataclasses.replace(bare)
    fall_back_to_measured(res, cells, y, {}, budget, {}, acc, cfg,
                          _Fixed(table, 10 * budget, share=False))
    assert res.failed and res.best is None and res.true_checks == bare.true_checks + 3
    # a fitted cell under the budget whose isomorph was checked over it is one network:
    # over the budget, never shipped
    reps = canonical_representatives()
    a = next(c for c, v in zip(cells, y) if v <= budget
             and np.sum(reps == reps[arch_index(c)]) > 1)
    twin = next(arch_from_index(int(i)) for i in np.flatnonzero(reps == reps[arch_index(a)])
                if i != arch_index(a))
    res = dataclasses.replace(bare)
    fall_back_to_measured(res, [a], np.array([budget * 0.9]), {twin: budget * 1.1}, budget, {},
                          acc, cfg, _Fixed(table, budget * 0.5, share=True))
    assert res.failed and res.best is None
    res = dataclasses.replace(bare)  # the same timings, isomorphs not shared: shipped
    fall_back_to_measured(res, [a], np.array([budget * 0.9]), {twin: budget * 1.1}, budget, {},
                          acc, cfg, _Fixed(table, budget * 0.5, share=False))
    assert not res.failed and res.fallback and res.best.arch == str(a)
    assert res.best.true_latency_ms == pytest.approx(budget * 0.9)  # the larger timing


def test_refits_measure_only_the_failed_finalists(cpu):
    table, acc = cpu
    cells = sample_cells(30, 0)
    y = table.lookup(cells)
    budget = float(np.nanmedian(table.latency_ms))
    asked = []

    def measure(new):
        asked.append(list(new))
        return table.lookup(new)

    res = adaptive_search(Under(), cells, y, measure, budget, acc, SearchConfig(seed=0, top=3),
                          AdaptiveConfig(confidence=None, rounds=3, fallback=False),
                          validator=TableOracle(table), table=table)
    assert res.rounds >= 2 and asked  # the first search failed (see the test above)
    new = [a for batch in asked for a in batch]
    assert len(new) == len(set(new)) and not set(new) & set(cells)
    assert res.cells_measured == 30 + len(new)
    assert all(float(table.lookup([a])[0]) > budget for a in new)  # each one a false positive
    # a finalist that failed is never proposed again: later searches check new cells
    assert not {c.arch for c in res.finalists} & {str(a) for a in new}
    assert res.true_checks >= len(new) + len(res.finalists)
    assert res.failed == ("after 3 searches" in res.message)
    again = adaptive_search(Under(), cells, y, table.lookup, budget, acc,
                            SearchConfig(seed=0, top=3),
                            AdaptiveConfig(confidence=None, rounds=3, fallback=False),
                            validator=TableOracle(table), table=table)
    assert again.to_dict(with_history=True) == res.to_dict(with_history=True)  # same seed


def test_objective_is_asked_once_per_cell_over_all_rounds(cpu):
    table, acc = cpu
    cells = sample_cells(30, 0)
    y = table.lookup(cells)
    asked = []

    def score(archs):
        asked.extend(archs)
        return acc.lookup(archs, "cifar10")

    res = adaptive_search(Under(), cells, y, table.lookup, float(np.nanmedian(table.latency_ms)),
                          score, SearchConfig(seed=0, top=2, trials=40),
                          AdaptiveConfig(confidence=None, rounds=3),
                          validator=TableOracle(table))
    assert res.rounds >= 2  # the first search failed: later ones asked again
    assert len(asked) == len(set(asked)) == res.accuracy_evaluations


def test_bad_adaptive_settings_are_refused(cpu):
    table, acc = cpu
    for bad, match in ((AdaptiveConfig(confidence=1.5), "confidence"),
                       (AdaptiveConfig(rounds=0), "rounds"), (AdaptiveConfig(folds=1), "folds")):
        with pytest.raises(ConfigError, match=match):
            adaptive_search(Under(), sample_cells(10, 0), np.ones(10), table.lookup, 5.0, acc,
                            SearchConfig(), bad, validator=TableOracle(table))
    assert isinstance(calibrated_oracle(Under(), sample_cells(5, 0), np.ones(5), name="u",
                                        margin=False), PredictorOracle)


def test_measured_cells_count_as_measured_not_as_predicted(cpu):
    """A fitted cell's measurement beats the model's answer: one measured over the budget is
    never evaluated, even when the model calls it fast (in its whole class where the
    validator says isomorphs are one network)."""
    table, acc = cpu

    class Fast(Under):  # calls every cell 0.1 ms, the fitted ones included
        def _predict(self, x):
            return np.full(len(x), 0.1)

    cells = sample_cells(60, 2)
    y = table.lookup(cells)
    budget = float(np.nanmedian(y))
    slow = {a for a, v in zip(cells, y) if v > budget}
    for share in (False, True):
        validator = TableOracle(table)
        validator.canonical_cache = share
        res = adaptive_search(Fast(), cells, y, table.lookup, budget, acc,
                              SearchConfig(seed=0, trials=20), AdaptiveConfig(None, 1),
                              validator=validator, table=table)
        asked = {h["arch"] for h in res.history}
        assert not asked & {str(a) for a in slow}
        reps = canonical_representatives()
        sizes = np.bincount(reps, minlength=len(reps))
        slow_classes = np.bincount([reps[arch_index(a)] for a in slow], minlength=len(reps))
        n_classes = int(np.sum(sizes > 0))
        if share:  # every class with a slow measured cell is out
            assert res.feasible_networks == n_classes - int(np.sum(slow_classes > 0))
        else:  # a class is out only when all its cells are slow measured ones
            assert res.feasible_networks == n_classes - int(np.sum((slow_classes == sizes)
                                                                   & (sizes > 0)))
        fast = [h for h in res.history if h["arch"] in {str(a) for a in cells}]
        assert all(h["predicted_latency_ms"] <= budget for h in fast)


def test_measured_cells_take_the_slowest_timing():
    from nasloop.search.adaptive import measured_cells
    from nasloop.space import Arch

    a = Arch.parse("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|")
    b = Arch.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|")
    assert a.canonical_key() == b.canonical_key()
    got = measured_cells([a, b], np.array([3.0, 4.0]), {a: 5.0}, share=False)
    assert got == {arch_index(a): 5.0, arch_index(b): 4.0}  # a rejected finalist: its verdict
    got = measured_cells([a, b], np.array([3.0, 4.0]), {}, share=True)
    assert got[arch_index(a)] == got[arch_index(b)] == 4.0  # one network: its slowest timing
    assert len(got) == int(np.sum(canonical_representatives()
                                  == canonical_representatives()[arch_index(a)]))


def test_exact_cells_take_no_margin():
    from nasloop.search import FeasibleSpace
    from nasloop.space import NUM_CELLS

    lat = np.full(NUM_CELLS, 4.0)
    assert FeasibleSpace(lat, 5.0, 1.5).n_networks == 0
    space = FeasibleSpace(lat, 5.0, 1.5, np.array([0, 7]))
    assert space.margin == 1.5 and space.n_networks >= 1


def test_ctrl_c_in_a_refit_keeps_the_last_search(cpu):
    table, acc = cpu
    cells = sample_cells(30, 0)

    def measure(new):
        raise KeyboardInterrupt

    res = adaptive_search(Under(), cells, table.lookup(cells), measure,
                          float(np.nanmedian(table.latency_ms)), acc, SearchConfig(seed=0),
                          AdaptiveConfig(confidence=None, rounds=3),
                          validator=TableOracle(table), table=table)
    assert res.interrupted and res.rounds == 1 and res.failed and res.cells_measured == 30


def test_only_the_first_search_is_stored(cpu, tmp_path):
    import optuna

    table, acc = cpu
    cells = sample_cells(30, 0)
    url = f"sqlite:///{tmp_path / 's.db'}"
    res = adaptive_search(Under(), cells, table.lookup(cells), table.lookup,
                          float(np.nanmedian(table.latency_ms)), acc,
                          SearchConfig(seed=0, trials=20, storage=url, study_name="mine"),
                          AdaptiveConfig(confidence=None, rounds=2),
                          validator=TableOracle(table), table=table)
    assert res.rounds == 2
    names = [s.study_name for s in optuna.get_all_study_summaries(url)]
    assert names == ["mine"]
