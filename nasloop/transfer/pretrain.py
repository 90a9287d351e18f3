"""Pretraining the few-shot model on latency tables, and reading/writing it safely.

The saved model is one ``.npz`` (``allow_pickle=False``: arrays of numbers and one JSON
string), so loading it can never execute code. Its metadata names every source table,
its file and its licence (Eagle / BRP-NAS: Apache-2.0, HELP: MIT, nasloop's own
measurements: Apache-2.0).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import __version__
from ..data.devices import available_devices, load_device, no_benchmark_tables, resolve_data_dir
from ..errors import DataError
from ..space import NUM_CELLS
from .core import TABLE_RANK, FactorModel, pretrain_factors

FORMAT = "nasloop-transfer/1"
DEFAULT_RANK = 8
LICENCES = {"brpnas": "Apache-2.0 (Eagle / BRP-NAS dataset)", "help": "MIT (HELP dataset)",
            "measured": "Apache-2.0 (measured by nasloop)", "csv": "user measurements"}
#: the model shipped inside the package (rebuilt by ``nasloop pretrain --force --out`` this path)
SHIPPED = Path(__file__).resolve().parents[1] / "data" / "pretrained" / "transfer.npz"
CACHE_ENV = "NASLOOP_CACHE"


@dataclass
class Pretrained:
    """A pretrained factor model and where it came from."""

    model: FactorModel
    meta: dict = field(default_factory=dict)


def pretrain(data_dir: str | Path | None = None, *, exclude: Iterable[str] = (),
             rank: int = DEFAULT_RANK, include_measured: bool = True,
             tables: Iterable[str] | None = None,
             log: Callable[[str], None] | None = None) -> Pretrained:
    """Pretrain on every table in ``data_dir`` (and nasloop's measured ones) minus ``exclude``.

    ``tables`` restricts the sources to those names (the rebuild test uses a few).
    """
    excl = {e.strip() for e in exclude if e.strip()}
    root = resolve_data_dir(data_dir, required=False)
    if root is None and tables is None:  # nasloop's own tables alone are no population
        raise DataError("no benchmark data directory: pretraining uses the public latency "
                        "tables; pass --data-dir DIR (the folder holding eagle/ and help/) or "
                        "set NASLOOP_DATA")
    if root is not None and tables is None and not any(
            d.kind != "measured" for d in available_devices(data_dir)):
        raise DataError(no_benchmark_tables(root))  # not a model of this machine's tables alone
    devs = [d for d in available_devices(data_dir)
            if d.name not in excl and (include_measured or d.kind != "measured")]
    known = {d.name for d in available_devices(data_dir)}
    unknown = sorted(excl - known)
    if unknown:
        raise DataError(f"--exclude names unknown table(s) {', '.join(unknown)}; "
                        "'nasloop devices' lists the names")
    if tables is not None:
        want = set(tables)
        devs = [d for d in devs if d.name in want]
    if len(devs) < 2:
        raise DataError("pretraining needs at least 2 latency tables: pass --data-dir DIR "
                        "(the folder holding eagle/ and help/) or set NASLOOP_DATA")
    t0 = time.perf_counter()
    cols, sources = [], []
    for d in devs:
        t = load_device(d.name, data_dir)
        cols.append(np.log(t.latency_ms))
        sources.append({"name": d.name, "file": Path(d.relpath).name, "kind": d.kind,
                        "licence": LICENCES.get(d.kind, "?"), "cells": len(t)})
        if log:
            log(f"loaded {d.name} ({len(t)} cells)")
    model = pretrain_factors(np.stack(cols, axis=1), rank=rank)
    meta = {"format": FORMAT, "nasloop_version": __version__, "rank": rank,
            "columns": model.rank,
            "table_columns": 0 if model.table_factors is None else int(model.table_factors.shape[1]),
            "sources": sources, "excluded": sorted(excl),
            "seconds": round(time.perf_counter() - t0, 1),
            "rebuild": "nasloop pretrain --data-dir DIR --out PATH"
                       + (f" --exclude {','.join(sorted(excl))}" if excl else "")}
    return Pretrained(model, meta)


def save_pretrained(pre: Pretrained, path: str | Path) -> Path:
    """Write ``path`` (.npz, float32 factors, no pickles)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise DataError(f"--out {path}: a pretrained transfer model is a .npz file; "
                        "give a path ending in .npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    m = pre.model
    tmp = path.with_name(path.name + ".tmp.npz")
    extra = {} if m.table_factors is None else {"table_factors": m.table_factors.astype(np.float32)}
    if m.device_weights is not None:
        extra["device_weights"] = m.device_weights
    np.savez_compressed(tmp, factors=m.factors.astype(np.float32), prior_mean=m.prior_mean,
                        prior_cov=m.prior_cov,
                        scalars=np.array([m.noise_var, m.offset_mean, m.offset_var]),
                        meta=np.array(json.dumps(pre.meta)), **extra)
    os.replace(tmp, path)
    return path


def load_pretrained(path: str | Path) -> Pretrained:
    """Read a model written by :func:`save_pretrained`, never executing code."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"pretrained model {path} does not exist: build one with "
                        "'nasloop pretrain --out PATH' or leave pretrained unset")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise DataError(f"cannot read pretrained model {path} ({e.strerror or e})") from None
    if magic != b"PK\x03\x04":  # an .npz is a zip archive
        raise DataError(f"pretrained model {path} is not a model written by 'nasloop "
                        "pretrain' (an .npz); give such a file, or leave pretrained unset")
    st = path.stat()
    return _load_cached(str(path.resolve()), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime: int, size: int) -> Pretrained:
    try:
        with np.load(path, allow_pickle=False) as z:
            factors = np.asarray(z["factors"], dtype=np.float64)
            mean = np.asarray(z["prior_mean"], dtype=np.float64)
            cov = np.asarray(z["prior_cov"], dtype=np.float64)
            noise, off_m, off_v = (float(v) for v in z["scalars"])
            meta = json.loads(str(z["meta"]))
            table = (np.asarray(z["table_factors"], dtype=np.float64)
                     if "table_factors" in z.files else None)  # absent in older models
            dev_w = (np.asarray(z["device_weights"], dtype=np.float64)
                     if "device_weights" in z.files else None)  # absent before session 10
    except Exception as e:  # zip, key, pickle-refused or JSON errors: one line
        raise DataError(f"cannot load pretrained model {path} ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:160] if str(e) else ''}); rebuild it with "
                        "'nasloop pretrain --force --out PATH'") from None
    r = factors.shape[1] if factors.ndim == 2 else -1
    if (factors.shape != (NUM_CELLS, r) or mean.shape != (r,) or cov.shape != (r, r)
            or not np.all(np.isfinite(factors)) or not np.all(np.isfinite(cov)) or noise <= 0
            or (table is not None and (table.ndim != 2 or table.shape[0] != NUM_CELLS
                                       or table.shape[1] < 1
                                       or not np.all(np.isfinite(table))))
            or (dev_w is not None and (dev_w.ndim != 2 or dev_w.shape[1] != r
                                       or not np.all(np.isfinite(dev_w))))):
        raise DataError(f"pretrained model {path} has inconsistent arrays (factors "
                        f"{factors.shape}, prior {mean.shape}, table factors "
                        f"{None if table is None else table.shape}, device weights "
                        f"{None if dev_w is None else dev_w.shape}); rebuild it with "
                        "'nasloop pretrain --force --out PATH'")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"pretrained model {path}: unknown format; rebuild it with "
                        "'nasloop pretrain --force --out PATH'")
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise DataError(f"pretrained model {path}: its prior covariance is not positive "
                        "definite; rebuild it with 'nasloop pretrain --force --out PATH'") from None
    sources = meta.get("sources")
    if dev_w is not None and isinstance(sources, list) and len(sources) != dev_w.shape[0]:
        raise DataError(f"pretrained model {path}: {dev_w.shape[0]} device weights for "
                        f"{len(sources)} sources; rebuild it with 'nasloop pretrain --force --out PATH'")
    meta["path"] = path
    return Pretrained(FactorModel(factors, mean, cov, noise, off_m, off_v, table, dev_w), meta)


#: models pretrained without one table, by cache key: a process that fits on several
#: public tables (or the test suite, one cache folder per test) pretrains each once
_WITHOUT: dict[str, Pretrained] = {}


def pretrained_without(table: str, data_dir: str | Path | None = None,
                       log: Callable[[str], None] | None = None) -> Path | None:
    """A model pretrained on every table but ``table``, when the default model has seen
    ``table`` (a public table, or one of nasloop's own): a test on that table's cells is
    then a test on a device the model has not seen, as a user's would be. Cached beside
    the fitted oracles (about 15 s the first time). None when the default model has not
    seen ``table``, or there is no data directory to pretrain from (the caller warns)."""
    try:
        default = default_pretrained(data_dir, log)
    except DataError:
        return None
    if table not in {s.get("name") for s in default.meta.get("sources", [])}:
        return None
    root = resolve_data_dir(data_dir, required=False)
    devices = available_devices(root) if root is not None else []
    if table not in {d.name for d in devices}:
        return None
    digest = _cache_key(root, f"without:{table}", devices)
    path = cache_dir() / f"transfer-without-{table}-{digest}.npz"
    if not path.is_file():
        if digest not in _WITHOUT:
            if log:
                log(f"pretraining the transfer model without {table} once (a fair test "
                    f"on its cells); cached in {path}")
            _WITHOUT[digest] = pretrain(root, exclude=[table])
        save_pretrained(_WITHOUT[digest], path)
    return path


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nasloop"


def _cache_key(root: Path, extra: str = "", devices: list | None = None) -> str:
    """A cached model's key: every source file's path, size and mtime (new or changed
    tables give a fresh model), the version and the ranks, and ``extra``. ``devices``:
    ``available_devices(root)`` where the caller has scanned it already."""
    key = hashlib.sha1()
    for d in available_devices(root) if devices is None else devices:
        f = Path(d.relpath) if Path(d.relpath).is_absolute() else root / d.relpath
        st = f.stat()
        key.update(f"{f.resolve()}:{st.st_size}:{st.st_mtime_ns};".encode())
    key.update(f"{__version__}:{DEFAULT_RANK}:{TABLE_RANK}{':' + extra if extra else ''}".encode())
    return key.hexdigest()[:12]


def default_pretrained(data_dir: str | Path | None = None,
                       log: Callable[[str], None] | None = None) -> Pretrained:
    """The shipped model if present, else one pretrained from the data directory, cached.

    The cache key covers every source file's path, size and mtime, so new or changed
    tables give a fresh model.
    """
    if SHIPPED.is_file():
        return load_pretrained(SHIPPED)
    root = resolve_data_dir(data_dir, required=False)
    if root is None:
        raise DataError("no pretrained transfer model: none is shipped and there is no data "
                        "directory to pretrain from; set NASLOOP_DATA=DIR or pass "
                        "--set pretrained=PATH (build one with 'nasloop pretrain --out PATH')")
    path = cache_dir() / f"transfer-{_cache_key(root)}.npz"
    if path.is_file():
        return load_pretrained(path)
    if log:
        log(f"pretraining the transfer model from {root} once; cached in {path}")
    save_pretrained(pretrain(root), path)
    return load_pretrained(path)
