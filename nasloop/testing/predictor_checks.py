"""The predictor conformance suite (scikit-learn's estimator checks, for latency predictors).

Each ``check_*(name, make, data)`` takes a registered name, a factory ``make(**overrides)``
returning a fresh predictor with fast test parameters, and ``data = (archs, latencies_ms)``.
:func:`all_checks` yields them all; ``tests/test_predictors.py`` runs every registered
predictor through every check, and a plugin's own tests can do the same.
"""
from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator

import numpy as np

from ..errors import ArchError, DataError, NasloopError, NotFittedError
from ..predictors import Predictor, load_predictor
from ..space import Arch, all_archs

Make = Callable[..., Predictor]
Data = tuple[list[Arch], np.ndarray]


def check_fit_returns_self(name: str, make: Make, data: Data) -> None:
    p = make()
    assert p.fit(*data) is p, f"{name}: fit must return self"


def check_unfitted_raises(name: str, make: Make, data: Data) -> None:
    p = make()
    try:
        p.predict(data[0][:3])
    except NotFittedError as e:
        assert isinstance(e, ValueError) and isinstance(e, AttributeError)
        assert "not fitted" in str(e)
    else:
        raise AssertionError(f"{name}: predict before fit must raise NotFittedError")


def check_shapes_dtype_order(name: str, make: Make, data: Data) -> None:
    archs, y = data
    p = make().fit(archs, y)
    out = p.predict(archs[:10])
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (10,)
    assert np.all(np.isfinite(out))
    rev = p.predict(list(reversed(archs[:10])))
    np.testing.assert_allclose(rev[::-1], out, rtol=1e-6)
    strs = p.predict([str(a) for a in archs[:10]])  # arch strings are accepted too
    np.testing.assert_allclose(strs, out, rtol=1e-6)


def check_predicts_all_cells(name: str, make: Make, data: Data) -> None:
    p = make().fit(*data)
    out = p.predict(list(all_archs()))
    assert out.shape == (15625,) and np.all(np.isfinite(out))


def check_learns_something(name: str, make: Make, data: Data) -> None:
    """Better than predicting the mean on held-out cells: the fit is not a stub."""
    archs, y = data
    n = len(archs) * 3 // 4
    p = make().fit(archs[:n], y[:n])
    pred = p.predict(archs[n:])
    err_model = np.mean(np.abs(pred - y[n:]))
    err_mean = np.mean(np.abs(np.mean(y[:n]) - y[n:]))
    assert err_model < err_mean, f"{name}: MAE {err_model:.3f} not below the mean's {err_mean:.3f}"


def check_same_seed_same_predictions(name: str, make: Make, data: Data) -> None:
    a = make().fit(*data).predict(data[0][:50])
    b = make().fit(*data).predict(data[0][:50])
    np.testing.assert_array_equal(a, b)


def check_save_load_round_trip(name: str, make: Make, data: Data) -> None:
    p = make().fit(*data)
    with tempfile.TemporaryDirectory() as tmp:
        p.save(tmp, device="test", metrics={"acc_10": 1.0})
        q = load_predictor(tmp)
        assert type(q) is type(p) and q.get_params() == p.get_params()
        np.testing.assert_array_equal(q.predict(data[0][:50]), p.predict(data[0][:50]))
        assert q.fit_info_["device"] == "test"


def check_rejects_bad_training_data(name: str, make: Make, data: Data) -> None:
    archs, y = data
    for bad in (math.nan, -1.0, 0.0):
        yy = y.copy()
        yy[3] = bad
        try:
            make().fit(archs, yy)
        except DataError as e:
            assert "#3" in str(e), f"{name}: error should name the bad latency: {e}"
        else:
            raise AssertionError(f"{name}: latency {bad} in training must be rejected")
    try:
        make().fit(list(archs[:5]) + ["|bogus~0|"], np.ones(6))
    except ArchError as e:
        assert "bogus" in str(e)
    else:
        raise AssertionError(f"{name}: a malformed arch must be rejected")


def check_ten_cells(name: str, make: Make, data: Data) -> None:
    p = make().fit(data[0][:10], data[1][:10])
    assert np.all(np.isfinite(p.predict(data[0][:20])))


def check_params_roundtrip(name: str, make: Make, data: Data) -> None:
    p = make()
    params = p.get_params()
    q = type(p)(**params)
    assert q.get_params() == params
    try:
        p.set_params(no_such_param=1)
    except NasloopError:
        pass
    else:
        raise AssertionError(f"{name}: set_params must refuse unknown names")


def all_checks() -> Iterator[Callable[[str, Make, Data], None]]:
    yield from (check_fit_returns_self, check_unfitted_raises, check_shapes_dtype_order,
                check_predicts_all_cells, check_learns_something, check_same_seed_same_predictions,
                check_save_load_round_trip, check_rejects_bad_training_data, check_ten_cells,
                check_params_roundtrip)
