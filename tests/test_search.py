import math

import numpy as np
import pytest

from nasloop.data import load_accuracy, load_device
from nasloop.errors import ConfigError
from nasloop.search import TableOracle, get_oracle, run_search
from nasloop.search.oracles import PredictorOracle
from nasloop.units import BudgetError, parse_budget


@pytest.mark.parametrize("text, ms", [("5ms", 5.0), ("5 ms", 5.0), ("0.005s", 5.0),
                                      ("5000us", 5.0), (" 2.5 MS ", 2.5)])
def test_budget_parses(text, ms):
    assert parse_budget(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["5 parsecs", "5", "ms", "-3ms", "0ms", "five ms"])
def test_bad_budget_is_refused(text):
    with pytest.raises(BudgetError, match="budget"):
        parse_budget(text)


@pytest.fixture(scope="module")
def cpu(data_dir):
    return load_device("desktop_cpu", data_dir), load_accuracy(data_dir)


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "random", "gp"])
def test_true_oracle_search_meets_budget_with_small_regret(cpu, sampler):
    table, acc = cpu
    budget = float(np.nanmedian(table.latency_ms))
    r = run_search(table, budget, TableOracle(table), acc, trials=60 if sampler == "gp" else 200,
                   sampler=sampler, seed=1)
    assert r.best is not None and r.best.true_latency_ms <= budget
    assert r.false_positives == 0 and r.regret is not None and 0 <= r.regret < 3
    assert r.optimum["true_latency_ms"] <= budget
    # the optimum is the true best under budget over the whole table
    ok = table.latency_ms <= budget
    assert r.optimum["accuracy"] == pytest.approx(np.nanmax(acc.accuracy["cifar10"][ok]))


def test_same_seed_same_result(cpu):
    table, acc = cpu
    a = run_search(table, 4.0, TableOracle(table), acc, trials=80, seed=3)
    b = run_search(table, 4.0, TableOracle(table), acc, trials=80, seed=3)
    assert a.to_dict(with_history=True) == b.to_dict(with_history=True)


def test_predictor_oracle_flags_false_positives(cpu):
    table, acc = cpu

    class Optimist(TableOracle):  # says every cell takes 0.1 ms
        def _compute(self, archs):
            return np.full(len(archs), 0.1)

    r = run_search(table, 2.0, Optimist(table), acc, trials=100, seed=0, top=3)
    assert r.false_positives >= 1
    assert all(c.false_positive == (c.true_latency_ms > 2.0) for c in r.finalists)
    if r.best is not None:
        assert r.best.true_latency_ms <= 2.0


def test_pareto_mode_returns_front(cpu):
    table, acc = cpu
    r = run_search(table, 5.0, TableOracle(table), acc, trials=120, mode="pareto", seed=0)
    assert len(r.pareto_front) >= 2
    lats = [p["predicted_latency_ms"] for p in r.pareto_front]
    accs = [p["accuracy"] for p in r.pareto_front]
    assert lats == sorted(lats) and accs == sorted(accs)  # faster cells are less accurate


def test_impossible_budget_names_fastest_cell(cpu):
    table, acc = cpu
    # said at once, before any trial runs
    with pytest.raises(ConfigError, match="fastest cell"):
        run_search(table, 0.1, TableOracle(table), acc, trials=30)


def test_interrupt_keeps_trials_and_resume_finishes(cpu, tmp_path):
    table, acc = cpu
    url = f"sqlite:///{tmp_path / 'study.db'}"

    def stop_at_25(n, total, info):
        if n == 25:
            raise KeyboardInterrupt

    r1 = run_search(table, 4.0, TableOracle(table), acc, trials=60, storage=url,
                    study_name="s", on_trial=stop_at_25)
    assert r1.interrupted and r1.trials == 25
    r2 = run_search(table, 4.0, TableOracle(table), acc, trials=60, storage=url, study_name="s")
    assert not r2.interrupted and r2.trials == 60 and r2.best is not None


def test_oracle_answers_each_arch_itself_and_caches_on_disk(cpu, tmp_path):
    table, _ = cpu
    o = get_oracle("linear", table, train=200, cache_dir=tmp_path)
    assert isinstance(o, PredictorOracle)
    from nasloop.space import Arch
    a, b = Arch.from_tuple((3, 2, 2, 1, 0, 0)), Arch.from_tuple((4, 3, 1, 1, 0, 0))  # isomorphic
    la, lb = o.latency([a, b])
    # one predictor, one answer per arch: the oracle says what predict() says, even where
    # the predictor tells isomorphs apart (the one-hot linear model sees dead ops)
    np.testing.assert_allclose([la, lb], o.predictor.predict([a, b]))
    assert la != lb and o.evaluations == 15625
    lazy = PredictorOracle(o.predictor, precompute=False)
    np.testing.assert_allclose(lazy.latency([a, b]), [la, lb])
    assert lazy.evaluations == 2  # one answer per arch: isomorphs are not shared
    cached = list(tmp_path.iterdir())
    assert len(cached) == 1
    o2 = get_oracle("linear", table, train=200, cache_dir=tmp_path)
    np.testing.assert_array_equal(o2.latency([a]), o.latency([a]))
    with pytest.raises(ConfigError, match="unknown oracle"):
        get_oracle("gnc", table)
