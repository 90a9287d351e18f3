import json

import numpy as np
import optuna
import pytest
from click.testing import CliRunner

from nasloop.cli import main
from nasloop.data import load_accuracy, load_device
from nasloop.errors import ConfigError
from nasloop.search import (Calibration, FeasibleSpace, GuidedSampler, SearchConfig, TableOracle,
                            conformal_margin, get_oracle, run_search)
from nasloop.search.oracles import PredictorOracle
from nasloop.space import NUM_CELLS, Arch, arch_index
from nasloop.units import BudgetError, format_ms, parse_budget


@pytest.mark.parametrize("text, ms", [("5ms", 5.0), ("5 ms", 5.0), ("0.005s", 5.0),
                                      ("5000us", 5.0), (" 2.5 MS ", 2.5)])
def test_budget_parses(text, ms):
    assert parse_budget(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["5 parsecs", "5", "ms", "-3ms", "0ms", "five ms"])
def test_bad_budget_is_refused(text):
    with pytest.raises(BudgetError, match="budget"):
        parse_budget(text)


@pytest.mark.parametrize("text, shown", [("5ms", "5 ms"), ("0.25ms", "0.25 ms"),
                                         ("1000s", "1000 s"), ("1.5s", "1.5 s"),
                                         ("999ms", "999 ms"), ("250us", "0.25 ms")])
def test_budget_echoes_as_written(text, shown):
    # a budget is echoed in the unit a person would write, never as 1e+06ms
    assert format_ms(parse_budget(text)) == shown
    assert parse_budget(format_ms(parse_budget(text), sep="")) == pytest.approx(parse_budget(text))


@pytest.fixture(scope="module")
def cpu(data_dir):
    return load_device("desktop_cpu", data_dir), load_accuracy(data_dir)


@pytest.mark.parametrize("sampler", ["guided", "evolution", "tpe", "nsga2", "random", "gp"])
def test_true_oracle_search_meets_budget_with_small_regret(cpu, sampler):
    table, acc = cpu
    budget = float(np.nanmedian(table.latency_ms))
    r = run_search(table, budget, TableOracle(table), acc, trials=15 if sampler == "gp" else 100,
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
    assert len(list(tmp_path.iterdir())) == 1  # reused, not refitted
    # other predictor code (an upgrade, or a change in development): fitted anew
    import nasloop.search.oracles as oracles
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(oracles, "_code_fingerprint", lambda: "other code")
        get_oracle("linear", table, train=200, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2
    with pytest.raises(ConfigError, match="unknown oracle"):
        get_oracle("gnc", table)


def test_an_oracle_pretrained_on_the_device_itself_says_so(cpu, tmp_path):
    import warnings

    from nasloop.transfer.pretrain import SHIPPED

    table, _ = cpu
    shipped = {"pretrained": str(SHIPPED)}  # pretrained on every public table, this one too
    for _ in range(2):  # fitted, then loaded from the cache: both say it
        with pytest.warns(UserWarning, match=rf"has seen {table.name}'s own table"):
            get_oracle("transfer", table, train=20, val=0, params=shipped, cache_dir=tmp_path)
    # left to itself, an oracle on a public table is pretrained without that table: fair
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        o = get_oracle("transfer", table, train=20, val=0, cache_dir=tmp_path / "fair")
    assert table.name not in o.predictor.pretraining_tables()


def test_an_unwritable_oracle_cache_is_named_not_fatal(cpu, tmp_path):
    table, _ = cpu
    blocker = tmp_path / "afile"
    blocker.write_text("x")  # a cache folder under a file cannot be made, even as root
    with pytest.warns(UserWarning, match=r"--cache-dir .*afile.*refitted next time"):
        o = get_oracle("linear", table, train=200, cache_dir=blocker / "cache")
    assert o.latency(table.cells()[:1]).shape == (1,)


class Optimist(TableOracle):
    """Says every cell takes 0.1 ms: everything is feasible to it."""

    def __init__(self, table):
        super().__init__(table)
        self.name = "optimist"

    def _compute(self, archs):
        return np.full(len(archs), 0.1)


@pytest.mark.parametrize("sampler", ["guided", "evolution", "tpe", "nsga2", "random"])
def test_no_evaluation_is_spent_in_vain(cpu, sampler):
    """Each trial is a new network the oracle calls feasible, and the counts say so."""
    table, acc = cpu
    budget = 4.0
    r = run_search(table, budget, TableOracle(table), acc, SearchConfig(trials=60, sampler=sampler,
                                                                        seed=2))
    keys = [Arch.parse(h["arch"]).canonical_key() for h in r.history]
    lats = [h["predicted_latency_ms"] for h in r.history]
    assert r.trials == r.accuracy_evaluations == len(r.history) == 60
    assert len(set(keys)) == 60  # no isomorph of an evaluated network
    assert all(x is not None and x <= budget for x in lats)  # nothing the oracle rejects
    assert r.oracle_calls == NUM_CELLS and 1 <= r.true_checks <= 5
    d = r.to_dict()
    assert {"accuracy_evaluations", "oracle_calls", "true_checks"} <= set(d)
    assert d["objective_description"] == "CIFAR-10 test accuracy after 200 epochs (NAS-Bench-201)"


def test_any_optuna_sampler_object_is_wrapped(cpu):
    table, acc = cpu
    r = run_search(table, 4.0, TableOracle(table), acc,
                   SearchConfig(trials=40, sampler=optuna.samplers.RandomSampler(seed=0)))
    assert r.sampler == "RandomSampler" and r.accuracy_evaluations == 40
    assert len({Arch.parse(h["arch"]).canonical_key() for h in r.history}) == 40
    with pytest.raises(ConfigError, match="unknown sampler 'bananas'"):
        run_search(table, 4.0, TableOracle(table), acc, trials=5, sampler="bananas")
    with pytest.raises(ConfigError, match="pareto"):
        run_search(table, 4.0, TableOracle(table), acc, trials=5, sampler="guided", mode="pareto")


@pytest.mark.parametrize("sampler", ["guided", "evolution"])
def test_same_seed_same_result_for_model_samplers(cpu, sampler):
    table, acc = cpu
    cfg = SearchConfig(trials=40, sampler=sampler, seed=7)
    a = run_search(table, 4.0, TableOracle(table), acc, cfg)
    b = run_search(table, 4.0, TableOracle(table), acc, cfg)
    c = run_search(table, 4.0, TableOracle(table), acc, SearchConfig(trials=40, sampler=sampler,
                                                                     seed=8))
    assert a.to_dict(with_history=True) == b.to_dict(with_history=True)
    assert [h["arch"] for h in a.history] != [h["arch"] for h in c.history]


def test_guided_beats_random_on_the_same_evaluations(cpu):
    """The model must help: over 3 seeds the guided sampler's regret is lower than random's."""
    table, acc = cpu
    g = [run_search(table, 4.0, TableOracle(table), acc, trials=50, sampler="guided",
                    seed=s).regret for s in range(3)]
    r = [run_search(table, 4.0, TableOracle(table), acc, trials=50, sampler="random",
                    seed=s).regret for s in range(3)]
    assert np.mean(g) < np.mean(r)


def test_validation_is_bounded_by_top_and_a_failure_is_counted(cpu):
    table, acc = cpu
    # everything looks feasible to the optimist; the accurate cells are truly slow
    r = run_search(table, 2.0, Optimist(table), acc, trials=30, seed=0, sampler="guided", top=2)
    assert r.true_checks <= 2 and len(r.finalists) == r.true_checks
    if r.best is None:
        assert r.failed and r.false_positives == r.true_checks
        opt = r.optimum
        assert r.regret == pytest.approx(opt["accuracy"] - opt["worst_accuracy"])
        assert "nothing to ship" in r.message
    else:
        assert r.best.true_latency_ms <= 2.0 and not r.failed


def test_failed_search_exits_1_on_the_cli(tmp_path):
    from nasloop.predictors import create_predictor

    table = load_device("desktop_cpu")
    cells = table.cells()[:200]
    pred = create_predictor("linear").fit(cells, table.lookup(cells) * 0.2)  # far too optimistic
    pred.save(tmp_path / "optimist")
    r = CliRunner().invoke(main, ["search", "-d", "desktop_cpu", "--budget", "2ms", "--oracle",
                                  str(tmp_path / "optimist"), "--trials", "20", "--top", "1",
                                  "--json"])
    res = json.loads(r.stdout)
    assert res["true_checks"] == 1 and res["accuracy_evaluations"] == 20
    assert res["oracle_calls"] == NUM_CELLS and res["sampler"] == "guided"
    assert r.exit_code == (1 if res["failed"] else 0)
    assert res["failed"] == (res["best"] is None)


def test_trials_are_capped_by_the_feasible_networks(cpu):
    table, acc = cpu
    lat = table.latency_ms
    budget = float(np.sort(lat[~np.isnan(lat)])[40])  # a handful of networks qualify
    r = run_search(table, budget, TableOracle(table), acc, trials=500, sampler="guided")
    assert r.trials == r.accuracy_evaluations == r.feasible_networks < 41


def test_feasible_space_picks_the_fastest_member_once_per_network():
    lat = np.full(NUM_CELLS, 10.0)
    a, b = Arch.from_tuple((3, 2, 2, 1, 0, 0)), Arch.from_tuple((4, 3, 1, 1, 0, 0))  # isomorphic
    assert a.canonical_key() == b.canonical_key()
    lat[arch_index(a)], lat[arch_index(b)] = 6.0, 4.0
    sp = FeasibleSpace(lat, 5.0)
    assert sp.n_networks == 1 and sp.representative(a) == arch_index(b)
    assert FeasibleSpace(lat, 5.0, margin=1.3).n_networks == 0  # 4.0 * 1.3 > 5


def test_conformal_margin_covers_the_residual_quantile(cpu):
    table, _ = cpu

    class Low(TableOracle):  # predicts 80 % of the truth, with noise
        exact = False

        def _compute(self, archs):
            rng = np.random.default_rng(len(archs))
            return table.lookup(archs) * 0.8 * np.exp(rng.normal(0, 0.02, len(archs)))

    o = Low(table)
    cells = table.cells()[:199]
    o.calibration = Calibration(tuple(cells), tuple(table.lookup(cells)))
    m = conformal_margin(o, 0.95)
    pred = o.latency(cells)
    assert np.mean(table.lookup(cells) <= m * pred) >= 0.95
    assert 1.2 < m < 1.4
    with pytest.raises(ConfigError, match="calibration cells"):
        o.calibration = Calibration(tuple(cells[:10]), tuple(table.lookup(cells[:10])))
        conformal_margin(o, 0.95)
    assert conformal_margin(TableOracle(table), 0.99) == 1.0


def test_guided_sampler_model_ranks_accuracy(cpu):
    """The guided sampler's model, fitted on 60 networks, ranks the others above chance."""
    table, acc = cpu
    rng = np.random.default_rng(0)
    idx = rng.choice(NUM_CELLS, 260, replace=False)
    from nasloop.space import arch_from_index
    y = acc.accuracy["cifar10"]
    train = [(arch_from_index(int(i)), float(y[i])) for i in idx[:60]]
    mean, std = GuidedSampler(seed=0).predict(train, idx[60:])
    rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    assert np.corrcoef(rank(mean), rank(y[idx[60:]]))[0, 1] > 0.5 and (std > 0).all()


def test_live_failure_names_fixes_that_live_mode_accepts(cpu):
    """A failed live search (no table) suggests the live mode's own remedies (--rounds,
    a higher --confidence); with a table, the table's."""
    table, acc = cpu

    class Slow(TableOracle):  # the "measurement": every cell takes 99 ms
        def _compute(self, archs):
            return np.full(len(archs), 99.0)

    live = run_search(None, 2.0, Optimist(table), acc, trials=10, seed=0, top=2,
                      validator=Slow(table))
    assert live.failed and "nothing to ship" in live.message
    assert "--rounds" in live.message and "--confidence" in live.message
    tab = run_search(table, 2.0, Optimist(table), acc, trials=10, seed=0, top=2,
                     validator=Slow(table))
    # an oracle with no held-out cells (a saved predictor) cannot take --confidence
    assert tab.failed and "--confidence" not in tab.message and "--top" in tab.message
    calibrated = Optimist(table)
    cells = [Arch.from_tuple((3,) * 6), Arch.from_tuple((2,) * 6)]
    calibrated.calibration = Calibration(tuple(cells), tuple(table.lookup(cells)))
    tab = run_search(table, 2.0, calibrated, acc, trials=10, seed=0, top=2, validator=Slow(table))
    assert tab.failed and "--confidence 0.95" in tab.message


def test_a_predictor_oracle_on_a_small_user_table_fits_on_what_it_has(tmp_path):
    """A user's board with 49 measured cells: the oracle trains on all but a tenth by
    default, --train N leaves the rest to validate, and too large a --train names the fix."""
    from nasloop.data.tables import LatencyTable
    from nasloop.search.oracles import oracle_split
    from nasloop.space import arch_from_index

    lat = np.full(NUM_CELLS, np.nan)
    lat[:49] = np.linspace(1, 5, 49)
    small = LatencyTable("board", "", "", lat)
    assert oracle_split(small, None) == (45, 4)
    assert oracle_split(small, 30) == (30, 19)
    big = LatencyTable("big", "", "", np.linspace(1, 5, NUM_CELLS))
    assert oracle_split(big, None) == (900, 100) and oracle_split(big, 200) == (200, 100)
    with pytest.raises(ConfigError, match="--train 49: board has 49 measured cells.*--train 48 or fewer .45 keeps a tenth"):
        oracle_split(small, 49)
    csv_path = tmp_path / "board.csv"
    cells = [arch_from_index(i) for i in range(49)]
    csv_path.write_text("arch,latency_ms\n" + "".join(f"{a},{v}\n" for a, v in zip(cells, lat[:49])))
    res = CliRunner().invoke(main, ["search", "-d", str(csv_path), "-b", "4ms", "--oracle",
                                    "linear", "--train", "30", "--trials", "3", "--json",
                                    "--no-cache"])
    assert "--val" not in res.output and res.exit_code in (0, 1), res.output
    assert json.loads(res.stdout)["oracle"] == "linear"
