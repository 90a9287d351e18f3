"""Issue 10: nothing lost, nothing mixed, one clear line.

Resumes with other settings are refused, one Ctrl-C stops a search cleanly, a SQLite
study serves one process, unmeasured finalists are "not verified", and bad inputs get one
line and a non-zero exit instead of a traceback.
"""
from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from nasloop.cli import main
from nasloop.data import load_accuracy, load_device
from nasloop.data.tables import LatencyTable
from nasloop.errors import ConfigError
from nasloop.search import TableOracle, run_search
from nasloop.search.report import result_table
from nasloop.search.storage import sqlite_lock

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
#: a quick search: the true oracle, random sampler
QUICK = ("search", "-d", "desktop_cpu", "--budget", "4ms", "--oracle", "true", "--sampler",
         "random")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_clean_line(r, code: int, *needles: str) -> None:
    """A non-zero exit with the expected code, no traceback, and the input named."""
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output
    for n in needles:
        assert n in r.output, (n, r.output)


@pytest.fixture(scope="module")
def cpu(data_dir):
    return load_device("desktop_cpu", data_dir), load_accuracy(data_dir)


def _count(db: Path, state: str) -> int:
    """Trials in ``state`` in an optuna SQLite file, read without optuna (and while written)."""
    for _ in range(50):
        try:
            with sqlite3.connect(db, timeout=5) as con:
                return con.execute("SELECT count(*) FROM trials WHERE state = ?",
                                   (state,)).fetchone()[0]
        except sqlite3.OperationalError:  # not created yet, or locked for a moment
            time.sleep(0.1)
    return 0


# ----------------------------------------------------------- resume settings ----------
def test_resume_with_other_settings_is_refused_naming_the_setting(cpu, data_dir, tmp_path):
    table, acc = cpu
    url = f"sqlite:///{tmp_path / 'study.db'}"
    base = dict(trials=8, sampler="random", storage=url, study_name="s")
    r1 = run_search(table, 4.0, TableOracle(table), acc, **base)
    assert r1.trials == 8

    class Other(TableOracle):
        def __init__(self, t):
            super().__init__(t)
            self.name = "other"

    gpu = load_device("desktop_gpu", data_dir)
    cases = [
        ("--budget", dict(table=table, budget_ms=5.0, oracle=TableOracle(table))),
        ("--device", dict(table=gpu, budget_ms=4.0, oracle=TableOracle(gpu))),
        ("--oracle", dict(table=table, budget_ms=4.0, oracle=Other(table))),
        ("--objective", dict(table=table, budget_ms=4.0, oracle=TableOracle(table),
                             objective="cifar100")),
        ("--mode", dict(table=table, budget_ms=4.0, oracle=TableOracle(table), mode="pareto")),
        ("--sampler", dict(table=table, budget_ms=4.0, oracle=TableOracle(table), sampler="tpe")),
    ]
    for option, kw in cases:
        kwargs = {**base, **kw}
        t, b, o = kwargs.pop("table"), kwargs.pop("budget_ms"), kwargs.pop("oracle")
        with pytest.raises(ConfigError) as e:
            run_search(t, b, o, acc, **{**kwargs, "trials": 12})
        msg = str(e.value)
        assert option in msg and "--study-name" in msg and "\n" not in msg, msg
    # nothing was added by the refused runs; the same settings resume
    r2 = run_search(table, 4.0, TableOracle(table), acc, **{**base, "trials": 12})
    assert r2.trials == 12


def test_a_repeated_budget_for_one_device_is_refused():
    # several --budget pair with several --device; a second one for one device is a typo
    r = run(*QUICK, "--budget", "5ms", "--trials", 3)
    one_clean_line(r, 2, "1 --device but 2 --budget")


def test_cli_refuses_a_mismatched_resume_before_fitting_the_oracle(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    r = run(*QUICK, "--trials", 5, "--storage", url)  # --study-name defaults to 'nasloop'
    assert r.exit_code == 0, r.output
    cache = tmp_path / "oracles"
    r = run("search", "-d", "desktop_cpu", "--budget", "4ms", "--oracle", "linear", "--train",
            200, "--sampler", "random", "--trials", 8, "--storage", url, "--cache-dir", cache)
    one_clean_line(r, 1, "--oracle true", "--oracle linear", "--study-name")
    assert not cache.exists()  # refused before any fit
    other = [("5ms" if a == "4ms" else a) for a in QUICK]
    r = run(*other, "--trials", 8, "--storage", url)
    one_clean_line(r, 1, "--budget 4ms", "--budget 5ms")
    r = run(*QUICK, "--trials", 8, "--storage", url, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["trials"] == 8


def test_study_without_recorded_settings_is_not_mixed(cpu, tmp_path):
    import optuna

    table, acc = cpu
    url = f"sqlite:///{tmp_path / 'study.db'}"
    st = optuna.create_study(storage=url, study_name="foreign", direction="maximize")
    st.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    with pytest.raises(ConfigError, match="no recorded nasloop settings"):
        run_search(table, 4.0, TableOracle(table), acc, trials=5, storage=url,
                   study_name="foreign")


# ----------------------------------------------------------- Ctrl-C -------------------
def _sigint_default() -> None:
    """In the child: Ctrl-C acts by default even when this test runs in a background job
    (a shell without job control starts those with SIGINT ignored, and a search told to
    ignore Ctrl-C keeps doing so)."""
    import signal as _signal
    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)


def _spawn_search(url: str, trials: int) -> subprocess.Popen:
    code = "import sys; from nasloop.cli import main; sys.argv[0] = 'nasloop'; main()"
    args = [*QUICK, "--trials", str(trials), "--storage", url, "--study-name", "s"]
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=_sigint_default)


def test_sigint_stops_search_keeps_trials_and_leaves_none_running(tmp_path):
    db = tmp_path / "study.db"
    url = f"sqlite:///{db}"
    rng = np.random.default_rng(10)
    for round_ in range(3):
        proc = _spawn_search(url, 100_000)
        try:
            target = _count(db, "COMPLETE") + int(rng.integers(1, 40))
            deadline = time.monotonic() + 120
            while _count(db, "COMPLETE") < target:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the search did not start"
                time.sleep(0.02)
            time.sleep(float(rng.uniform(0, 0.3)))  # a random moment inside a trial or between
            if round_ == 0:
                # a second search on the same SQLite file is refused at once: no overshoot,
                # no "database is locked" traceback
                r = run(*QUICK, "--trials", 100_000, "--storage", url, "--study-name", "s")
                one_clean_line(r, 1, "in use by another nasloop search", "postgresql://")
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, errs = proc.communicate(timeout=30)
            took = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 130, errs
        assert took < 5, f"took {took:.1f} s to stop"  # about 1 s here, under load
        assert "interrupted" in errs and "Traceback" not in errs
        assert "Exception ignored" not in errs
        assert _count(db, "RUNNING") == 0
        assert _count(db, "COMPLETE") >= target
    done = _count(db, "COMPLETE")
    r = run(*QUICK, "--trials", done + 5, "--storage", url, "--study-name", "s", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["trials"] == done + 5
    assert _count(db, "RUNNING") == 0


def test_trials_left_running_by_a_killed_run_are_failed_on_resume(cpu, tmp_path):
    import optuna

    table, acc = cpu
    url = f"sqlite:///{tmp_path / 'study.db'}"
    run_search(table, 4.0, TableOracle(table), acc, trials=5, sampler="random", storage=url,
               study_name="s")
    optuna.load_study(study_name="s", storage=url).ask()  # as if the process was killed
    assert _count(tmp_path / "study.db", "RUNNING") == 1
    r = run_search(table, 4.0, TableOracle(table), acc, trials=7, sampler="random", storage=url,
                   study_name="s")
    assert r.trials == 7 and _count(tmp_path / "study.db", "RUNNING") == 0


def test_sqlite_study_in_use_is_refused(cpu, tmp_path):
    table, acc = cpu
    url = f"sqlite:///{tmp_path / 'study.db'}"
    with sqlite_lock(url):  # another search holds the file
        with pytest.raises(ConfigError, match="in use by another nasloop search.*postgresql"):
            run_search(table, 4.0, TableOracle(table), acc, trials=5, storage=url)
    assert run_search(table, 4.0, TableOracle(table), acc, trials=5, storage=url).trials == 5


# ----------------------------------------------------------- not verified -------------
def test_finalists_absent_from_the_table_are_not_verified_not_false_positives(cpu):
    table, acc = cpu
    keep = np.zeros(len(table.latency_ms), bool)
    keep[np.flatnonzero(table.measured)[::50]] = True  # a sparse user table
    sparse = LatencyTable("sparse", "", "", np.where(keep, table.latency_ms, np.nan))
    # the oracle knows every cell; most finalists are absent from the sparse table
    r = run_search(sparse, 4.0, TableOracle(table), acc, trials=60, seed=0, top=3)
    absent = [c for c in r.finalists if c.true_latency_ms is None]
    assert absent and r.unverified == len(absent)
    assert not any(c.false_positive for c in absent) and all(c.feasible_true is None for c in absent)
    assert r.false_positives == sum(c.false_positive for c in r.finalists)
    from rich.console import Console
    con = Console(width=250, record=True)
    con.print(result_table(r))
    assert "not verified (absent from the table)" in con.export_text()
    if r.best is None:
        assert "false positive" not in r.message or "not verified" in r.message
    # an oracle that only knows cells the table lacks: nothing can be verified, and it is
    # said so, with no false positive claimed
    rest = LatencyTable("rest", "", "", np.where(keep, np.nan, table.latency_ms))
    r = run_search(sparse, 4.0, TableOracle(rest), acc, trials=40, seed=0, top=3)
    assert r.best is None and r.false_positives == 0 and r.unverified == len(r.finalists) > 0
    assert "could be verified" in r.message and "absent from the table of sparse" in r.message


# ----------------------------------------------------------- one clear line -----------
@pytest.mark.parametrize("args, code, needles", [
    (("--seed", "-1"), 2, ["--seed", "-1"]),
    (("--seed", "99999999999999999999"), 2, ["--seed", "99999999999999999999"]),
    (("--storage", "foo://bar"), 1, ["foo://bar", "sqlite:///"]),
    (("--storage", "not a url"), 1, ["not a url", "sqlite:///"]),
    (("--storage", "sqlite:////no/dir/x.db"), 1, ["/no/dir", "does not exist"]),
    (("--study-name", "s"), 1, ["--study-name s", "--storage"]),
    (("--budget", "0.5ms"), 1, ["0.5ms", "fastest cell", "larger budget"]),
    (("--budget", "1e9ms"), 1, ["1e+06s", "constrains nothing", "between"]),
])
def test_search_bad_inputs_one_line(args, code, needles):
    base = QUICK if "--budget" not in args else [a for a in QUICK if a not in ("--budget", "4ms")]
    r = run(*base, "--trials", 3, *args)
    one_clean_line(r, code, *needles)


def test_search_checks_budget_and_storage_before_fitting(tmp_path):
    cache = tmp_path / "oracles"
    for extra in (("--budget", "0.5ms"), ("--budget", "4ms", "--storage", "foo://bar"),
                  ("--budget", "4ms", "--study-name", "s")):
        r = run("search", "-d", "desktop_cpu", "--oracle", "linear",
                "--train", 200, "--cache-dir", cache, *extra)
        one_clean_line(r, 1)
        assert not cache.exists()


def test_search_storage_that_is_not_a_database(tmp_path):
    f = tmp_path / "notes.db"
    f.write_text("these are my notes, not a database\n" * 20)
    r = run(*QUICK, "--trials", 3, "--storage", f"sqlite:///{f}")
    one_clean_line(r, 1, str(f))
    assert f.read_text().startswith("these are my notes")


def test_measure_bad_inputs_one_line(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    r = run("measure", "--cells", 1, "--out", a_file / "x.csv")
    one_clean_line(r, 1, "--out", "is a file")
    r = run("measure", "--cells", 1, "--out", tmp_path)
    one_clean_line(r, 2)  # click: a folder for a file option
    r = run("measure", "--cells", 1, "--seed", -1, "--out", tmp_path / "m.csv")
    one_clean_line(r, 2, "--seed")
    garbage = tmp_path / "cells.txt"
    garbage.write_bytes(b"\xff\xfe\x81garbage")
    r = run("measure", "--cells-from", garbage, "--out", tmp_path / "m.csv")
    one_clean_line(r, 2, "--cells-from")
    if not torch.cuda.is_available():
        r = run("measure", "--device", "cuda", "--cells", 1, "--out", tmp_path / "m.csv")
        one_clean_line(r, 1, "--device cuda", "--device cpu")
    assert not (tmp_path / "m.csv").exists()  # nothing written by a refused run


def test_measure_json_without_repeat_check(tmp_path):
    out = tmp_path / "m.csv"
    r = run("measure", "--cells", 1, "--warmup", 0, "--repeats", 1, "--out", out, "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["out"] == str(out) and res["measured_now"] == 1 and res["cells"] == 1


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage\x00\x81", b"arch,latency_ms\n\x00\x00,1\n",
                                     bytes(range(256)) * 4])
def test_garbage_bytes_as_device_csv(tmp_path, content):
    bad = tmp_path / "board.csv"
    bad.write_bytes(content)
    r = run("lookup", "-d", bad, BEST)
    one_clean_line(r, 1, str(bad), "arch,latency_ms")


def _data_copy(data_dir: Path, tmp_path: Path) -> Path:
    """A data folder of links to the real files (which are never touched)."""
    root = tmp_path / "data"
    for sub in ("eagle", "help/latency", "nats"):
        (root / sub).mkdir(parents=True)
    for f in Path(data_dir).rglob("*"):
        if f.is_file():
            target = root / f.relative_to(data_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(f.resolve())
    return root


def test_devices_lists_what_loads_and_names_the_corrupt_file(data_dir, tmp_path):
    root = _data_copy(Path(data_dir), tmp_path)
    bad = root / "eagle" / "mobile-dsp-snapdragon-855-hexagon-690-int8.pickle"
    bad.unlink()
    bad.write_bytes(b"\x80\x04garbage")
    r = run("devices", "--data-dir", root, "--json")
    assert r.exit_code == 1 and "Traceback" not in r.output
    names = {x["name"] for x in json.loads(r.stdout)}
    assert "mobile_dsp" not in names and {"desktop_cpu", "desktop_gpu", "help_pixel3"} <= names
    assert "mobile_dsp" in r.stderr and bad.name in r.stderr
    r = run("devices", "--data-dir", root)
    assert r.exit_code == 1 and "desktop_gpu" in r.stdout and bad.name in r.stderr


def test_truncated_accuracy_table_does_not_break_lookup(data_dir, tmp_path):
    root = _data_copy(Path(data_dir), tmp_path)
    acc = root / "nats" / "nats_bench.csv"
    text = acc.read_text()
    acc.unlink()
    acc.write_text(text[: len(text) // 2].rsplit(",", 3)[0] + "\n")  # cut mid-row
    r = run("lookup", "-d", "desktop_cpu", "--data-dir", root, BEST, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["latency_ms"] > 0
    assert "nats_bench.csv" in r.stderr and "truncated" in r.stderr
    assert "NoneType" not in r.output


def test_empty_data_dir_option_is_refused():
    r = run("devices", "--data-dir", "")
    one_clean_line(r, 1, "--data-dir is empty")


def test_help_describes_options_and_arch_format():
    for cmd, words in (("search", ["Total trials", "resumes"]),
                       ("measure", ["Timed forward passes", "Untimed"]),
                       ("lookup", ["6-tuple"]), ("predict", ["6-tuple"])):
        r = run(cmd, "--help")
        assert r.exit_code == 0
        text = " ".join(r.output.split())
        assert all(w in text for w in words), (cmd, text)


def test_a_folder_named_like_a_predictor_does_not_take_over_the_name(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from nasloop.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "linear").mkdir()
    r = CliRunner().invoke(main, ["search", "-d", "desktop_gpu", "--budget", "5ms",
                                  "--oracle", "linear"])
    assert r.exit_code == 2 and "both a predictor name and a folder" in r.output
    assert "./linear" in r.output and "Traceback" not in r.output
