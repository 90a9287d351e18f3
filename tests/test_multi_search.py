"""One network for several targets (issue #11): --device A --budget X --device B --budget Y."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from nasloop.cli import main
from nasloop.data import load_accuracy, load_device
from nasloop.data.tables import LatencyTable
from nasloop.errors import ConfigError
from nasloop.search import SearchConfig, TableOracle, Target, get_oracle, run_multi_search
from nasloop.search.multi import check_targets


@pytest.fixture(scope="module")
def two(data_dir):
    return (load_device("desktop_cpu", data_dir), load_device("desktop_gpu", data_dir),
            load_accuracy(data_dir))


def _run(*args):
    return CliRunner().invoke(main, list(args))


def test_the_answer_meets_every_budget_on_its_own_device(two):
    cpu, gpu, acc = two
    targets = [Target(cpu, 5.0, TableOracle(cpu)), Target(gpu, 4.0, TableOracle(gpu))]
    res = run_multi_search(targets, acc, SearchConfig(trials=60, seed=0))
    assert not res.failed and res.unit == "load" and res.budget_ms == 1.0
    assert [t["device"] for t in res.targets] == ["desktop_cpu", "desktop_gpu"]
    assert cpu.get(res.best.arch) <= 5.0 and gpu.get(res.best.arch) <= 4.0
    for c in res.finalists:
        assert [r["true_ms"] for r in c.per_device] == [cpu.get(c.arch), gpu.get(c.arch)]
        assert c.feasible_true == all(r["meets_budget"] for r in c.per_device)
    # the optimum is over cells meeting both budgets, and is at least as good as the answer
    both = (cpu.latency_ms <= 5.0) & (gpu.latency_ms <= 4.0)
    best_acc = np.nanmax(np.where(both, acc.accuracy["cifar10"], np.nan))
    assert res.optimum["accuracy"] == pytest.approx(best_acc)
    assert res.regret == pytest.approx(best_acc - res.best.accuracy) and res.regret >= 0
    # fewer networks are feasible on both than on either alone
    alone = run_multi_search(targets[:1], acc, SearchConfig(trials=5, seed=0))
    assert res.feasible_networks < alone.feasible_networks
    assert res.true_checks == 2 * len(res.finalists)
    again = run_multi_search(targets, acc, SearchConfig(trials=60, seed=0))
    assert again.to_dict(with_history=True) == res.to_dict(with_history=True)


def test_each_target_has_its_own_oracle_and_prediction(two, tmp_path):
    cpu, gpu, acc = two
    oc = get_oracle("linear", cpu, train=300, seed=0, cache_dir=tmp_path)
    og = get_oracle("linear", gpu, train=300, seed=0, cache_dir=tmp_path)
    res = run_multi_search([Target(cpu, 5.0, oc), Target(gpu, 4.0, og)], acc,
                           SearchConfig(trials=30, seed=0, top=3))
    for c in res.finalists:
        p = [r["predicted_ms"] for r in c.per_device]
        assert p == pytest.approx([oc.latency([c.arch])[0], og.latency([c.arch])[0]])
        assert c.predicted_latency_ms == pytest.approx(max(p[0] / 5.0, p[1] / 4.0))


def test_budgets_no_cell_meets_together_are_refused_at_once(two):
    cpu, gpu, _ = two
    # a device where the order is reversed: each budget alone is met by some cell, but
    # never by the same one
    anti = LatencyTable("anti", "reversed desktop_cpu", "test",
                        np.nanmax(cpu.latency_ms) - cpu.latency_ms + 0.1)
    b_cpu = float(np.nanpercentile(cpu.latency_ms, 10))
    b_anti = float(np.nanpercentile(anti.latency_ms, 10))
    with pytest.raises(ConfigError, match="no cell meets every budget"):
        check_targets([(cpu, b_cpu), (anti, b_anti)])
    with pytest.raises(ConfigError, match="given twice"):
        check_targets([(cpu, 5.0), (cpu, 6.0)])


def test_cli_several_targets_json_and_refusals(tmp_path):
    r = _run("search", "-d", "desktop_cpu", "-b", "5ms", "-d", "desktop_gpu", "-b", "4ms",
             "--oracle", "true", "--trials", "30", "--json", "--out", str(tmp_path / "o"))
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["unit"] == "load" and len(res["targets"]) == 2
    assert res["device"] == "desktop_cpu<=5ms+desktop_gpu<=4ms"
    assert all(row["meets_budget"] for row in res["best"]["per_device"])
    assert (tmp_path / "o" / "search.png").is_file()
    head = (tmp_path / "o" / "trials.csv").read_text().splitlines()[0]
    assert head == "number,arch,accuracy,predicted_load"  # not ms: latency/budget
    r = _run("search", "-d", "desktop_cpu", "-b", "5ms", "-d", "desktop_gpu", "--oracle", "true")
    assert r.exit_code == 2 and "one --budget per --device" in r.stderr
    r = _run("search", "-d", "desktop_cpu", "-b", "5ms", "-d", "cpu", "-b", "5ms")
    assert r.exit_code == 2 and "nasloop measure --all" in r.stderr
    r = _run("search", "-d", "desktop_cpu", "-b", "5ms", "-d", "desktop_gpu", "-b", "0.01ms")
    assert r.exit_code == 1 and "no cell can meet" in r.stderr and len(r.stderr.splitlines()) == 1
    r = _run("search", "-d", "desktop_cpu", "-b", "5ms", "-d", "nosuchdev", "-b", "5ms")
    assert r.exit_code != 0 and "nosuchdev" in r.stderr and "Traceback" not in r.output


def test_several_targets_with_margins_pareto_storage_and_a_csv_device(two, tmp_path):
    cpu, gpu, acc = two
    oc = get_oracle("linear", cpu, train=300, seed=0, cache_dir=tmp_path)
    og = get_oracle("linear", gpu, train=300, seed=0, cache_dir=tmp_path)
    targets = [Target(cpu, 5.0, oc), Target(gpu, 4.0, og)]
    plain = run_multi_search(targets, acc, SearchConfig(trials=10, seed=0))
    safe = run_multi_search(targets, acc, SearchConfig(trials=10, seed=0, confidence=0.9))
    margins = [t["margin"] for t in safe.targets]
    assert all(m > 1 for m in margins) and safe.margin == max(margins)
    assert safe.feasible_networks < plain.feasible_networks  # margins shrink the set
    front = run_multi_search(targets, acc, SearchConfig(trials=15, seed=0, mode="pareto"))
    assert front.pareto_front and front.unit == "load"
    # a stored study resumes with the same targets and refuses other budgets
    url = f"sqlite:///{tmp_path / 's.db'}"
    run_multi_search(targets, acc, SearchConfig(trials=5, seed=0, storage=url))
    more = run_multi_search(targets, acc, SearchConfig(trials=8, seed=0, storage=url))
    assert more.trials == 8
    with pytest.raises(ConfigError, match="desktop_gpu<=3ms"):
        run_multi_search([targets[0], Target(gpu, 3.0, og)], acc,
                         SearchConfig(trials=8, seed=0, storage=url))
    # a user's CSV is a target like any other; a finalist it lacks is "not verified"
    keep = np.flatnonzero(gpu.measured)[::2]
    f = tmp_path / "half.csv"
    f.write_text("arch,latency_ms\n" + "".join(
        f"{a},{gpu.latency_ms[i]}\n" for i, a in zip(keep, gpu.cells()[::2])))
    half = load_device(str(f))
    res = run_multi_search([Target(cpu, 5.0, TableOracle(cpu)), Target(half, 4.0, og)], acc,
                           SearchConfig(trials=30, seed=0))
    for c in res.finalists:
        got = c.per_device[1]
        assert (got["true_ms"] is None) == (got["meets_budget"] is None) == (c.arch not in half)


def test_cli_refuses_one_saved_predictor_for_several_devices(tmp_path):
    saved = tmp_path / "lin"
    r = _run("fit-predictor", "-d", "desktop_cpu", "-p", "linear", "--out", str(saved))
    assert r.exit_code == 0, r.output
    r = _run("search", "-d", "desktop_cpu", "-b", "5ms", "-d", "desktop_gpu", "-b", "4ms",
             "--oracle", str(saved))
    assert r.exit_code == 2 and "answers for the one device" in r.stderr
