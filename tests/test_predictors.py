"""Every registered predictor through the one conformance suite (plus backend specifics)."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from nasloop.predictors import create_predictor, list_predictors, register_predictor
from nasloop.predictors.registry import UnknownPredictorError
from nasloop.testing.predictor_checks import all_checks

#: fast parameters per backend for the suite (the real configs are exercised by benchmarks)
FAST = {
    "gcn": {"hidden": 32, "epochs": 4, "batch_size": 16, "lr": 3e-3, "threads": 1},
    "gcn_plus": {"hidden": 32, "epochs": 4, "batch_size": 16, "lr": 3e-3},
    "xgboost": {"n_estimators": 50},
    "auto": {"candidate_params": {
        "xgboost": {"n_estimators": 50},
        "gcn_plus": {"hidden": 32, "epochs": 4, "batch_size": 16, "lr": 3e-3},
        "gcn_residual": {"hidden": 32, "epochs": 4, "batch_size": 16, "lr": 3e-3},
        "gcn_gated": {"hidden": 32, "epochs": 4, "batch_size": 16, "lr": 3e-3}}},
}
#: known exceptions to a check, each with its reason
XFAIL: dict[tuple[str, str], str] = {}


def _make(name):
    return lambda **kw: create_predictor(name, **{**FAST.get(name, {}), **kw})


@pytest.mark.parametrize("name", list_predictors())
@pytest.mark.parametrize("check", list(all_checks()), ids=lambda c: c.__name__)
def test_conformance(name, check, sample):
    if (name, check.__name__) in XFAIL:
        pytest.xfail(XFAIL[(name, check.__name__)])
    check(name, _make(name), sample)


def test_registry_lists_the_paper_backends():
    assert {"gcn", "xgboost", "linear", "layerwise", "flops"} <= set(list_predictors())


def test_unknown_name_suggests_closest():
    with pytest.raises(UnknownPredictorError, match="did you mean xgboost"):
        create_predictor("xgbost")


def test_duplicate_registration_refused():
    from nasloop.predictors.linear import LinearPredictor
    with pytest.raises(ValueError, match="already registered"):
        register_predictor("linear")(type("Other", (LinearPredictor,), {}))


def test_a_backend_without_docstring_is_listed(monkeypatch):
    from nasloop.predictors import registry
    from nasloop.predictors.linear import LinearPredictor
    monkeypatch.setitem(registry._REGISTRY, "nodoc_test", type("NoDoc", (LinearPredictor,),
                                                               {"__doc__": None}))
    rows = {r["name"]: r for r in registry.describe_predictors()}
    assert rows["nodoc_test"]["summary"] == "" and rows["linear"]["summary"]


def test_gcn_ablation_switches_change_the_model(sample):
    archs, y = sample
    base = _make("gcn")().fit(archs, y).predict(archs[:20])
    ident = _make("gcn")(adjacency="identity").fit(archs, y).predict(archs[:20])
    rand = _make("gcn")(features="random").fit(archs, y).predict(archs[:20])
    assert not np.allclose(base, ident) and not np.allclose(base, rand)


def test_ema_averages_the_weights_over_a_horizon_in_epochs():
    import torch

    from nasloop.predictors.gcn import _ema_model
    net = torch.nn.Linear(1, 1, bias=False)
    assert _ema_model(net, 0.0, 4) is None
    avg = _ema_model(net, 1.0, 4)  # decay 1 - 1 / (1 epoch x 4 steps) = 0.75
    for value in (1.0, 0.0):
        net.weight.data.fill_(value)
        avg.update_parameters(net)  # the first update copies, later ones average
    assert avg.module.weight.detach().item() == pytest.approx(0.75)


def test_gcn_ema_keeps_the_averaged_weights_and_is_seeded(sample):
    archs, y = sample
    val = (archs[-20:], y[-20:])
    fit = lambda **kw: _make("gcn_plus")(**kw).fit(archs[:-20], y[:-20], val=val)  # noqa: E731
    plain, ema, again = fit(ema=0).predict(archs[:20]), fit(ema=2).predict(archs[:20]), \
        fit(ema=2).predict(archs[:20])
    assert not np.allclose(plain, ema) and np.array_equal(ema, again)


def test_gcn_bad_hyperparameter_is_a_clear_error(sample):
    from nasloop.errors import ConfigError
    with pytest.raises(ConfigError, match="adjacency"):
        create_predictor("gcn", adjacency="full").fit(*sample)
    with pytest.raises(ConfigError, match="ema must be a number of epochs"):
        create_predictor("gcn_plus", ema=-1).fit(*sample)


def test_third_party_backend_via_entry_point(tmp_path, data_dir):
    """A plugin installed as a distribution registers through the entry-point group."""
    pkg = tmp_path / "site"
    (pkg / "nl_plugin").mkdir(parents=True)
    (pkg / "nl_plugin" / "__init__.py").write_text(textwrap.dedent('''
        import numpy as np
        from nasloop.predictors import Predictor

        class MeanPredictor(Predictor):
            """Predicts the training mean plus a per-conv bonus."""
            tags = {"stochastic": False, "iterative": False}
            def __init__(self, *, bonus: float = 0.0):
                self.bonus = bonus
            def _fit(self, x, y, val, progress):
                self.mean_ = float(np.mean(y))
            def _predict(self, x):
                return np.array([self.mean_ + self.bonus * a.ops.count(3) for a in x])
            def _save_state(self, folder):
                (folder / "mean.txt").write_text(repr(self.mean_))
            def _load_state(self, folder):
                self.mean_ = float((folder / "mean.txt").read_text())
    '''))
    dist = pkg / "nl_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nl-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[nasloop.predictors]\nmeanplug = nl_plugin:MeanPredictor\n")
    code = textwrap.dedent(f'''
        import sys; sys.path.insert(0, {str(pkg)!r})
        from nasloop.predictors import list_predictors, create_predictor, load_predictor
        from nasloop.data import load_device
        from nasloop.testing.predictor_checks import all_checks
        assert "meanplug" in list_predictors(), list_predictors()
        t = load_device("desktop_cpu", {str(data_dir)!r})
        cells = t.cells()[:100]; y = t.lookup(cells)
        for check in all_checks():
            if check.__name__ == "check_learns_something":
                continue  # a mean predictor is a stub by design
            check("meanplug", lambda **kw: create_predictor("meanplug", **kw), (cells, y))
        print("plugin ok")
    ''')
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "plugin ok" in r.stdout, r.stderr[-2000:]


def test_adjacency_modes_mean_sum_and_symmetric():
    from nasloop.graph import GLOBAL_NODE, encode
    from nasloop.predictors.gcn import ADJACENCY_MODES, normalise_adjacency
    from nasloop.space import Arch

    adj, _ = encode(Arch.from_tuple((3, 3, 4, 2, 3, 1)))
    mean, total = normalise_adjacency(adj, "normal"), normalise_adjacency(adj, "sum")
    sym, ident = normalise_adjacency(adj, "sym"), normalise_adjacency(adj, "identity")
    live = int(adj[GLOBAL_NODE].sum())
    assert total[GLOBAL_NODE].sum() == live + 1  # the global node sums over every live node
    np.testing.assert_allclose(mean.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(sym, sym.T, rtol=1e-6)
    assert np.allclose(total, total.T) and (total >= mean).all()
    np.testing.assert_array_equal(ident, np.eye(9))
    assert set(ADJACENCY_MODES) == {"directed", "normal", "sym", "sum", "identity"}


def test_directed_adjacency_is_the_papers_propagation():
    """Sums along directed edges plus self loops; the global node gathers, never sends."""
    from nasloop.graph import GLOBAL_NODE, INPUT_NODE, OUTPUT_NODE, encode
    from nasloop.predictors.gcn import normalise_adjacency
    from nasloop.space import Arch

    adj, feat = encode(Arch.from_tuple((3, 3, 4, 2, 3, 1)))
    m = normalise_adjacency(adj, "directed")
    kept = feat.sum(-1) > 0
    assert (m[GLOBAL_NODE, :GLOBAL_NODE] == kept[:GLOBAL_NODE]).all()  # gathers from every node
    assert m[:GLOBAL_NODE, GLOBAL_NODE].sum() == 0  # sends to none
    np.testing.assert_array_equal(np.diag(m), np.ones(9))  # self loops, no normalisation
    assert m[1, INPUT_NODE] == 1 and m[INPUT_NODE, 1] == 0  # input -> conv on edge 0->1
    assert m[OUTPUT_NODE, 2] == m[OUTPUT_NODE, 3] == 1  # the skip 2->3 links node 2's ops to output


def test_xgboost_fit_shows_progress_per_tree():
    from nasloop.space import sample_cells

    cells = sample_cells(30, 0)
    seen: list = []
    create_predictor("xgboost", n_estimators=12).fit(
        cells, np.arange(30) + 1.0, progress=lambda e, n, info: seen.append((e, n)))
    assert seen == [(i, 12) for i in range(1, 13)]


def test_gcn_replays_a_schedule_without_validation_cells(sample):
    """schedule: exactly its epochs, the lr halved after the listed ones, the last weights
    kept; a fit that early-stops records the schedule it found for such a replay."""
    archs, y = sample
    seen = []
    p = create_predictor("gcn_plus", hidden=16, schedule={"epochs": 3, "halve_at": [1, 2]})
    p.fit(archs, y, progress=lambda e, n, info: seen.append((e, n)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert p.schedule_ == {"epochs": 3, "halve_at": [1, 2]}
    free = create_predictor("gcn_plus", hidden=16, epochs=30, patience=3, lr_patience=1)
    free.fit(archs[:-20], y[:-20], val=(archs[-20:], y[-20:]))
    s = free.schedule_
    assert 1 <= s["epochs"] <= 30 and all(e < s["epochs"] for e in s["halve_at"])
    from nasloop.errors import ConfigError
    with pytest.raises(ConfigError, match="schedule must be null"):
        create_predictor("gcn_plus", schedule={"epochs": 0, "halve_at": []}).fit(*sample)


def test_a_hand_edited_or_missing_predictor_folder_is_one_clear_error(tmp_path):
    """meta.json without its entries, naming an unknown backend or holding parameters
    --set would refuse, and a folder that is not there: each a DataError naming the file."""
    import json

    from nasloop.errors import DataError
    from nasloop.predictors import load_predictor
    from nasloop.space import Arch

    folder = tmp_path / "lin"
    create_predictor("linear").fit([Arch((3,) * 6), Arch((2,) * 6), Arch((1,) * 6)],
                                   [3.0, 2.0, 1.0]).save(folder)
    meta = json.loads((folder / "meta.json").read_text())
    cases = {"no-entry": ({}, "no 'predictor' entry"),
             "unknown": ({**meta, "predictor": "nosuch"}, "names unknown predictor 'nosuch'"),
             "bad-param": ({**meta, "params": {"ridge": "abc"}}, "ridge must be a number")}
    for label, (content, words) in cases.items():
        bad = tmp_path / label
        bad.mkdir()
        for f in folder.iterdir():
            (bad / f.name).write_bytes(f.read_bytes())
        (bad / "meta.json").write_text(json.dumps(content))
        with pytest.raises(DataError, match=words):
            load_predictor(bad)
    with pytest.raises(DataError, match="does not exist"):
        load_predictor(tmp_path / "nowhere")


@pytest.mark.parametrize("name", list_predictors())
def test_listed_parameters_are_what_set_accepts(name):
    """'nasloop predictors NAME' lists each backend's parameters with their defaults: the
    same ones create_predictor takes back."""
    from nasloop.predictors.registry import describe_predictors

    (row,) = [r for r in describe_predictors() if r["name"] == name]
    assert row["params"]
    p = create_predictor(name, **row["params"])
    p._validate_params()
    assert p.get_params() == row["params"]
