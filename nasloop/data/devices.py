"""The device registry: readable names for every latency table nasloop can load.

A device is named (``desktop_cpu``), or given as the path of a CSV of the user's own
measurements (``arch,latency_ms``): every command that takes ``--device`` accepts both.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import DataError, DeviceError
from .accuracy import AccuracyTable, load_accuracy_csv
from .tables import (LatencyTable, load_brpnas_pickle, load_csv_table, load_help_arch2idx,
                     load_help_latency, read_sidecar)

DATA_ENV = "NASLOOP_DATA"
#: tables nasloop measured itself, committed with the project
MEASURED_DIR = Path(__file__).resolve().parent / "measured"


@dataclass(frozen=True)
class Device:
    name: str
    description: str
    kind: str  # "brpnas" | "help" | "measured"
    relpath: str  # relative to the data directory (or MEASURED_DIR for measured)


_BRPNAS = [
    ("desktop_cpu", "desktop-cpu-core-i7-7820x-fp32.pickle", "Intel Core i7-7820X desktop CPU, fp32 (paper: desktop CPU)"),
    ("desktop_gpu", "desktop-gpu-gtx-1080ti-fp32.pickle", "NVIDIA GTX 1080 Ti desktop GPU, fp32 (paper: desktop GPU)"),
    ("desktop_gpu_large", "desktop-gpu-gtx-1080ti-large.pickle", "NVIDIA GTX 1080 Ti, larger input/batch variant"),
    ("jetson_nano", "embedded-gpu-jetson-nono-fp16.pickle", "NVIDIA Jetson Nano embedded GPU, fp16"),
    ("edgetpu", "embeeded-tpu-edgetpu-int8.pickle", "Google Edge TPU, int8"),
    ("edgetpu_large", "embedded-tpu-edgetpu-large.pickle", "Google Edge TPU, int8, large variant"),
    ("mobile_cpu_a53", "mobile-cpu-snapdragon-450-contex-a53-int8.pickle", "Snapdragon 450 Cortex-A53 mobile CPU, int8"),
    ("mobile_cpu_kryo460", "mobile-cpu-snapdragon-675-kryo-460-int8.pickle", "Snapdragon 675 Kryo 460 mobile CPU, int8"),
    ("mobile_cpu_kryo485", "mobile-cpu-snapdragon-855-kryo-485-int8.pickle", "Snapdragon 855 Kryo 485 mobile CPU, int8"),
    ("mobile_dsp_685", "mobile-dsp-snapdragon-675-hexagon-685-int8.pickle", "Snapdragon 675 Hexagon 685 mobile DSP, int8"),
    ("mobile_dsp", "mobile-dsp-snapdragon-855-hexagon-690-int8.pickle", "Snapdragon 855 Hexagon 690 mobile DSP, int8 (paper: mobile DSP)"),
    ("mobile_gpu_adreno506", "mobile-gpu-snapdragon-450-adreno-506-int8.pickle", "Snapdragon 450 Adreno 506 mobile GPU, int8"),
    ("mobile_gpu_adreno612", "mobile-gpu-snapdragon-675-adren0-612-int8.pickle", "Snapdragon 675 Adreno 612 mobile GPU, int8"),
    ("mobile_gpu_adreno640", "mobile-gpu-snapdragon-855-adren0-640-int8.pickle", "Snapdragon 855 Adreno 640 mobile GPU, int8"),
]
_HELP_GPUS = {"1080ti": "NVIDIA GTX 1080 Ti", "titanx": "NVIDIA Titan X", "titanxp": "NVIDIA Titan Xp"}
_HELP_OTHER = {
    "silver_4114": "Intel Xeon Silver 4114 server CPU",
    "silver_4210r": "Intel Xeon Silver 4210R server CPU",
    "pixel3": "Google Pixel 3 phone",
    "fpga": "Xilinx ZC706 FPGA (HW-NAS-Bench)",
}


def _catalogue() -> list[Device]:
    devs = [Device(n, d, "brpnas", f"eagle/{f}") for n, f, d in _BRPNAS]
    for gpu, label in _HELP_GPUS.items():
        for bs in (1, 32, 256):
            devs.append(Device(f"help_{gpu}_bs{bs}", f"{label}, batch {bs} (HELP)", "help",
                               f"help/latency/{gpu}_{bs}.pt"))
    for key, label in _HELP_OTHER.items():
        devs.append(Device(f"help_{key}", f"{label} (HELP)", "help", f"help/latency/{key}.pt"))
    return devs


CATALOGUE: dict[str, Device] = {d.name: d for d in _catalogue()}


def resolve_data_dir(data_dir: str | Path | None = None, *, required: bool = True) -> Path | None:
    """The benchmark data directory from the option, else ``$NASLOOP_DATA``."""
    if isinstance(data_dir, str) and not data_dir.strip():
        raise DataError("--data-dir is empty: give the folder holding eagle/, help/ and nats/, "
                        f"or leave the option out to use ${DATA_ENV}")
    raw = data_dir if data_dir is not None else os.environ.get(DATA_ENV) or None
    if raw is None:
        if required:
            raise DataError(f"no benchmark data directory: pass --data-dir DIR or set {DATA_ENV}=DIR "
                            "(the folder holding eagle/, help/ and nats/)")
        return None
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise DataError(f"benchmark data directory {path} does not exist: fix --data-dir or "
                        f"{DATA_ENV} (the folder holding eagle/, help/ and nats/)")
    return path


def measured_devices() -> list[Device]:
    """Tables nasloop measured itself and ships (``data/measured/*.csv``)."""
    out = []
    if MEASURED_DIR.is_dir():
        for f in sorted(MEASURED_DIR.glob("*.csv")):
            out.append(Device(f"measured_{f.stem}", _measured_description(f), "measured", str(f)))
    return out


def _measured_names() -> set[str]:
    """The shipped measured tables' names (no sidecar read: a name check on every load)."""
    if not MEASURED_DIR.is_dir():
        return set()
    return {f"measured_{f.stem}" for f in MEASURED_DIR.glob("*.csv")}


def _measured_description(csv_path: Path) -> str:
    meta = read_sidecar(csv_path)
    if meta is None:  # no sidecar, or not a JSON object
        return "measured by nasloop"
    return (f"measured by nasloop: {meta.get('device_model', '?')}, batch {meta.get('batch', '?')}, "
            f"{meta.get('threads', '?')} thread(s), torch {meta.get('torch', '?')}, "
            f"{meta.get('network', 'reference')} network"
            + (", CUDA graph" if (meta.get("protocol") or {}).get("graph") else ""))


def no_benchmark_tables(root: Path) -> str:
    """What to say of a data directory that holds none of the known benchmark tables."""
    return (f"{root} holds no benchmark latency table (eagle/*.pickle or help/latency/*.pt "
            "under it): check --data-dir or $NASLOOP_DATA, the folder holding eagle/, help/ "
            "and nats/")


def available_devices(data_dir: str | Path | None = None) -> list[Device]:
    """Named devices whose table is present (benchmark tables need a data directory)."""
    root = resolve_data_dir(data_dir, required=False)
    devs = []
    if root is not None:
        devs = [d for d in CATALOGUE.values() if (root / d.relpath).is_file()]
    return devs + measured_devices()


def device_summaries(data_dir: str | Path | None = None) -> tuple[list[dict], list[str]]:
    """Summaries of the available devices that load, and one line per table that does not.

    One corrupt file must not hide every other table: it is named, the rest are listed.
    """
    root = resolve_data_dir(data_dir, required=False)  # a wrong path is an error, not empty
    rows, problems = [], []
    if root is not None and not any((root / d.relpath).is_file() for d in CATALOGUE.values()):
        # a warning, not a failure: a folder with only nats/ serves a search on a user's CSV
        warnings.warn(no_benchmark_tables(root), stacklevel=2)
    if root is None:  # only the tables shipped with nasloop: say where the others are
        warnings.warn(f"no data directory given, so only the tables measured by nasloop are "
                      f"listed; pass --data-dir DIR or set {DATA_ENV} to the folder holding "
                      "eagle/, help/ and nats/ for the benchmark devices", stacklevel=2)
    for d in available_devices(data_dir):
        try:
            rows.append(load_device(d.name, data_dir).summary())
        except DataError as e:
            problems.append(f"device {d.name} not listed: {e}")
    return rows, problems


def _unknown_device(spec: str, data_dir: str | Path | None) -> DeviceError:
    names = list(CATALOGUE) + [d.name for d in measured_devices()]
    close = difflib.get_close_matches(spec, names, n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return DeviceError(f"unknown device {spec!r}{hint}; run 'nasloop devices' for the list, "
                       "or pass the path of a CSV with columns arch,latency_ms")


def load_device(spec: str | Path, data_dir: str | Path | None = None, *,
                skip_bad_rows: bool = False) -> LatencyTable:
    """Load a device by name or as a user CSV path."""
    spec_s = str(spec)
    path = Path(spec_s).expanduser()
    if spec_s.lower().endswith(".csv") or path.is_file():
        if path.is_dir():
            raise DataError(f"device CSV {path} is a folder; give the path of the CSV file")
        if not path.is_file():
            raise DataError(f"device CSV {path} does not exist")
        st = path.stat()
        table = _load_csv_cached(str(path.resolve()), st.st_mtime_ns, st.st_size, skip_bad_rows)
        if table.name in CATALOGUE or table.name in _measured_names():
            # a user's desktop_gpu.csv is not the benchmark's desktop_gpu: never one name
            table = dataclasses.replace(table, name=path.name)
        return table
    measured = {d.name: d for d in measured_devices()}
    if spec_s in measured:
        d = measured[spec_s]
        t = load_csv_table(d.relpath, name=d.name, description=d.description)
        t.source = d.relpath
        return t
    if not spec_s.strip():
        raise DeviceError(f"device {spec_s!r} is empty: give a device name ('nasloop devices' "
                          "lists them) or the path of a CSV with columns arch,latency_ms")
    if spec_s not in CATALOGUE:
        if path.is_dir():
            raise DeviceError(f"device {spec_s!r} is a folder; give a device name ('nasloop "
                              "devices' lists them) or the path of a CSV with columns "
                              "arch,latency_ms")
        raise _unknown_device(spec_s, data_dir)
    dev = CATALOGUE[spec_s]
    root = resolve_data_dir(data_dir)
    assert root is not None
    file = root / dev.relpath
    if not file.is_file():
        raise DataError(f"device {spec_s!r} needs {file}, which is missing from the data directory")
    return _load_named_cached(dev.name, str(root.resolve()), file.stat().st_mtime_ns)


@lru_cache(maxsize=64)
def _load_csv_cached(path: str, mtime: int, size: int, skip_bad_rows: bool) -> LatencyTable:
    return load_csv_table(path, skip_bad_rows=skip_bad_rows)


@lru_cache(maxsize=64)
def _load_named_cached(name: str, root: str, mtime: int) -> LatencyTable:
    dev = CATALOGUE[name]
    file = Path(root) / dev.relpath
    if dev.kind == "brpnas":
        return load_brpnas_pickle(file, dev.name, dev.description)
    arch2idx = _help_arch2idx(root)
    return load_help_latency(file, arch2idx, dev.name, dev.description)


@lru_cache(maxsize=4)
def _help_arch2idx(root: str) -> dict[str, int]:
    return load_help_arch2idx(Path(root) / "help" / "str_arch2idx.pt")


def load_accuracy(data_dir: str | Path | None = None, *, required: bool = False) -> AccuracyTable | None:
    """The accuracy table from ``<data>/nats/nats_bench.csv``, or None where there is none."""
    root = resolve_data_dir(data_dir, required=required)
    if root is None:
        return None
    file = root / "nats" / "nats_bench.csv"
    if not file.is_file():
        if required:
            raise DataError(f"accuracy table {file} is missing: the search objective needs it")
        return None
    return _load_acc_cached(str(file.resolve()), file.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _load_acc_cached(path: str, mtime: int) -> AccuracyTable:
    return load_accuracy_csv(path)
