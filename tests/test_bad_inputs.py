"""Issue 10: a corpus of bad inputs and bad files across every command.

Every case runs in a workspace that already holds earlier results (saved predictors, a
search's ``--out`` folder, a SQLite study, a predictions CSV, a measured CSV) and asserts:
a non-zero exit, no traceback, a message that names the offending input, and that no file
of the workspace was lost, changed or added.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from nasloop.cli import main

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"

# the same command, valid but for the one bad input each case adds
LOOKUP = ("lookup", "-d", "desktop_cpu")
FIT = ("fit-predictor", "-d", "desktop_cpu", "-p", "linear", "--train", "100", "--val", "0",
       "--out", "newfit")
PREDICT = ("predict", "-p", "lin")
EVALUATE = ("evaluate", "-d", "desktop_cpu", "-p", "linear", "--train", "100", "--val", "0",
            "--seeds", "1")
SEARCH = ("search", "-d", "desktop_cpu", "--budget", "4ms", "--oracle", "true", "--sampler",
          "random", "--trials", "3")
MEASURE = ("measure", "--cells", "1", "--warmup", "0", "--repeats", "1", "--out", "m.csv")


@dataclass(frozen=True)
class Bad:
    """One bad invocation: its arguments, the text the error must show, its setup."""

    id: str
    args: tuple[str, ...]
    names: tuple[str, ...]
    files: dict[str, bytes | str] = field(default_factory=dict)
    env: dict[str, str | None] = field(default_factory=dict)


def bad(id_: str, args: tuple[str, ...] | list[str], *names: str,
        files: dict[str, bytes | str] | None = None,
        env: dict[str, str | None] | None = None) -> Bad:
    return Bad(id_, tuple(args), names, files or {}, env or {})


# ------------------------------------------------------------------- the corpus -------
def _devices() -> Iterator[Bad]:
    for dev in ("desktop_cpuu", "nope", "help_1080ti", "missing.csv", "edgetpu_larg"):
        yield bad(f"lookup-device-{dev}", ("lookup", "-d", dev, BEST), dev)
        yield bad(f"fit-device-{dev}", ("fit-predictor", "-d", dev, "-p", "linear", "--out",
                                        "newfit"), dev)
        yield bad(f"evaluate-device-{dev}", ("evaluate", "-d", f"desktop_cpu,{dev}", "-p",
                                             "linear", "--seeds", "1"), dev)
        yield bad(f"search-device-{dev}", ("search", "-d", dev, "--budget", "4ms", "--oracle",
                                           "true", "--out", "search_out", "--force"), dev)
    yield bad("lookup-device-empty", ("lookup", "-d", "", BEST), "''", "is empty")
    yield bad("lookup-device-folder", ("lookup", "-d", "lin", BEST), "lin", "is a folder")
    yield bad("lookup-device-csv-folder", ("lookup", "-d", "adir.csv", BEST), "adir.csv",
              files={"adir.csv/x": ""})
    yield bad("evaluate-device-only-commas", ("evaluate", "-d", ",", "-p", "linear"), "-d")
    yield bad("measure-device-gpu", ("measure", "--device", "gpu", "--cells", "1", "--out",
                                     "m.csv"), "gpu")
    yield bad("measure-device-tpu", ("measure", "-d", "tpu", "--all", "--out", "m.csv"), "tpu")
    yield bad("measure-cuda-graph-on-cpu", (*MEASURE, "--cuda-graph"), "--cuda-graph")
    yield bad("search-cuda-graph-on-cpu", ("search", "--device", "cpu", "--budget", "5ms",
                                           "--cuda-graph"), "--cuda-graph")
    yield bad("search-cuda-graph-on-table", (*SEARCH, "--cuda-graph"), "--device desktop_cpu")


#: malformed archs, each with the part of it the message must show
ARCHS: list[tuple[str, str]] = [
    ("|conv~0|", "|conv~0|"),
    ("", "''"),
    ("   ", "'   '"),
    ("|nor_conv_3x3~0|", "|nor_conv_3x3~0|"),
    ("|nor_conv_3x3~0|+|none~0|skip_connect~1|", "skip_connect~1|"),
    (BEST + "+|none~0|", "+|none~0|"),
    (BEST.replace("|nor_conv_3x3~0|+", "|nor_conv_3x3~1|+", 1), "nor_conv_3x3~1"),
    (BEST.replace("avg_pool_3x3", "conv_5x5"), "conv_5x5"),
    (BEST.replace("|+|", "+"), "+"),
    (BEST[:-1], BEST[:-1]),
    (BEST.upper(), "NOR_CONV_3X3"),
    (BEST.replace("|", ""), "nor_conv_3x3~0+"),
    (BEST.replace("~", "-"), "nor_conv_3x3-0"),
    (BEST + "x", "|x"),
    ("| " + BEST[1:], "| nor_conv_3x3"),
    (BEST.replace("skip_connect~0", "skip_connect~0|none~3"), "none~3"),
    ("(1,2,3,4,5)", "(1,2,3,4,5)"),
    ("(1,2,3,4,0,1,2)", "(1,2,3,4,0,1,2)"),
    ("(5,0,0,0,0,0)", "5"),
    ("(-1,0,0,0,0,0)", "-1"),
    ("(a,b,c,d,e,f)", "(a,b,c,d,e,f)"),
    ("(1.5,0,0,0,0,0)", "(1.5,0,0,0,0,0)"),
    ("()", "()"),
    ("(,,,,,)", "(,,,,,)"),
    ("[3,3,1,0,2,4]", "[3,3,1,0,2,4]"),
    ("3 3 1 0 2 4", "3 3 1 0 2 4"),
    ("1,2,3,4,0,6", "6"),
    ("123456", "123456"),
    ("∅", "∅"),
    ("none", "none"),
]


def _archs() -> Iterator[Bad]:
    for i, (arch, shown) in enumerate(ARCHS):
        yield bad(f"lookup-arch-{i}", (*LOOKUP, arch), shown)
        yield bad(f"predict-arch-{i}", (*PREDICT, arch), shown)
    yield bad("lookup-second-arch-bad", (*LOOKUP, BEST, "|conv~0|"), "arch #1", "|conv~0|")
    yield bad("predict-second-arch-bad", (*PREDICT, BEST, "(9,9,9,9,9,9)"), "arch #1", "9")
    yield bad("measure-cells-from-bad-arch", ("measure", "--cells-from", "cells.txt", "--out",
                                               "m.csv"), "|conv~0|",
              files={"cells.txt": f"{BEST}\n|conv~0|\n"})
    yield bad("measure-cells-from-archx-header", ("measure", "--cells-from", "cells.txt",
                                                   "--out", "m.csv"), "archx",
              files={"cells.txt": f"archx\n{BEST}\n"})
    yield bad("measure-cells-from-bad-arch-column", ("measure", "--cells-from", "cells.csv",
                                                      "--out", "m.csv"), "(7,0,0,0,0,0)",
              "line 3", files={"cells.csv": f"arch\n{BEST}\n\"(7,0,0,0,0,0)\"\n"})


BUDGETS = ["5 parsecs", "-1ms", "nan", "nanms", "inf", "infms", "", "5", "0ms", "0 s", "ms",
           "5mss", "1e999ms", "5 hours", "5ms5", "5,0ms", "0x5ms", "5 ms extra", "1e-400ms",
           "five ms", "5 m", "-0ms", "5e", "0.5ms", "1e9ms", "0.000001us"]


def _budgets() -> Iterator[Bad]:
    for i, b in enumerate(BUDGETS):
        shown = {"1e9ms": "1e+06s", "0.000001us": "1e-09ms", "": "--budget"}.get(b, b)
        yield bad(f"search-budget-{i}", ("search", "-d", "desktop_cpu", "--budget", b,
                                         "--oracle", "true", "--out", "search_out", "--force"),
                  shown)


def _seeds() -> Iterator[Bad]:
    for s in ("-1", "abc", "1.5", "99999999999999999999", "", "4294967296"):
        shown = s or "--seed"
        yield bad(f"search-seed-{s or 'empty'}", (*SEARCH, "--seed", s), shown)
    for s in ("-1", "abc", "1.5", "99999999999999999999"):
        yield bad(f"fit-seed-{s}", (*FIT, "--seed", s), s)
    for s in ("-1", "99999999999999999999"):
        yield bad(f"fit-model-seed-{s}", (*FIT, "--model-seed", s), s)
        yield bad(f"measure-seed-{s}", (*MEASURE, "--seed", s), s)
        yield bad(f"evaluate-split-seed-{s}", (*EVALUATE, "--split-seed", s), s)
    yield bad("evaluate-model-seed-abc", (*EVALUATE, "--model-seed", "abc"), "abc")
    yield bad("evaluate-seeds-0", (*EVALUATE[:-2], "--seeds", "0"), "--seeds")
    yield bad("evaluate-seeds-huge", (*EVALUATE[:-2], "--seeds", "99999999999"), "99999999999")
    yield bad("evaluate-both-seeds", (*EVALUATE, "--split-seed", "1", "--model-seed", "1"),
              "--split-seed", "--model-seed")


#: (predictor, --set value, text the message must show)
SETS: list[tuple[str, str, str]] = [
    ("xgboost", "n_estimators=abc", "n_estimators"),
    ("xgboost", "n_estimators=0", "n_estimators"),
    ("xgboost", "learning_rate=-1", "learning_rate"),
    ("xgboost", "max_depth=-1", "max_depth"),
    ("xgboost", "subsample=0", "subsample"),
    ("xgboost", "features=foo", "features"),
    ("xgboost", "seed=-1", "seed"),
    ("gcn", "hidden=abc", "hidden"),
    ("gcn", "hidden=1.5", "hidden"),
    ("gcn", "lr=abc", "lr"),
    ("gcn", "epochs=0", "epochs"),
    ("gcn", "epochs=-5", "epochs"),
    ("gcn", "batch_size=0", "batch_size"),
    ("gcn", "adjacency=full", "adjacency"),
    ("gcn", "target=foo", "target"),
    ("gcn", "ensemble=0", "ensemble"),
    ("gcn", "threads=0", "threads"),
    ("gcn_plus", "dropout=2", "gcn_plus: dropout"),
    ("gcn_plus", "lr=-1", "gcn_plus: lr"),
    ("linear", "foo=1", "foo"),
    ("linear", "ridge=abc", "ridge"),
    ("linear", "ridge=-1", "ridge"),
    ("linear", "noequals", "noequals"),
    ("linear", "=5", "=5"),
    ("layerwise", "hidden=64", "hidden"),
]


def _predictors() -> Iterator[Bad]:
    for name in ("foo", "GCN", "", "xgbost", "linear,xgboost"):
        yield bad(f"fit-predictor-name-{name or 'empty'}",
                  ("fit-predictor", "-d", "desktop_cpu", "-p", name, "--out", "lin", "--force"),
                  repr(name))
    for pred, s, shown in SETS:
        yield bad(f"fit-set-{pred}-{s}", ("fit-predictor", "-d", "desktop_cpu", "-p", pred,
                                          "--set", s, "--out", "lin", "--force"), shown)
    for pred, s, shown in SETS[::3]:
        yield bad(f"evaluate-set-{pred}-{s}", ("evaluate", "-d", "desktop_cpu", "-p",
                                               f"linear,{pred}", "--set", s, "--seeds", "1"),
                  shown)
        yield bad(f"search-set-{pred}-{s}", ("search", "-d", "desktop_cpu", "--budget", "4ms",
                                             "--oracle", pred, "--set", s, "--out", "search_out",
                                             "--force"),
                  shown)
    for names in ("linear,foo", "", ",", "GCN", "linear,,xgbost"):
        yield bad(f"evaluate-names-{names or 'empty'}", ("evaluate", "-d", "desktop_cpu", "-p",
                                                         names, "--seeds", "1"),
                  {"": "-p", ",": "-p", "linear,foo": "foo",
                   "linear,,xgbost": "xgbost"}.get(names, names))
    for oracle in ("gnc", "", "GCN", "no_such_folder"):
        yield bad(f"search-oracle-{oracle or 'empty'}", ("search", "-d", "desktop_cpu",
                                                         "--budget", "4ms", "--oracle", oracle),
                  repr(oracle))
    yield bad("search-set-unused-by-true", (*SEARCH, "--set", "ridge=1"), "ridge")
    configs = {"missing.json": None, "corrupt.json": "{ridge: 1", "list.json": "[1, 2]",
               "binary.json": b"\x89PNG\r\n\x1a\n\x00\x00", "unknown-key.json": '{"foo": 1}'}
    for cfg, content in configs.items():
        files = {} if content is None else {cfg: content}
        shown = "'foo'" if cfg == "unknown-key.json" else cfg  # the key it holds
        yield bad(f"fit-config-{cfg}", ("fit-predictor", "-d", "desktop_cpu", "-p", "linear",
                                        "--config", cfg, "--out", "newfit"), shown, files=files)
    yield bad("fit-config-folder", ("fit-predictor", "-d", "desktop_cpu", "-p", "linear",
                                    "--config", "lin", "--out", "newfit"), "lin")
    yield bad("search-config-corrupt", ("search", "-d", "desktop_cpu", "--budget", "4ms",
                                        "--oracle", "linear", "--config", "c.json"), "c.json",
              files={"c.json": "{"})


#: device CSVs: file name -> content; each must be refused naming the file
CSVS: dict[str, bytes | str] = {
    "empty.csv": b"",
    "header-only.csv": "arch,latency_ms\n",
    "wrong-header.csv": f"a,b\n{BEST},1.0\n",
    "no-header.csv": f"{BEST},1.0\n",
    "semicolons.csv": f"arch;latency_ms\n{BEST};1.0\n",
    "tabs.csv": f"arch\tlatency_ms\n{BEST}\t1.0\n",
    "garbage.csv": bytes(range(256)) * 8,
    "nul.csv": b"arch,latency_ms\n\x00\x00\x00,1\n",
    "latin1.csv": "arch,latency_ms\n|caf\xe9~0|,1\n".encode("latin-1"),
    "truncated.csv": f"arch,latency_ms\n{BEST},1.0\n|nor_conv_3x3~0|+|no",
    "nan.csv": f"arch,latency_ms\n{BEST},nan\n",
    "negative.csv": f"arch,latency_ms\n{BEST},-1.5\n",
    "zero.csv": f"arch,latency_ms\n{BEST},0\n",
    "inf.csv": f"arch,latency_ms\n{BEST},inf\n",
    "words.csv": f"arch,latency_ms\n{BEST},fast\n",
    "duplicate.csv": f"arch,latency_ms\n{BEST},1.0\n{BEST},2.0\n",
    "bad-arch.csv": "arch,latency_ms\n|conv~0|,1.0\n",
    "quote.csv": f'arch,latency_ms\n"{BEST},1.0\n',
    "one-column.csv": f"arch\n{BEST}\n",
    "huge-field.csv": "arch,latency_ms\n" + "x" * 200_000 + ",1\n",
    "utf16.csv": f"arch,latency_ms\n{BEST},1.0\n".encode("utf-16"),
    "zip.csv": b"PK\x03\x04" + bytes(200),
    "gzip.csv": b"\x1f\x8b\x08\x00" + bytes(100),
    "pickle.csv": pickle.dumps({(0, 0, 0, 0, 0, 0): 1.0}),
}


def _csvs() -> Iterator[Bad]:
    for name, content in CSVS.items():
        yield bad(f"lookup-csv-{name}", ("lookup", "-d", name, BEST), name, files={name: content})
    for name in ("garbage.csv", "truncated.csv", "header-only.csv", "negative.csv", "empty.csv"):
        files = {name: CSVS[name]}
        yield bad(f"fit-csv-{name}", ("fit-predictor", "-d", name, "-p", "linear", "--out",
                                      "newfit"), name, files=files)
        yield bad(f"search-csv-{name}", ("search", "-d", name, "--budget", "4ms", "--oracle",
                                         "true", "--out", "search_out", "--force"), name,
                  files=files)
        yield bad(f"evaluate-csv-{name}", ("evaluate", "-d", name, "-p", "linear"), name,
                  files=files)
    small = "arch,latency_ms\n" + "".join(f'"({a},3,3,3,3,{b})",{1 + a + b}\n'
                                          for a in range(5) for b in range(2))
    yield bad("lookup-csv-extra-field", ("lookup", "-d", "extra.csv", BEST), "extra.csv",
              "line 2", "more field", files={"extra.csv": f'arch,latency_ms\n"{BEST}",1.0,7\n'})
    yield bad("fit-csv-too-few-cells", ("fit-predictor", "-d", "small.csv", "-p", "linear",
                                        "--train", "900", "--out", "newfit"), "small",
              "--train 900", "e.g. --train 7 --val 1", files={"small.csv": small})
    yield bad("measure-cells-from-binary", ("measure", "--cells-from", "g.txt", "--out",
                                             "m.csv"), "g.txt", files={"g.txt": b"\xff\xfe\x81"})
    yield bad("measure-cells-from-empty", ("measure", "--cells-from", "e.txt", "--out", "m.csv"),
              "e.txt", files={"e.txt": ""})
    yield bad("measure-cells-from-missing", ("measure", "--cells-from", "nofile.txt", "--out",
                                              "m.csv"), "nofile.txt")
    yield bad("measure-cells-from-folder", ("measure", "--cells-from", "lin", "--out", "m.csv"),
              "lin")


#: a saved predictor folder with one file replaced: (folder, file, content or None=delete)
MODELS: dict[str, tuple[str, str, bytes | str | None]] = {
    "meta-missing": ("lin", "meta.json", None),
    "meta-empty": ("lin", "meta.json", ""),
    "meta-binary": ("lin", "meta.json", bytes(range(256))),
    "meta-truncated": ("lin", "meta.json", '{"format": "nasloop-predictor/1", "predictor": "lin'),
    "meta-list": ("lin", "meta.json", "[]"),
    "meta-format": ("lin", "meta.json", '{"format": "other/9", "predictor": "linear", "params": {}}'),
    "meta-unknown-predictor": ("lin", "meta.json", '{"format": "nasloop-predictor/1", '
                               '"predictor": "nosuch", "params": {}, "nasloop_version": "0.1.0"}'),
    "meta-params-list": ("lin", "meta.json", '{"format": "nasloop-predictor/1", '
                         '"predictor": "linear", "params": [1], "nasloop_version": "0.1.0"}'),
    "meta-params-unknown": ("lin", "meta.json", '{"format": "nasloop-predictor/1", '
                            '"predictor": "linear", "params": {"foo": 1}, "nasloop_version": "0.1.0"}'),
    "meta-params-bad": ("lin", "meta.json", '{"format": "nasloop-predictor/1", '
                        '"predictor": "xgboost", "params": {"features": "nope"}, '
                        '"nasloop_version": "0.1.0"}'),
    "state-missing": ("lin", "state.json", None),
    "state-empty": ("lin", "state.json", ""),
    "state-corrupt": ("lin", "state.json", '{"coef": [1, 2'),
    "state-short-coef": ("lin", "state.json", '{"coef": [1.0, 2.0]}'),
    "state-text-coef": ("lin", "state.json", '{"coef": ["a", "b"]}'),
    "state-no-coef": ("lin", "state.json", '{"weights": []}'),
    "state-nan-coef": ("lin", "state.json", '{"coef": [NaN, NaN, NaN, NaN, NaN, NaN, NaN, NaN, '
                       'NaN, NaN, NaN, NaN, NaN, NaN, NaN, NaN, NaN, NaN, NaN, NaN, NaN, NaN, '
                       'NaN, NaN, NaN, NaN, NaN, NaN, NaN, NaN, NaN]}'),
    "xgb-missing": ("xgb", "model.json", None),
    "xgb-empty": ("xgb", "model.json", ""),
    "xgb-garbage": ("xgb", "model.json", bytes(range(256)) * 4),
    "xgb-truncated": ("xgb", "model.json", None),  # cut in half by _special_files
    "xgb-other-json": ("xgb", "model.json", '{"hello": "world"}'),
    "gcn-weights-garbage": ("gnn", "weights.pt", b"\x80\x02garbage" * 10),
    "gcn-weights-empty": ("gnn", "weights.pt", b""),
    "gcn-weights-hostile": ("gnn", "weights.pt", None),  # written by the fixture
    "gcn-weights-missing": ("gnn", "weights.pt", None),  # deleted
    "gcn-weights-wrong-shapes": ("gnn", "weights.pt", None),  # written by the fixture
    "gcn-state-no-members": ("gnn", "state.json", '{"scale": 1.0, "shift": 0.0}'),
}


def _models() -> Iterator[Bad]:
    for key, (folder, _, _) in MODELS.items():
        yield bad(f"predict-model-{key}", ("predict", "-p", folder, BEST), folder)
    for key in ("meta-truncated", "state-short-coef", "xgb-garbage", "gcn-weights-hostile",
                "meta-params-unknown", "state-nan-coef"):
        folder = MODELS[key][0]
        yield bad(f"search-oracle-model-{key}", ("search", "-d", "desktop_cpu", "--budget",
                                                 "4ms", "--oracle", folder, "--out",
                                                 "search_out", "--force"), folder)
    yield bad("predict-folder-missing", ("predict", "-p", "nofolder", BEST), "nofolder")
    yield bad("predict-folder-is-file", ("predict", "-p", "preds.csv", BEST), "preds.csv")
    yield bad("predict-folder-empty-name", ("predict", "-p", "", BEST), "--predictor", "empty")
    yield bad("predict-folder-empty", ("predict", "-p", "emptydir", BEST), "emptydir",
              files={"emptydir/.keep": ""})


def _data_dirs() -> Iterator[Bad]:
    file_env = {"NASLOOP_DATA": "preds.csv"}
    missing_env = {"NASLOOP_DATA": "/no/such/data"}
    unset = {"NASLOOP_DATA": None}
    for label, args in (("devices", ("devices",)), ("lookup", (*LOOKUP, BEST)),
                        ("fit", FIT), ("evaluate", EVALUATE), ("search", SEARCH)):
        yield bad(f"{label}-data-env-file", args, "preds.csv", env=file_env)
        yield bad(f"{label}-data-env-missing", args, "/no/such/data", env=missing_env)
        yield bad(f"{label}-data-option-empty", (*args, "--data-dir", ""), "--data-dir")
        yield bad(f"{label}-data-option-file", (*args, "--data-dir", "preds.csv"), "preds.csv")
    for label, args in (("lookup", (*LOOKUP, BEST)), ("fit", FIT), ("search", SEARCH)):
        yield bad(f"{label}-data-unset", args, "NASLOOP_DATA", env=unset)
        yield bad(f"{label}-data-no-tables", (*args, "--data-dir", "emptydata"), "emptydata",
                  files={"emptydata/eagle/.keep": ""})
    yield bad("pretrain-data-no-tables", ("pretrain", "--out", "p.npz", "--data-dir",
                                          "emptydata"), "emptydata", "no benchmark latency table",
              files={"emptydata/eagle/.keep": ""})
    yield bad("search-data-no-accuracy", (*SEARCH, "--data-dir", "noacc"), "nats_bench.csv",
              files={"noacc/eagle/.keep": ""})  # the fixture links the latency table in


def _outputs() -> Iterator[Bad]:
    base = ("fit-predictor", "-d", "desktop_cpu", "-p", "linear", "--train", "100", "--val", "0")
    yield bad("fit-out-existing-predictor", (*base, "--out", "lin"), "lin", "--force")
    yield bad("fit-out-is-file", (*base, "--out", "preds.csv"), "preds.csv")
    yield bad("fit-out-under-file", (*base, "--out", "preds.csv/sub"), "preds.csv")
    yield bad("fit-out-unwritable", (*base, "--out", "/proc/nasloop-fit"), "/proc/nasloop-fit")
    yield bad("fit-out-search-folder", (*base, "--out", "search_out"), "search_out")
    # --force replaces a saved predictor only, never a folder of other files
    yield bad("fit-out-force-search-folder", (*base, "--out", "search_out", "--force"),
              "search_out", "holds no saved nasloop predictor")
    yield bad("fit-out-force-here", (*base, "--out", ".", "--force"), ".",
              "holds no saved nasloop predictor")
    yield bad("predict-csv-under-a-file", (*PREDICT, "--all", "--csv", "afile/x.csv"),
              "afile/x.csv", "is a file", files={"afile": "x"})
    yield bad("predict-csv-is-folder", (*PREDICT, BEST, "--csv", "search_out"), "search_out")
    yield bad("predict-csv-under-file", (*PREDICT, BEST, "--csv", "preds.csv/x.csv"),
              "preds.csv/x.csv")
    yield bad("predict-csv-unwritable", (*PREDICT, "--all", "--csv", "/proc/x.csv"), "/proc/x.csv")
    yield bad("predict-csv-existing-bad-arch", (*PREDICT, "|x~0|", "--csv", "preds.csv"), "|x~0|")
    yield bad("search-out-holds-results", (*SEARCH, "--out", "search_out"), "search_out",
              "--force")
    yield bad("search-out-is-file", (*SEARCH, "--out", "preds.csv"), "preds.csv")
    yield bad("search-out-under-file", (*SEARCH, "--out", "preds.csv/run"), "preds.csv")
    yield bad("search-out-unwritable", (*SEARCH, "--out", "/proc/nasloop-search"),
              "/proc/nasloop-search")
    yield bad("measure-out-under-file", ("measure", "--cells", "1", "--out", "preds.csv/x.csv"),
              "preds.csv")
    yield bad("measure-out-folder", ("measure", "--cells", "1", "--out", "search_out"),
              "search_out")
    yield bad("measure-out-unwritable", ("measure", "--cells", "1", "--out", "/proc/m.csv"),
              "/proc/m.csv")
    yield bad("measure-out-not-a-measure-csv", ("measure", "--cells", "1", "--warmup", "0",
                                                 "--repeats", "1", "--out", "lin/meta.json"),
              "meta.json")
    yield bad("measure-out-predictions-csv", ("measure", "--cells", "1", "--warmup", "0",
                                               "--repeats", "1", "--out", "preds.csv"),
              "preds.csv")
    yield bad("measure-out-existing-bad-option", ("measure", "--cells", "0", "--out",
                                                   "measured.csv"), "--cells")


STORAGES = ["foo://bar", "not a url", "sqlite:////no/dir/x.db", "sqlite:///preds.csv",
            "sqlite:///lin", "sqlite:///lin/meta.json", "postgresqll://u@h/db", "sqlite:///",
            "http://example.com/x.db"]


def _storages() -> Iterator[Bad]:
    for i, url in enumerate(STORAGES):
        shown = {"sqlite:///": "sqlite:///"}.get(url, url.split("///")[-1])
        yield bad(f"search-storage-{i}", (*SEARCH, "--storage", url, "--out", "search_out",
                                                   "--force"),
                  shown)
    yield bad("search-storage-empty", (*SEARCH, "--storage", ""), "--storage")
    yield bad("search-journal-not-a-journal", (*SEARCH, "--storage", "journal:j.log"), "j.log",
              "line 1", files={"j.log": "garbage\n"})
    # --report reads a study: it creates no database and no study
    yield bad("search-report-no-database", (*SEARCH, "--storage", "sqlite:///none.db",
                                            "--report"), "none.db", "does not exist")
    yield bad("search-report-other-study", (*SEARCH, "--storage", "sqlite:///study.db",
                                            "--study-name", "other", "--report"),
              "'other'", "'prior'")
    yield bad("search-study-name-alone", (*SEARCH, "--study-name", "s"), "--study-name")
    yield bad("search-study-name-empty", (*SEARCH, "--storage", "sqlite:///study.db",
                                          "--study-name", ""), "--study-name")
    for opt, value, shown in (("--budget", "5ms", "--budget 5ms"),
                              ("--sampler", "tpe", "--sampler tpe"),
                              ("--objective", "cifar100", "--objective cifar100"),
                              ("--mode", "pareto", "--mode pareto")):
        args = list(SEARCH) + ["--storage", "sqlite:///study.db", "--study-name", "prior"]
        if opt in args:
            args[args.index(opt) + 1] = value
        else:
            args += [opt, value]
        yield bad(f"search-resume-other{opt}", args, shown)


def _misc() -> Iterator[Bad]:
    yield bad("measure-cells-0", ("measure", "--cells", "0", "--out", "m.csv"), "--cells")
    yield bad("measure-cells-neg", ("measure", "--cells", "-1", "--out", "m.csv"), "-1")
    yield bad("measure-cells-huge", ("measure", "--cells", "99999999", "--out", "m.csv"),
              "99999999")
    yield bad("measure-cells-abc", ("measure", "--cells", "abc", "--out", "m.csv"), "abc")
    yield bad("measure-threads-0", (*MEASURE, "--threads", "0"), "--threads")
    yield bad("measure-repeats-0", (*MEASURE[:-2], "--repeats", "0", "--out", "m.csv"), "--repeats")
    yield bad("measure-warmup-neg", (*MEASURE, "--warmup", "-1"), "--warmup")
    yield bad("measure-batch-0", (*MEASURE, "--batch", "0"), "--batch")
    yield bad("measure-no-selector", ("measure", "--out", "m.csv"), "--cells")
    yield bad("measure-two-selectors", ("measure", "--cells", "1", "--all", "--out", "m.csv"),
              "--cells")
    for value in ("NaN", "Infinity", "-inf", "true", "1e999"):
        yield bad(f"fit-set-ridge-{value}", (*FIT, "--set", f"ridge={value}"), "ridge",
                  value if value != "true" else "True")
    # a flag or a number given as a word is refused, not read as true (session 14)
    for predictor, setting in (("gcn", "prune_dead=False"), ("gcn_plus", "dead_gate=maybe"),
                               ("layerwise", "calibrate=False"), ("layerwise", "repeats=abc"),
                               ("layerwise", "threads=abc")):
        key, value = setting.split("=")
        fit = tuple(predictor if a == "linear" else a for a in FIT)
        yield bad(f"fit-set-{predictor}-{key}-{value}", (*fit, "--set", setting), key, value)
    yield bad("measure-pretrained-without-cells-for",
              ("measure", "--cells", "2", "--pretrained", "x.npz", "--out", "m.csv"),
              "--pretrained", "--cells-for")
    yield bad("search-true-confidence", ("search", "-d", "desktop_cpu", "-b", "5ms", "--oracle",
                                         "true", "--confidence", "0.9"),
              "--confidence 0.9", "--oracle true")
    # the live mode checks its oracle before timing any cell (no cell is timed here)
    live = ("search", "--device", "cpu", "--budget", "5ms", "--cache-dir", "live_cache")
    yield bad("live-oracle-unknown", (*live, "--oracle", "nope"), "nope")
    yield bad("live-skip-bad-rows", (*live, "--skip-bad-rows"), "--skip-bad-rows")
    yield bad("live-no-cache", (*live, "--no-cache"), "--no-cache", "--cache-dir")
    # a cache folder that cannot be made: named as --cache-dir, before any cell is timed
    yield bad("live-cache-dir-under-file", ("search", "--device", "cpu", "--budget", "5ms",
                                            "--cache-dir", "afile/cache"), "--cache-dir",
              "afile", "is a file", files={"afile": "x"})
    yield bad("live-objective-without-data", (*live, "--objective", "cifar100"), "--objective",
              "NASLOOP_DATA", env={"NASLOOP_DATA": None})
    yield bad("live-set-unknown", (*live, "--oracle", "linear", "--set", "foo=1"), "foo")
    yield bad("live-set-bad-value", (*live, "--oracle", "linear", "--set", "ridge=-1"), "ridge")
    yield bad("search-set-on-saved", ("search", "-d", "desktop_cpu", "--budget", "5ms",
                                      "--oracle", "lin", "--set", "ridge=1"), "lin", "ridge")
    yield bad("live-set-on-saved", (*live, "--oracle", "lin", "--set", "ridge=1"), "lin",
              "ridge")
    yield bad("fit-train-0", (*FIT, "--train", "0"), "--train")
    yield bad("fit-train-too-many", (*FIT, "--train", "99999"), "--train 99999")
    yield bad("fit-val-neg", (*FIT, "--val", "-1"), "--val")
    yield bad("fit-split-bogus", (*FIT, "--split", "bogus"), "bogus")
    yield bad("evaluate-train-0", (*EVALUATE, "--train", "0"), "--train")
    yield bad("evaluate-train-too-many", (*EVALUATE, "--train", "99999"), "--train 99999")
    yield bad("search-trials-0", (*SEARCH, "--trials", "0"), "--trials")
    yield bad("search-top-0", (*SEARCH, "--top", "0"), "--top")
    yield bad("search-objective-mnist", (*SEARCH, "--objective", "mnist"), "mnist")
    yield bad("search-sampler-foo", (*SEARCH, "--sampler", "foo"), "foo")
    yield bad("search-mode-foo", (*SEARCH, "--mode", "foo"), "foo")
    yield bad("search-train-0", ("search", "-d", "desktop_cpu", "--budget", "4ms", "--oracle",
                                 "linear", "--train", "0"), "--train")
    yield bad("search-train-too-many", ("search", "-d", "desktop_cpu", "--budget", "4ms",
                                        "--oracle", "linear", "--train", "99999",
                                        "--out", "search_out", "--force"), "--train 99999")
    yield bad("lookup-no-arch", LOOKUP, "ARCH")
    yield bad("predict-no-arch", PREDICT, "ARCH")
    yield bad("predict-arch-and-all", (*PREDICT, BEST, "--all"), "--all")
    yield bad("unknown-command", ("serach",), "serach")
    yield bad("unknown-option", ("lookup", "--devise", "desktop_cpu", BEST), "--devise")


CORPUS: list[Bad] = [*_devices(), *_archs(), *_budgets(), *_seeds(), *_predictors(), *_csvs(),
                     *_models(), *_data_dirs(), *_outputs(), *_storages(), *_misc()]


#: search-side defects, left to the search restructuring (issue 11) which owns that code:
#: each is strict, so the fix turns it into a failure that asks for the mark to go
SEARCH_SIDE = "search-side: the search command must refuse this before any fit or search"
XFAIL: dict[str, str] = {}


def _params(cases: list[Bad]) -> list:
    return [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=XFAIL[c.id])]
                         if c.id in XFAIL else []) for c in cases]


def test_corpus_is_large_and_ids_are_unique() -> None:
    ids = [c.id for c in CORPUS]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    assert set(XFAIL) <= set(ids)
    assert len(CORPUS) >= 150, len(CORPUS)
    commands = {c.args[0] for c in CORPUS}
    assert {"devices", "lookup", "fit-predictor", "predict", "evaluate", "search",
            "measure"} <= commands


# ------------------------------------------------------------------- the workspace ----
def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def prior(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """Earlier results every case must leave as they were (built once per module)."""
    ws = tmp_path_factory.mktemp("prior")
    mp = pytest.MonkeyPatch()
    mp.setenv("NASLOOP_DATA", str(data_dir))
    mp.chdir(ws)
    try:
        steps = [
            ("fit-predictor", "-d", "desktop_cpu", "-p", "linear", "--train", "100", "--val", "0",
             "--out", "lin"),
            ("fit-predictor", "-d", "desktop_cpu", "-p", "xgboost", "--set", "n_estimators=5",
             "--train", "100", "--val", "0", "--out", "xgb"),
            ("predict", "-p", "lin", BEST, "--csv", "preds.csv"),
            (*SEARCH[:-1], "5", "--out", "search_out", "--storage", "sqlite:///study.db",
             "--study-name", "prior"),
        ]
        for step in steps:
            r = _invoke(*step)
            assert r.exit_code == 0, (step, r.output)
    finally:
        mp.undo()
    # a table measured earlier (written here: timing a cell is not what this module tests)
    (ws / "measured.csv").write_text(f"arch,latency_ms,median_ms,iqr_ms,min_ms,repeats\n"
                                     f"{BEST},3.1,3.1,0.1,3.0,50\n")
    # a GCN folder without a fit: linear's meta renamed, a small state and real weights
    import torch

    from nasloop.predictors import create_predictor
    gcn = ws / "gnn"  # not "gcn": a folder named like a predictor shadows it
    gcn.mkdir()
    params = {"hidden": 8, "layers": 2, "ensemble": 1}
    meta = json.loads((ws / "lin" / "meta.json").read_text())
    meta.update(predictor="gcn", params=params)
    (gcn / "meta.json").write_text(json.dumps(meta))
    (gcn / "state.json").write_text(json.dumps({"scale": 1.0, "shift": 0.0, "members": 1}))
    net = create_predictor("gcn", **params)._net()
    torch.save({f"m0.{k}": v for k, v in net.state_dict().items()}, gcn / "weights.pt")
    r = _invoke("predict", "-p", str(gcn), BEST)
    assert r.exit_code == 0, r.output  # the hand-made folder is a valid predictor
    return ws


class _Hostile:
    """Pickles to a call of os.system: loading it must be refused, never run."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def _special_files(case: Bad, ws: Path, prior: Path) -> None:
    """Files a case needs that are not plain bytes: hostile pickles, wrong shapes, links."""
    import torch

    if case.id.endswith("gcn-weights-hostile"):
        (ws / "gnn" / "weights.pt").write_bytes(pickle.dumps({"m0.x": _Hostile()}))
    elif case.id.endswith("gcn-weights-wrong-shapes"):
        torch.save({"m0.gc.0.weight": torch.zeros(3, 3)}, ws / "gnn" / "weights.pt")
    elif case.id.endswith("xgb-truncated"):
        text = (prior / "xgb" / "model.json").read_text()
        (ws / "xgb" / "model.json").write_text(text[: len(text) // 2])
    elif case.id == "search-data-no-accuracy":
        src = Path(os.environ["NASLOOP_DATA"]) / "eagle"
        name = "desktop-cpu-core-i7-7820x-fp32.pickle"
        (ws / "noacc" / "eagle" / name).symlink_to(src / name)


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` and a hash of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def _squash(text: str) -> str:
    return "".join(text.split())


class ExpensiveWork(BaseException):
    """Raised where a bad input reached a fit, a search or a timing instead of being refused."""


@pytest.fixture
def no_expensive_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every bad input must be refused before any fit, search or timing starts."""
    import nasloop.measure.timing
    import nasloop.search
    import nasloop.workflow.live  # imported before the patch: it binds the real timers
    from nasloop.predictors.base import Predictor

    def refuse(what: str):
        def stop(*args, **kwargs):
            raise ExpensiveWork(f"{what} started before the bad input was refused")
        return stop

    def fit(self: Predictor, *args, **kwargs) -> None:
        self._validate_params()  # fit's own first step: it may still refuse, cheaply
        refuse("a predictor fit")()

    monkeypatch.setattr(Predictor, "fit", fit)
    monkeypatch.setattr(nasloop.search, "run_search", refuse("a search"))
    for name in ("measure_to_csv", "measure_block", "measure_arch"):  # no cell is timed
        monkeypatch.setattr(nasloop.measure.timing, name, refuse("a timing"), raising=False)
        monkeypatch.setattr(nasloop.workflow.live, name, refuse("a timing"), raising=False)


@pytest.mark.parametrize("case", _params(CORPUS))
def test_bad_input(case: Bad, prior: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   no_expensive_work: None) -> None:
    """Non-zero exit, no traceback, the input named, and no earlier result touched."""
    ws = tmp_path / "ws"
    shutil.copytree(prior, ws, symlinks=True)
    for key, (folder, name, content) in MODELS.items():
        if case.id.endswith(f"-model-{key}"):
            target = ws / folder / name
            if content is None:
                target.unlink()
            else:
                target.write_bytes(content if isinstance(content, bytes) else content.encode())
    for name, content in case.files.items():
        path = ws / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    _special_files(case, ws, prior)
    for k, v in case.env.items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, v)
    monkeypatch.chdir(ws)
    before = _snapshot(ws)
    with warnings.catch_warnings(record=True) as caught:  # what a user's terminal would show
        warnings.simplefilter("always")
        r = CliRunner().invoke(main, list(case.args))
    output = r.output + "".join(f"{w.category.__name__}: {w.message}\n" for w in caught
                                if issubclass(w.category, UserWarning))
    assert r.exception is None or isinstance(r.exception, SystemExit), (
        f"{type(r.exception).__name__}: {r.exception}\n{output}")
    assert r.exit_code != 0, output
    assert "Traceback" not in output and "Exception ignored" not in output, output
    assert "weights_only=False" not in output  # never advise loading code from a file
    # no library's warning before the one line (the CLI prints warnings as "warning: ..."),
    # only a warning about the bad input itself
    stray = [ln for ln in output.splitlines() if "warning:" in ln.lower()
             and not any(_squash(n) in _squash(ln) for n in case.names)]
    assert not stray, output
    for n in case.names:
        assert _squash(n) in _squash(output), (n, output)
    assert _snapshot(ws) == before, "a failing command changed the workspace"
    assert not (ws / "pwned").exists()


# ------------------------------------------------------------------- generated --------
def _archs_and_budgets():
    """Hypothesis strategies: text that is not an arch, and text that is not a budget."""
    from hypothesis import strategies as st

    from nasloop.errors import NasloopError
    from nasloop.space import Arch
    from nasloop.units import parse_budget

    def is_arch(text: str) -> bool:
        try:
            Arch.coerce(text)
            return True
        except NasloopError:
            return False

    def is_budget(text: str) -> bool:
        try:
            parse_budget(text)
            return True
        except NasloopError:
            return False

    # edits of a valid arch string (near misses), and arbitrary printable text
    pieces = st.sampled_from(["|", "+", "~", "0", "1", "2", "3", "none", "skip_connect",
                              "nor_conv_3x3", "avg_pool_3x3", "(", ")", ",", " "])
    near = st.lists(pieces, min_size=1, max_size=12).map("".join)
    mutated = st.tuples(st.integers(0, len(BEST) - 1), st.text(max_size=3)).map(
        lambda t: BEST[:t[0]] + t[1] + BEST[t[0] + 1:])
    text = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=30)
    archs = st.one_of(near, mutated, text).filter(lambda s: not is_arch(s) and
                                                   not s.startswith("-"))
    units = st.sampled_from(["ms", "s", "us", "µs", "sec", "m", "h", "", " ms", "mss", "MS"])
    numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                        st.sampled_from(["-1", "0", "1e999", "nan", "inf", ".", "1..2", "0x5"]))
    budgets = st.one_of(st.tuples(numbers, units).map("".join), text).filter(
        lambda s: not is_budget(s) and not s.startswith("-"))
    return archs, budgets


def test_generated_bad_archs_and_budgets() -> None:
    """Hypothesis: any non-arch given to lookup, any non-budget given to search: one line, exit 2."""
    from hypothesis import HealthCheck, given, settings

    archs, budgets = _archs_and_budgets()

    @settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
    @given(archs)
    def lookup(arch: str) -> None:
        r = CliRunner().invoke(main, [*LOOKUP, BEST, arch])
        assert r.exit_code == 2, r.output
        assert "Traceback" not in r.output and "arch #1" in r.output, r.output

    @settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
    @given(budgets)
    def search(budget: str) -> None:
        r = CliRunner().invoke(main, ["search", "-d", "desktop_cpu", "--budget", budget,
                                      "--oracle", "true"])
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        assert "--budget" in r.output, r.output

    lookup()
    search()
