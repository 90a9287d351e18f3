import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from nasloop.data import (CATALOGUE, available_devices, load_accuracy, load_brpnas_pickle,
                          load_csv_table, load_device, load_torch, resolve_data_dir)
from nasloop.errors import DataError, DeviceError
from nasloop.space import Arch

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def test_all_27_tables_present_and_load(data_dir):
    devs = [d for d in available_devices(data_dir) if d.kind != "measured"]
    assert len([d for d in devs if d.kind == "brpnas"]) == 14
    assert len([d for d in devs if d.kind == "help"]) == 13
    for d in devs:
        t = load_device(d.name, data_dir)
        s = t.summary()
        assert s["cells"] >= 14802 and 0.5 < s["median_ms"] < 100, (d.name, s)
    assert {"desktop_cpu", "desktop_gpu", "mobile_dsp"} <= set(CATALOGUE)


def test_brpnas_seconds_become_ms_and_missing_stay_missing(data_dir):
    raw = pickle.load(open(data_dir / "eagle" / "desktop-gpu-gtx-1080ti-fp32.pickle", "rb"))
    t = load_device("desktop_gpu", data_dir)
    key = (3, 3, 4, 1, 3, 1)
    assert t.get(Arch(key)) == pytest.approx(float(raw[key]) * 1000)
    assert t.get(Arch((0,) * 6)) is None and Arch((0,) * 6) not in t
    assert len(t) == len(raw) == 15284
    large = load_device("edgetpu_large", data_dir)
    assert len(large) == 14802


def test_help_tables_map_through_arch2idx(data_dir):
    import torch
    lat = torch.load(data_dir / "help" / "latency" / "fpga.pt", weights_only=True)
    idx = torch.load(data_dir / "help" / "str_arch2idx.pt", weights_only=True)
    t = load_device("help_fpga", data_dir)
    assert t.get(BEST) == pytest.approx(lat[idx[BEST]])  # already ms
    assert len(t) == 15625


def test_accuracy_table(data_dir):
    acc = load_accuracy(data_dir)
    assert np.nanmax(acc.accuracy["cifar10"]) == pytest.approx(94.3733, abs=1e-3)
    assert acc.get(BEST, "cifar10") > 90 and acc.get(BEST, "imagenet16") > 30


def test_hostile_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    f = tmp_path / "evil.pickle"
    f.write_bytes(pickle.dumps({(0, 0, 0, 0, 0, 1): Evil()}))
    with pytest.raises(DataError, match="evil.pickle.*not allowed"):
        load_brpnas_pickle(f, "x", "x")
    assert not marker.exists()


def test_truncated_pickle_and_pt_are_refused(tmp_path, data_dir):
    src = (data_dir / "eagle" / "mobile-dsp-snapdragon-855-hexagon-690-int8.pickle").read_bytes()
    f = tmp_path / "cut.pickle"
    f.write_bytes(src[: len(src) // 2])
    with pytest.raises(DataError, match="cut.pickle"):
        load_brpnas_pickle(f, "x", "x")
    pt = tmp_path / "cut.pt"
    pt.write_bytes((data_dir / "help" / "latency" / "fpga.pt").read_bytes()[:500])
    with pytest.raises(DataError, match="cut.pt"):
        load_torch(pt)


def test_hostile_torch_file_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    code = (f"import torch,os\nclass E:\n def __reduce__(self): return (os.system, ('touch {marker}',))\n"
            f"torch.save([E()], r'{tmp_path / 'evil.pt'}')")
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(DataError, match="evil.pt"):
        load_torch(tmp_path / "evil.pt")
    assert not marker.exists()


def test_user_csv_reports_every_bad_row_with_line_numbers(tmp_path):
    f = tmp_path / "board.csv"
    f.write_text("arch,latency_ms\n"
                 f"{BEST},4.2\n"            # line 2 ok
                 "\"(3,3,4,1,3,1)\",4.3\n"      # line 3 duplicate of line 2
                 "\"(1,1,1,1,1,1)\",nan\n"      # line 4 NaN
                 "\"(2,2,2,2,2,2)\",-1\n"       # line 5 negative
                 "\"(2,2,2,2,2,3)\",0\n"        # line 6 zero
                 "|foo~0|,3\n"              # line 7 unknown arch
                 "\"(4,4,4,4,4,4)\",2.5\n")     # line 8 ok
    with pytest.raises(DataError) as e:
        load_csv_table(f)
    msg = str(e.value)
    for part in ("5 bad row", "line 3: duplicate of line 2", "line 4: latency_ms is NaN",
                 "line 5", "line 6", "--skip-bad-rows"):
        assert part in msg, part
    t = load_csv_table(f, skip_bad_rows=True)
    assert len(t) == 2 and t.get(BEST) == 4.2 and len(t.notes) == 5
    assert any("line 7" in n for n in t.notes)


def test_user_csv_is_a_device(tmp_path):
    f = tmp_path / "board.csv"
    f.write_text(f"arch,latency_ms\n{BEST},4.2\n")
    assert load_device(str(f)).get(BEST) == 4.2


def test_missing_data_dir_and_unknown_device(monkeypatch, tmp_path):
    monkeypatch.delenv("NASLOOP_DATA")
    with pytest.raises(DataError, match="NASLOOP_DATA"):
        resolve_data_dir(None)
    with pytest.raises(DataError, match="does not exist"):
        resolve_data_dir(tmp_path / "nope")
    with pytest.raises(DeviceError, match="did you mean desktop_cpu"):
        load_device("desktop_cpuu", tmp_path)


@pytest.mark.parametrize("sidecar", [{"network": "deployable"}, {"network": "reference"}, None,
                                     "not json {"])
def test_a_deployable_table_fills_each_class_from_its_measured_isomorphs(tmp_path, sidecar):
    import json as _json

    from nasloop.space import all_archs, canonical_representatives
    reps = canonical_representatives()
    archs = list(all_archs())
    big = np.bincount(reps).argmax()  # the largest isomorphism class
    members = np.flatnonzero(reps == big)
    lone = next(i for i in range(len(reps)) if np.sum(reps == reps[i]) == 1)
    path = tmp_path / "mine.csv"
    path.write_text(f"arch,latency_ms\n{archs[members[0]]},2.0\n{archs[members[1]]},4.0\n"
                    f"{archs[lone]},1.5\n")
    if sidecar is not None:
        (tmp_path / "mine.json").write_text(sidecar if isinstance(sidecar, str)
                                            else _json.dumps(sidecar))
    t = load_csv_table(path)
    assert t.get(archs[members[0]]) == 2.0 and t.get(archs[members[1]]) == 4.0  # kept as timed
    assert t.get(archs[lone]) == 1.5
    if sidecar == {"network": "deployable"}:
        assert all(t.get(archs[i]) == 3.0 for i in members[2:])  # the class's mean
        assert archs[members[5]] in t and t.lookup([archs[members[5]]])[0] == 3.0
        # splits draw from the timed cells only: a filled copy of a training network
        # would be a test cell the predictor has seen
        assert len(t) == 3 and set(t.cells()) == {archs[members[0]], archs[members[1]],
                                                  archs[lone]}
        assert "answered by a timed isomorph" in t.description and not t.notes  # no warning
    else:  # the reference network (or unknown): isomorphs are other networks, not filled
        assert len(t) == 3 and "isomorph" not in t.description


def test_csv_trailing_comma_is_fine_extra_values_are_not(tmp_path):
    from nasloop.data.tables import load_csv_table
    from nasloop.errors import DataError

    ok = tmp_path / "ok.csv"
    ok.write_text('arch,latency_ms\n"(3,3,4,1,3,2)",1.5,\n')
    assert load_csv_table(ok).get("(3,3,4,1,3,2)") == 1.5
    bad = tmp_path / "bad.csv"
    bad.write_text("arch,latency_ms\n(3,3,4,1,3,2),1.5\n")
    with pytest.raises(DataError, match="quote an arch written as a tuple"):
        load_csv_table(bad)


def test_a_data_dir_without_benchmark_tables_warns(tmp_path):
    from nasloop.data import device_summaries

    (tmp_path / "nats").mkdir()
    with pytest.warns(UserWarning, match="no benchmark latency table"):
        rows, problems = device_summaries(tmp_path)
    assert problems == [] and all(r["name"].startswith("measured_") for r in rows)
