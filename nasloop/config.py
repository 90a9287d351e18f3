"""Predictor hyperparameters from config files (JSON) and ``--set key=value`` overrides."""
from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class _NotFinite(ValueError):
    """A NaN or an infinity where a hyperparameter value was parsed."""


def _finite_only(const: str) -> Any:
    raise _NotFinite(f"{const} is not a number a hyperparameter can take (finite values only)")


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):  # 1e999 overflows to inf
        raise _NotFinite(f"{text} is not a finite number")
    return v


def _json_value(raw: str) -> Any:
    """A JSON value with finite numbers only (NaN, Infinity and 1e999 raise _NotFinite)."""
    return json.loads(raw, parse_constant=_finite_only, parse_float=_finite_float)


def load_config(path: str | Path) -> dict[str, Any]:
    """A JSON object of hyperparameters; a bare name looks in the project's ``configs/``."""
    p = Path(path)
    if not p.is_file():  # a name in configs/, with or without .json
        for name in (f"{path}.json", str(path)):
            if Path(name).name == name and (CONFIG_DIR / name).is_file():
                p = CONFIG_DIR / name
                break
        else:
            if not p.exists():
                have = ", ".join(sorted(f.stem for f in CONFIG_DIR.glob("*.json")))
                raise ConfigError(f"config {path} does not exist: give a JSON file, or a name "
                                  f"in nasloop's configs/ ({have})")
    try:
        data = _json_value(p.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read config {p}: {e.strerror or e}") from None
    except ValueError as e:
        raise ConfigError(f"config {p} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {p} must hold a JSON object of hyperparameters")
    data.pop("_comment", None)
    return data


def parse_sets(pairs: Iterable[str]) -> dict[str, Any]:
    """``["lr=1e-3", "target=log"]`` -> ``{"lr": 0.001, "target": "log"}`` (JSON values)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r} must look like key=value, e.g. --set lr=1e-3")
        try:
            value = _json_value(raw)
        except _NotFinite:
            raise ConfigError(f"--set {pair}: hyperparameters take finite values; give a "
                              "number such as 1e-3") from None
        except ValueError:
            if raw.strip().lstrip("+-").lower() in ("nan", "infinity", "inf"):
                raise ConfigError(f"--set {pair}: hyperparameters take finite values; give a "
                                  "number such as 1e-3") from None
            value = raw
        out[key.strip()] = value
    return out


def predictor_params(name: str, config: str | Path | None = None,
                     sets: Iterable[str] | dict[str, Any] = ()) -> dict[str, Any]:
    """The hyperparameters a predictor is built with: the one home of that rule.

    ``configs/<name>.json`` when there is one (the project's defaults for that backend),
    replaced by ``config`` when given, then ``sets`` (``key=value`` strings or a dict) on top.
    """
    params: dict[str, Any] = {}
    if config is not None:
        params.update(load_config(config))
    elif (CONFIG_DIR / f"{name}.json").is_file():
        params.update(load_config(CONFIG_DIR / f"{name}.json"))
    params.update(sets if isinstance(sets, dict) else parse_sets(sets))
    return params
