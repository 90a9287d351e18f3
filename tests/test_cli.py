import json
import os
import zlib

import numpy as np
import pytest

from click.testing import CliRunner

from nasloop.cli import main

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_devices_json_lists_27_tables():
    r = run("devices", "--json")
    assert r.exit_code == 0
    rows = json.loads(r.stdout)
    names = {x["name"] for x in rows}
    assert len([n for n in names if not n.startswith("measured_")]) == 27
    assert {"desktop_cpu", "desktop_gpu", "mobile_dsp"} <= names
    assert all({"name", "description", "source", "cells", "median_ms"} <= set(x) for x in rows)


def test_devices_table():
    r = run("devices")
    assert r.exit_code == 0 and "mobile_dsp" in r.stdout


def test_lookup_json_absent_cell_is_null():
    r = run("lookup", "--device", "desktop_cpu", BEST, "(0,0,0,0,0,0)", "--json")
    assert r.exit_code == 0
    rows = json.loads(r.stdout)
    assert rows[0]["arch"] == BEST and rows[0]["latency_ms"] > 0 and rows[0]["cifar10"] > 90
    assert rows[1]["latency_ms"] is None and "cifar100" in rows[1]


def test_bad_inputs_get_one_line_and_nonzero_exit(monkeypatch, tmp_path):
    r = run("lookup", "--device", "desktop_cpuu", BEST)
    assert r.exit_code == 1 and "did you mean desktop_cpu" in r.stderr and "Traceback" not in r.output
    r = run("lookup", "--device", "desktop_cpu", "|conv~0|")
    assert r.exit_code == 2 and "ARCH" in r.stderr
    r = run("search", "--device", "desktop_cpu", "--budget", "5 parsecs")
    assert r.exit_code == 2 and "5 parsecs" in r.stderr
    r = run("search", "--device", "desktop_cpu", "--budget", "5ms", "--objective", "mnist")
    assert r.exit_code == 2
    r = run("search", "--device", "desktop_cpu", "--budget", "5ms", "--oracle", "gnc")
    assert r.exit_code == 1 and "unknown oracle" in r.stderr
    r = run("search", "--device", "desktop_cpu", "--budget", "5ms", "--config", "nope.json")
    assert r.exit_code == 1 and "config nope.json does not exist" in r.stderr
    assert "configs/ (gcn" in r.stderr  # the names it could have meant
    monkeypatch.delenv("NASLOOP_DATA")
    r = run("lookup", "--device", "desktop_cpu", BEST)
    assert r.exit_code == 1 and "NASLOOP_DATA" in r.stderr
    bad = tmp_path / "corrupt.csv"
    bad.write_text("arch,latency_ms\n|x~0|,1\n")
    r = run("lookup", "--device", str(bad), BEST)
    assert r.exit_code == 1 and "line 2" in r.stderr


def test_fit_predict_round_trip_via_cli(tmp_path):
    out = tmp_path / "lin"
    r = run("fit-predictor", "-d", "desktop_gpu", "-p", "linear", "--out", str(out), "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    for k in ("acc_1", "acc_5", "acc_10", "mape", "spearman", "kendall", "fit_seconds",
              "predict_seconds"):
        assert k in res["metrics"]
    assert res["split"] == {"train": 900, "val": 100, "test": 14284, "seed": 0, "kind": "random",
                            "model_seed": None}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["fit_info"]["device"] == "desktop_gpu" and "acc_10" in meta["fit_info"]["metrics"]
    r = run("predict", "--predictor", str(out), BEST, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)[0]["latency_ms"] > 0
    csv_path = tmp_path / "all.csv"
    r = run("predict", "--predictor", str(out), "--all", "--csv", str(csv_path))
    assert r.exit_code == 0 and len(csv_path.read_text().splitlines()) == 15626


def test_fit_predictor_on_user_csv_with_set(tmp_path, data_dir):
    from nasloop.data import load_device
    t = load_device("mobile_dsp", data_dir)
    cells = t.cells()[:400]
    f = tmp_path / "board.csv"
    f.write_text("arch,latency_ms\n" + "".join(f"{a},{t.get(a)}\n" for a in cells))
    r = run("fit-predictor", "-d", str(f), "-p", "xgboost", "--train", "300", "--val", "50",
            "--set", "n_estimators=40", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["params"]["n_estimators"] == 40 and res["split"]["test"] == 50


def test_evaluate_json_keys():
    r = run("evaluate", "-d", "desktop_gpu,mobile_dsp", "-p", "linear,flops", "--seeds", "2",
            "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert len(rows) == 4
    for row in rows:
        assert {"device", "predictor", "mean", "std"} <= set(row)
        assert {"acc_1", "acc_5", "acc_10", "mape", "spearman", "kendall", "fit_seconds",
                "predict_seconds"} <= set(row["mean"])


def test_search_json_and_outputs(tmp_path):
    out = tmp_path / "run"
    # bounded validation (issue #11): the linear oracle needs its calibrated margin for one of
    # the 5 finalists to meet the budget
    r = run("search", "-d", "desktop_cpu", "--budget", "4ms", "--oracle", "linear", "--trials",
            "80", "--confidence", "0.95", "--out", str(out), "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["best"]["true_latency_ms"] <= 4.0
    for k in ("arch", "accuracy", "true_latency_ms", "predicted_latency_ms"):
        assert k in res["best"]
    for k in ("optimum", "regret", "false_positives", "trials", "unique_cells",
              "accuracy_evaluations", "oracle_calls", "true_checks"):
        assert k in res
    assert {p.name for p in out.iterdir()} == {"trials.csv", "summary.json", "search.png"}
    # a second search into the folder is refused unless --force: the first one's files stay
    before = (out / "summary.json").read_bytes()
    again = ("search", "-d", "desktop_cpu", "--budget", "5ms", "--oracle", "true", "--trials",
             "10", "--out", str(out))
    r = run(*again)
    assert r.exit_code == 2 and "--force" in r.stderr and "summary.json" in r.stderr
    assert (out / "summary.json").read_bytes() == before
    r = run(*again, "--force", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "summary.json").read_text())["budget_ms"] == 5.0


def test_search_with_no_feasible_cell_exits_nonzero():
    r = run("search", "-d", "desktop_cpu", "--budget", "0.2ms", "--oracle", "true", "--trials", "20")
    assert r.exit_code == 1 and "fastest cell" in r.stderr


def test_live_search_needs_no_data_and_validates_by_timing(monkeypatch, tmp_path):
    monkeypatch.delenv("NASLOOP_DATA")
    r = run("search", "--device", "cpu", "--budget", "5ms", "--oracle", "auto", "--train", "10")
    assert r.exit_code == 1 and "--train 10" in r.stderr and "at least 30" in r.stderr
    r = run("search", "--device", "cpu", "--budget", "5ms", "--train", "3")  # transfer
    assert r.exit_code == 1 and "--train 3" in r.stderr and "at least 5" in r.stderr
    r = run("search", "--device", "cpu", "--budget", "5ms", "--oracle", "true")
    assert r.exit_code == 1 and "--oracle true" in r.stderr
    # a 0.9-confidence margin needs 9 out-of-sample cells, said before any timing
    r = run("search", "--device", "cpu", "--budget", "5ms", "--train", "8", "--confidence",
            "0.9", "--cache-dir", str(tmp_path))
    assert r.exit_code == 1 and "--train 8" in r.stderr and "at least 9" in r.stderr
    assert not list(tmp_path.glob("live-cpu-*.csv"))
    # a bad oracle or --set value, or a corrupt saved predictor, fails before any timing
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "meta.json").write_text("{not json")
    for bad, said in ((["--oracle", "nope"], "nope"), (["--oracle", "linear", "--set", "foo=1"],
                      "foo"), (["--oracle", "linear", "--set", "ridge=-1"], "ridge"),
                      (["--oracle", str(corrupt)], "corrupt")):
        r = run("search", "--device", "cpu", "--budget", "5ms", "--cache-dir", str(tmp_path), *bad)
        assert r.exit_code != 0 and said in r.stderr and "Traceback" not in r.output, bad
    assert not list(tmp_path.glob("live-cpu-*.csv"))
    r = run("search", "-d", "desktop_cpu", "--budget", "5ms", "--rounds", "2")
    assert r.exit_code == 2 and "--rounds 2" in r.stderr  # refits time cells: live mode only
    r = run("search", "--device", "cpu", "--budget", "5ms", "--oracle", str(tmp_path),
            "--rounds", "2")
    assert r.exit_code == 2 and "never refitted" in r.stderr  # a saved predictor is as it is
    r = run("search", "--device", "cpu", "--budget", "5ms", "--report", "--storage",
            f"sqlite:///{tmp_path / 'x.db'}")
    assert r.exit_code != 0 and "--report" in r.stderr and "would time cells" in r.stderr
    # the main job's default oracle: transfer, adapted on the informative cells timed here
    r = run("search", "--device", "cpu", "--budget", "200ms", "--train", "9",
            "--trials", "15", "--top", "2", "--cache-dir", str(tmp_path), "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["oracle"] == "transfer" and "fitting transfer on 9 cells" in r.stderr
    assert res["cells_measured"] == 9 and res["seconds"] > 0
    # a median margin calibrated on out-of-fold predictions of the 9 timed cells
    assert res["confidence"] == 0.5 and res["margin"] > 0 and res["rounds"] == 1
    assert res["objective"] == "synflow" and "synflow" in r.stderr
    assert 0 < res["best"]["true_latency_ms"] <= 200  # timed for real, not predicted
    assert list(tmp_path.glob("live-cpu-*.csv"))  # the measured cells are kept for next time


def test_live_search_refits_on_failed_finalists(monkeypatch, tmp_path):
    """When every finalist fails its check, they are timed like the fitted cells, the oracle
    is refitted with them and the search runs again, at most --rounds searches; the JSON
    counts every cell fitted on and every distinct check."""
    import numpy as np

    from nasloop.workflow import live

    checked = []

    def slow(self, archs):  # the finalist check: the first 4 networks "take" 999 ms, then 1 ms
        out = np.array([999.0 if len(checked) + i < 4 else 1.0 for i in range(len(archs))])
        checked.extend(archs)
        return out

    monkeypatch.setattr(live.MeasureOracle, "_compute", slow)
    r = run("search", "--device", "cpu", "--budget", "200ms", "--train", "9", "--trials", "10",
            "--top", "2", "--rounds", "2", "--cache-dir", str(tmp_path), "--json")
    # no finalist met the budget: the answer falls back to a cell timed to fit the oracle,
    # checked like a finalist (the 5th check)
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert not res["failed"] and res["fallback"] and res["rounds"] == 2
    assert "after 2 searches" in res["message"] and "shipped instead" in res["message"]
    assert res["best"]["arch"] == str(checked[-1]) and res["best"]["true_latency_ms"] <= 200
    assert "search 2 of at most 2" in r.stderr
    # the second search checked 2 new finalists: a rejected one is never proposed again
    assert res["true_checks"] == len(checked) == len(set(checked)) == 5
    assert 9 < res["cells_measured"] <= 9 + 2  # the first search's failed finalists joined
    # --no-fallback: nothing to ship, said in one line, exit 1 (the timings are cached)
    checked.clear()
    r = run("search", "--device", "cpu", "--budget", "200ms", "--train", "9", "--trials", "10",
            "--top", "2", "--rounds", "2", "--cache-dir", str(tmp_path), "--json",
            "--no-fallback")
    assert r.exit_code == 1, r.output
    res = json.loads(r.stdout)
    assert res["failed"] and not res["fallback"] and res["best"] is None
    assert "after 2 searches" in res["message"]
    r = run("search", "-d", "desktop_cpu", "--budget", "5ms", "--no-fallback")
    assert r.exit_code == 2 and "--no-fallback" in r.stderr and "live mode" in r.stderr


def test_live_search_with_your_objective(tmp_path):
    # issue #14: --objective-fn with --device cpu: your function is the score even when an
    # accuracy table is at hand, and every network it is asked about is one evaluation
    (tmp_path / "obj.py").write_text(
        "import zlib\n"
        "def score(arch):\n"
        "    open(__file__ + '.log', 'a').write(arch + '\\n')\n"
        "    return zlib.crc32(arch.encode()) % 1000 / 10\n")
    r = run("search", "--device", "cpu", "--budget", "200ms", "--train", "5", "--trials", "12",
            "--top", "1", "--objective-fn", f"{tmp_path / 'obj.py'}:score",
            "--cache-dir", str(tmp_path), "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert "obj.py:score" in res["objective"] and res["cells_measured"] == 5
    asked = (tmp_path / "obj.py.log").read_text().split()
    assert len(set(asked)) == res["accuracy_evaluations"] == res["trials"] == 12
    assert res["best"]["arch"] in asked
    assert res["best"]["accuracy"] == max(zlib.crc32(a.encode()) % 1000 / 10 for a in asked)


def test_measure_repeat_check_reports_run_to_run_noise(tmp_path):
    out = tmp_path / "noise.csv"
    r = run("measure", "--cells", "3", "--warmup", "1", "--repeats", "3", "--out", str(out),
            "--repeat-check", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["cells"] == 3 and res["second"].endswith("noise.run2.csv")
    assert (tmp_path / "noise.run2.csv").is_file() and (tmp_path / "noise.run2.json").is_file()
    assert 0 <= res["median_pct"] <= res["p90_pct"] <= res["max_pct"]


def test_evaluate_grouped_split_and_failure_column():
    r = run("evaluate", "-d", "desktop_gpu", "-p", "linear", "--seeds", "2", "--split", "grouped")
    assert r.exit_code == 0, r.output
    assert "grouped split" in r.stdout
    r = run("evaluate", "-d", "desktop_gpu", "-p", "linear", "--seeds", "2", "--split", "grouped",
            "--json")
    (row,) = json.loads(r.stdout)
    assert row["failures"] == 0 and row["protocol"]["split"] == "grouped" and row["n_runs"] == 2
    r = run("evaluate", "-d", "desktop_gpu", "-p", "linear", "--split-seed", "0",
            "--model-seed", "1")
    assert r.exit_code != 0 and "not both" in r.output


def test_report_writes_nothing_to_the_study(tmp_path):
    """--report reads a study: a journal or SQLite file is byte for byte the same after."""
    for url in (f"journal:{tmp_path / 'j.log'}", f"sqlite:///{tmp_path / 's.db'}"):
        base = ("search", "-d", "desktop_cpu", "--budget", "5ms", "--oracle", "true",
                "--storage", url)
        assert run(*base, "--trials", "4", "--json").exit_code == 0
        path = tmp_path / ("j.log" if url.startswith("journal") else "s.db")
        before = path.read_bytes()
        r = run(*base, "--report", "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["accuracy_evaluations"] == 4
        # the study's own settings: --storage alone reports it
        alone = run("search", "--storage", url, "--report", "--json")
        assert alone.exit_code == 0, alone.output
        assert json.loads(alone.stdout) == json.loads(r.stdout)
        assert path.read_bytes() == before


def test_bad_inputs_fail_before_any_fit(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    r = run("fit-predictor", "-d", "desktop_gpu", "-p", "linear", "--out", str(f))
    assert r.exit_code == 2 and "is a file" in r.output
    folder = tmp_path / "saved"
    assert run("fit-predictor", "-d", "desktop_gpu", "-p", "linear", "--out", str(folder)).exit_code == 0
    r = run("fit-predictor", "-d", "desktop_gpu", "-p", "linear", "--out", str(folder))
    assert r.exit_code == 2 and "--force" in r.output
    assert run("fit-predictor", "-d", "desktop_gpu", "-p", "linear", "--out", str(folder),
               "--force").exit_code == 0
    # --force replaces a saved predictor, never a folder of the user's other files
    other = tmp_path / "mine"
    (other / "sub").mkdir(parents=True)
    (other / "precious.txt").write_text("keep me")
    r = run("fit-predictor", "-d", "desktop_gpu", "-p", "linear", "--out", str(other), "--force")
    assert r.exit_code == 2 and "holds no saved nasloop predictor" in r.output
    assert (other / "precious.txt").read_text() == "keep me" and (other / "sub").is_dir()
    r = run("fit-predictor", "-d", "desktop_gpu", "-p", "xgboost", "--set", "n_estimators=abc")
    assert r.exit_code == 1 and "n_estimators" in r.output and "Traceback" not in r.output
    r = run("evaluate", "-d", "desktop_gpu", "-p", "linear,foo", "--seeds", "1")
    assert r.exit_code == 1 and "unknown predictor 'foo'" in r.output
    (tmp_path / "afile").write_text("x")
    r = run("predict", "--predictor", str(folder), "--all", "--csv", str(tmp_path / "afile" / "x.csv"))
    assert r.exit_code == 2 and "is a file, not a folder" in r.output


def test_fit_predictor_auto_prints_its_choice(tmp_path):
    sets = ['candidates=["linear","layerwise","xgboost"]',
            'candidate_params={"xgboost": {"n_estimators": 30}}']
    r = run("fit-predictor", "-d", "help_titanx_bs32", "--train", "300", "--out", str(tmp_path / "a"),
            *[x for s in sets for x in ("--set", s)])
    assert r.exit_code == 0, r.output
    assert "auto: validation scores" in r.stdout and "chosen" in r.stdout
    r = run("fit-predictor", "-d", "help_titanx_bs32", "--train", "300", "--json",
            *[x for s in sets for x in ("--set", s)])
    res = json.loads(r.stdout)
    assert res["predictor"] == "auto" and set(res["choice"]["tried"]) == {"linear", "layerwise", "xgboost"}



def test_predictor_names_and_set_keys_are_checked_with_the_fix():
    r = run("fit-predictor", "-d", "desktop_gpu", "-p", "GCN")
    assert r.exit_code == 1 and "did you mean gcn" in r.stderr
    r = run("fit-predictor", "-d", "desktop_gpu", "-p", "linear", "--set", "foo=1")
    assert r.exit_code == 1 and "no parameter 'foo'" in r.stderr and "ridge" in r.stderr
    r = run("evaluate", "-d", "desktop_gpu", "-p", "linear,flops", "--set", "hiden=64", "--seeds", "1")
    assert r.exit_code == 1 and "--set hiden" in r.stderr
    r = run("evaluate", "-d", "desktop_gpu", "-p", ",", "--seeds", "1")
    assert r.exit_code == 2 and "no predictor" in r.output


def test_fit_on_every_cell_warns_that_no_metrics_are_left(tmp_path):
    f = tmp_path / "tiny.csv"
    f.write_text("arch,latency_ms\n" + "".join(f'"({a},3,3,3,3,3)",{1 + a}\n' for a in range(5)))
    r = run("fit-predictor", "-d", str(f), "-p", "linear", "--train", "4", "--val", "1")
    assert r.exit_code == 0 and "no test cells are left" in r.stderr


def _at_columns(width: int, *args: str) -> str:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "COLUMNS": str(width), "PYTHONPATH": str(root)}
    r = subprocess.run([sys.executable, "-m", "nasloop", *args], capture_output=True,
                       text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert all(len(ln) <= width for ln in r.stdout.splitlines())
    assert "…" not in r.stdout  # nothing cut: names and numbers whole
    return r.stdout


def _column(text: str, k: int) -> str:
    """Column ``k`` of a rich table's body, its folded cells joined again."""
    return "".join(ln.split("│")[k].strip() for ln in text.splitlines() if ln.count("│") > 3)


def test_fit_predictor_table_is_readable_at_80_columns():
    lines = _at_columns(80, "fit-predictor", "-d", "desktop_gpu", "-p", "linear").splitlines()
    row = next(ln for ln in lines if "linear" in ln and "│" in ln)
    assert "51.3" in row  # acc_10 of linear on desktop_gpu, seed 0, printed in full


@pytest.mark.parametrize("width", [80, 200])
def test_search_and_evaluate_tables_are_whole_at_80_and_200_columns(width):
    args = ["search", "-d", "desktop_cpu", "-b", "5ms", "-d", "desktop_gpu", "-b", "4ms",
            "--oracle", "true", "--trials", "20"]
    res = json.loads(run(*args, "--json").stdout)
    text = _at_columns(width, *args)
    assert res["best"]["arch"] + res["optimum"]["arch"] == _column(text, 2)  # arch never cut
    text = _at_columns(width, "evaluate", "-d", "desktop_gpu,help_titanx_bs32",
                       "-p", "linear", "--seeds", "2")
    assert _column(text, 1) == "desktop_gpulinearhelp_titanx_bs32linear"
    assert "50.6" in text and "±1.0" in text  # linear's acc_10 on desktop_gpu, 2 seeds


@pytest.mark.parametrize("network, n", [("deployable", 6466), ("reference", 15625)])
def test_measure_all_times_each_network_once(monkeypatch, tmp_path, network, n):
    import nasloop.measure.timing as timing
    from nasloop.space import arch_index, canonical_representatives
    seen = {}

    def fake(cells, path, device, protocol=None, on_cell=None):
        seen["cells"], seen["protocol"] = list(cells), protocol
        return 0

    monkeypatch.setattr(timing, "measure_to_csv", fake)
    r = run("measure", "--all", "--network", network, "--out", str(tmp_path / "t.csv"))
    assert r.exit_code == 0, r.output
    cells = seen["cells"]
    assert len(cells) == n and seen["protocol"].network == network
    reps = canonical_representatives()
    classes = {int(reps[arch_index(c)]) for c in cells}
    assert len(classes) == (n if network == "deployable" else 6466)
    assert cells[:5] != sorted(cells[:5], key=arch_index)  # a shuffled order


def test_pretrain_checks_its_out_path_before_pretraining(tmp_path, monkeypatch):
    """An --out under a file is refused in one line before any table is read."""
    import importlib

    pretrain_mod = importlib.import_module("nasloop.transfer.pretrain")
    monkeypatch.setattr(pretrain_mod, "pretrain", lambda *a, **k: pytest.fail("pretrained"))
    (tmp_path / "afile").write_text("x")
    res = CliRunner().invoke(main, ["pretrain", "--out", str(tmp_path / "afile" / "p.npz")])
    assert res.exit_code == 2 and "is a file, not a folder" in res.output
    assert "Traceback" not in res.output


def test_evaluate_skips_bad_rows_of_a_device_csv_when_asked(tmp_path):
    from nasloop.space import arch_from_index

    rows = "".join(f"{arch_from_index(i)},{1 + i / 100}\n" for i in range(40))
    path = tmp_path / "board.csv"
    path.write_text("arch,latency_ms\n" + rows + "not-an-arch,3\n")
    args = ["evaluate", "-d", str(path), "-p", "linear", "--train", "20", "--val", "5",
            "--seeds", "1", "--json"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1 and "--skip-bad-rows" in res.output
    res = CliRunner().invoke(main, [*args, "--skip-bad-rows"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)


def _board(tmp_path, n: int, extra: str = "") -> str:
    """A user's board: ``n`` cells with made-up latencies, as a device CSV."""
    from nasloop.space import arch_from_index

    rows = "".join(f"{arch_from_index(i)},{1 + (i % 97) / 10}\n" for i in range(n))
    path = tmp_path / "board.csv"
    path.write_text("arch,latency_ms\n" + rows + extra)
    return str(path)


def test_a_small_board_gets_a_split_that_fits_and_an_explicit_one_is_kept(tmp_path):
    # the default 900 / 100 does not fit 300 cells: 70 % / 10 % / the rest tested, said
    # on stderr; the numbers given on the command line are never changed
    board = _board(tmp_path, 300)
    res = CliRunner().invoke(main, ["fit-predictor", "-d", board, "-p", "linear", "--json"])
    assert res.exit_code == 0, res.output
    split = json.loads(res.stdout)["split"]
    assert (split["train"], split["val"], split["test"]) == (210, 30, 60)
    assert "fitting on 210, validating on 30, testing on the other 60" in res.stderr
    res = CliRunner().invoke(main, ["fit-predictor", "-d", board, "-p", "linear", "--train",
                                    "250", "--json"])
    assert res.exit_code == 1 and "--train 250 + --val 100" in res.output
    assert "e.g. --train 210 --val 30" in res.output
    res = CliRunner().invoke(main, ["evaluate", "-d", board, "-p", "linear", "--seeds", "1",
                                    "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["protocol"]["train"] == 210


def test_predict_and_pretrain_refuse_to_overwrite_a_file_without_force(tmp_path, monkeypatch):
    import importlib

    fit = tmp_path / "fit"
    board = _board(tmp_path, 60)
    res = CliRunner().invoke(main, ["fit-predictor", "-d", board, "-p", "linear", "--train",
                                    "40", "--val", "5", "--out", str(fit)])
    assert res.exit_code == 0, res.output
    target = tmp_path / "sub" / "all.csv"  # a missing folder is created, as for --out
    args = ["predict", "-p", str(fit), "(3,0,1,2,4,3)", "--csv", str(target)]
    assert CliRunner().invoke(main, args).exit_code == 0 and target.is_file()
    target.write_text("precious")
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and "already exists; pass --force" in res.output
    assert target.read_text() == "precious"
    assert CliRunner().invoke(main, [*args, "--force"]).exit_code == 0
    assert target.read_text().startswith("arch,latency_ms")

    pretrain_mod = importlib.import_module("nasloop.transfer.pretrain")
    monkeypatch.setattr(pretrain_mod, "pretrain", lambda *a, **k: pytest.fail("pretrained"))
    npz = tmp_path / "p.npz"
    npz.write_text("precious")
    res = CliRunner().invoke(main, ["pretrain", "--out", str(npz)])
    assert res.exit_code == 2 and "already exists; pass --force" in res.output


def test_pretrain_without_a_data_directory_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("NASLOOP_DATA", raising=False)
    res = CliRunner().invoke(main, ["pretrain", "--out", str(tmp_path / "p.npz")])
    assert res.exit_code == 1 and "no benchmark data directory" in res.output
    assert "NASLOOP_DATA" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "p.npz").exists()


def test_a_repeated_header_column_and_many_bad_rows_are_reported_briefly(tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text("arch,latency_ms,latency_ms\n(3,0,1,2,4,3),1.0,9.0\n")
    res = CliRunner().invoke(main, ["lookup", "-d", str(path), "(3,0,1,2,4,3)"])
    assert res.exit_code == 1 and "names latency_ms more than once" in res.output
    path.write_text('arch,latency_ms,,\n"(3,0,1,2,4,3)",1.0,,\n')  # a spreadsheet's trailing commas
    res = CliRunner().invoke(main, ["lookup", "-d", str(path), "(3,0,1,2,4,3)", "--json"])
    assert res.exit_code == 0, res.output
    board = _board(tmp_path, 60, extra="".join(f"bad-{i},1\n" for i in range(30)))
    res = CliRunner().invoke(main, ["lookup", "-d", board, "(0,0,0,0,0,3)", "--skip-bad-rows"])
    assert res.exit_code == 0, res.output
    assert res.stderr.count("warning:") == 11 and "... and 20 more like these" in res.stderr


def test_a_board_searched_without_the_public_data_is_scored_by_synflow(tmp_path, monkeypatch):
    # no accuracy table anywhere: the live mode's data-free proxy, said on stderr; asking
    # for an accuracy objective by name still needs the data
    monkeypatch.delenv("NASLOOP_DATA", raising=False)
    board = _board(tmp_path, 40)
    args = ["search", "-d", board, "-b", "3ms", "--oracle", "true", "--trials", "5", "--json"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["objective"] == "synflow" and out["best"] is not None
    assert "the objective is synflow" in res.stderr
    assert out["optimum"]["accuracy"] >= out["best"]["accuracy"]
    res = CliRunner().invoke(main, [*args, "--objective", "cifar100"])
    assert res.exit_code == 1 and "NASLOOP_DATA" in res.output


def test_a_proxy_optimum_scores_only_the_timed_cells_within_the_budget():
    # synflow costs 0.07 s a cell: the optimum asks it about the cells that can hold it,
    # never the whole space
    from nasloop.data.tables import LatencyTable
    from nasloop.search import TableOracle, run_search
    from nasloop.space import NUM_CELLS, arch_index, connected_indices

    lat = np.full(NUM_CELLS, np.nan)
    timed = connected_indices()[:60]
    lat[timed] = np.linspace(1.0, 7.0, len(timed))
    table = LatencyTable("board", "made up", "test", lat)
    asked: set[int] = set()

    def proxy(cells):
        asked.update(arch_index(a) for a in cells)
        return np.array([float(arch_index(a) % 13) for a in cells])

    res = run_search(table, 4.0, TableOracle(table), proxy, trials=5, seed=0)
    within = {int(i) for i in timed if lat[i] <= 4.0}
    assert res.optimum is not None and asked == within


def test_pareto_mode_prints_its_front(tmp_path):
    board = _board(tmp_path, 200)
    res = CliRunner().invoke(main, ["search", "-d", board, "-b", "5ms", "--mode", "pareto",
                                    "--oracle", "true", "--trials", "12"],
                             env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "Pareto front:" in res.stdout
    js = CliRunner().invoke(main, ["search", "-d", board, "-b", "5ms", "--mode", "pareto",
                                   "--oracle", "true", "--trials", "12", "--json"])
    front = json.loads(js.stdout)["pareto_front"]
    assert front and all(r["arch"] in res.stdout for r in front)


def test_boards_with_the_same_file_name_are_told_apart(tmp_path):
    # two boards as boardA/latency.csv and boardB/latency.csv are two devices; a user's
    # desktop_gpu.csv is never the benchmark's desktop_gpu
    from nasloop.data import load_device

    for sub in ("boardA", "boardB"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "latency.csv").write_text(open(_board(tmp_path, 200)).read())
    a, b = (str(tmp_path / s / "latency.csv") for s in ("boardA", "boardB"))
    res = CliRunner().invoke(main, ["search", "-d", a, "-b", "5ms", "-d", b, "-b", "6ms",
                                    "--oracle", "true", "--trials", "4", "--json"])
    assert res.exit_code == 0, res.output
    names = [t["device"] for t in json.loads(res.stdout)["targets"]]
    assert len(set(names)) == 2 and names[0].endswith("boardA/latency")
    res = CliRunner().invoke(main, ["search", "-d", a, "-b", "5ms", "-d", a, "-b", "6ms",
                                    "--oracle", "true", "--trials", "4"])
    assert res.exit_code == 1 and "given twice" in res.output
    own = tmp_path / "desktop_gpu.csv"
    own.write_text(open(_board(tmp_path, 50)).read())
    assert load_device(str(own)).name == "desktop_gpu.csv"
    (tmp_path / "folder.csv").mkdir()
    res = CliRunner().invoke(main, ["lookup", "-d", str(tmp_path / "folder.csv"), "(3,0,1,2,4,3)"])
    assert res.exit_code == 1 and "is a folder; give the path of the CSV file" in res.output


def test_a_mistyped_data_dir_or_pretrained_file_is_named(tmp_path):
    board = _board(tmp_path, 60)
    res = CliRunner().invoke(main, ["fit-predictor", "-d", board, "-p", "linear", "--data-dir",
                                    str(tmp_path / "nodata")])
    assert res.exit_code == 2 and "nodata does not exist" in res.output
    res = CliRunner().invoke(main, ["fit-predictor", "-d", board, "-p", "transfer", "--train",
                                    "20", "--set", f"pretrained={board}"])
    assert res.exit_code == 1 and "not a model written by 'nasloop pretrain'" in res.output
