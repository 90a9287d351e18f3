"""Timing a cell's network on this machine's CPU or GPU, resumable row by row."""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..network import INPUT_SHAPE, CellNetwork
from ..space import Arch

FIELDS = ["arch", "latency_ms", "median_ms", "iqr_ms", "min_ms", "repeats"]


def _device(kind: str) -> torch.device:
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA GPU is visible to torch on this machine; "
                              "use --device cpu, or install a CUDA build of torch")
        return torch.device("cuda")
    if kind != "cpu":
        raise ConfigError(f"measure device must be 'cpu' or 'cuda', got {kind!r}")
    return torch.device("cpu")


def time_module(model: torch.nn.Module, x: torch.Tensor, *, warmup: int = 10,
                repeats: int = 50) -> list[float]:
    """Per-run latency in ms: CUDA events with synchronisation on a GPU, perf_counter on CPU."""
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        if x.is_cuda:
            torch.cuda.synchronize()
            for _ in range(repeats):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                model(x)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
        else:
            for _ in range(repeats):
                t0 = time.perf_counter()
                model(x)
                times.append((time.perf_counter() - t0) * 1e3)
    return times


def measure_arch(arch: Arch, device: str = "cpu", *, batch: int = 1, warmup: int = 10,
                 repeats: int = 50) -> dict:
    dev = _device(device)
    model = CellNetwork(arch).eval().to(dev)
    x = torch.randn(batch, *INPUT_SHAPE, device=dev)
    t = time_module(model, x, warmup=warmup, repeats=repeats)
    q1, _, q3 = np.percentile(t, [25, 50, 75])
    med = statistics.median(t)
    return {"arch": str(arch), "latency_ms": med, "median_ms": med, "iqr_ms": float(q3 - q1),
            "min_ms": min(t), "repeats": repeats}


def conditions(device: str, batch: int, threads: int | None, warmup: int, repeats: int) -> dict:
    if device == "cuda":
        model = torch.cuda.get_device_name(0)
    else:
        model = _cpu_model()
    return {"device": device, "device_model": model, "torch": torch.__version__,
            "threads": torch.get_num_threads() if threads is None else threads, "batch": batch,
            "input_size": list(INPUT_SHAPE), "warmup": warmup, "repeats": repeats,
            "python": platform.python_version(), "platform": platform.platform(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "statistic": "latency_ms is the median over repeats"}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def check_out_csv(path: str | Path) -> Path:
    """Refuse an output CSV that cannot be written, before any cell is timed."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise ConfigError(f"--out {path} is a folder; give the path of a CSV file")
    folder = p.parent
    while not folder.exists():  # the folders that do not exist yet are created
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"--out {path}: {folder} is a file, not a folder; choose another --out")
    if not os.access(folder, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ConfigError(f"--out {path}: cannot write there ({folder} is not writable); "
                          "choose another --out")
    return p


def already_measured(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    try:
        with open(path, newline="") as f:
            return {row["arch"] for row in csv.DictReader(f) if row.get("latency_ms")}
    except (OSError, KeyError, csv.Error) as e:
        raise DataError(f"cannot resume from {path}: {e}; move it away or pick another --out") from None


def measure_to_csv(archs: Sequence[Arch], out: str | Path, device: str = "cpu", *, batch: int = 1,
                   warmup: int = 10, repeats: int = 50, threads: int | None = None,
                   on_cell: Callable[[int, int, dict | None], None] | None = None) -> int:
    """Measure ``archs`` into ``out`` (appending; cells already there are skipped).

    Each row is flushed as soon as it is measured, so an interrupted run loses at most the
    cell in progress. Returns the number of cells measured now.
    """
    _device(device)  # no CUDA: one line, before any file is written
    out = check_out_csv(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create its folder ({e.strerror or e}); "
                          "choose another --out") from None
    done = already_measured(out)
    todo = [a for a in archs if str(a) not in done]
    if threads:
        torch.set_num_threads(int(threads))
    side = out.with_suffix(".json")
    if not side.exists():
        side.write_text(json.dumps(conditions(device, batch, threads, warmup, repeats), indent=2))
    new_file = not out.exists() or out.stat().st_size == 0
    n = 0
    with open(out, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        if new_file:
            w.writeheader()
        if on_cell:
            on_cell(len(archs) - len(todo), len(archs), None)
        for a in todo:
            row = measure_arch(a, device, batch=batch, warmup=warmup, repeats=repeats)
            w.writerow({k: (f"{v:.5f}" if isinstance(v, float) else v) for k, v in row.items()})
            f.flush()
            n += 1
            if on_cell:
                on_cell(len(archs) - len(todo) + n, len(archs), row)
    return n
