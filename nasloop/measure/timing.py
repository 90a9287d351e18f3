"""Timing a cell's network on this machine's CPU or GPU, resumable row by row."""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..network import INPUT_SHAPE, CellNetwork, check_form
from ..paths import can_create_in, nearest_existing
from ..space import Arch

FIELDS = ["arch", "latency_ms", "median_ms", "iqr_ms", "min_ms", "repeats", "rounds",
          "spread_pct"]


def check_graph(protocol: "TimingProtocol", device: str) -> None:
    """A CUDA graph exists only on a GPU: refuse ``graph`` elsewhere, before any timing."""
    if protocol.graph and device != "cuda":
        raise ConfigError(f"--cuda-graph times a CUDA graph and needs --device cuda, got "
                          f"--device {device}; drop --cuda-graph to time on the CPU")


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
    with torch.inference_mode():
        return time_calls(lambda: model(x), cuda=x.is_cuda, warmup=warmup, repeats=repeats)


def time_calls(run: Callable[[], object], *, cuda: bool, warmup: int,
               repeats: int) -> list[float]:
    """Per-call latency in ms of ``run`` (a forward pass, or a CUDA graph's replay)."""
    times = []
    for _ in range(warmup):
        run()
    if cuda:
        torch.cuda.synchronize()
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def graph_replay(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The forward pass on ``x``'s memory captured as a CUDA graph; returns its replay.

    At batch 1 this network is a few hundred tiny kernels and the GPU waits for the host to
    launch them, so eager CUDA timings measure Python's launch path (as noisy as a VM's
    CPU). A graph launches them all at once: what is timed is the GPU's own work, as a
    deployment through CUDA graphs (TensorRT, ``torch.compile(mode="reduce-overhead")``)
    would run it.
    """
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.inference_mode(), torch.cuda.stream(side):
        for _ in range(2):  # cuDNN handles and workspaces exist before the capture
            model(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph):
        out = model(x)

    def replay(_inputs: torch.Tensor = x) -> torch.Tensor:
        """The forward pass of whatever ``x`` holds now; the output lives in ``out``.
        (``_inputs`` keeps ``x``'s memory alive for as long as the replay exists.)"""
        graph.replay()
        return out
    return replay


#: statistics over timed runs
STATISTICS = {"median": statistics.median, "p25": lambda t: np.percentile(t, 25), "min": min}


@dataclass(frozen=True)
class TimingProtocol:
    """How cells are timed. Recorded in every measured table's sidecar; a resume must match.

    A VM is a noisy timer: neighbours steal the CPU in bursts and the clock drifts. So cells
    are timed in ``rounds`` interleaved passes over a block of cells (each round in a new
    shuffled order, so slow drift hits every cell alike), each visit ``warmup`` untimed and
    ``repeats`` timed runs. A cell's latency is ``statistic`` over all its timed runs: by
    default the minimum, which, as Python's ``timeit`` documents, is the value least
    disturbed by other processes (interference only ever adds time). On this project's
    2-vCPU VM two runs over 40 cells agreed within 10 % for 92 % of cells with the minimum
    of 3 x 10 runs and 48 % with their median (docs/results.md, "Measurements that hold
    still"). With ``remeasure_pct`` set, cells whose rounds disagree by more than that (the
    spread of the per-round statistic) get ``rounds`` more; off by default: on this VM the
    minimum of one round's 7 runs varies by 30-40 % between rounds, so a 10 % rule re-timed
    nearly every cell, doubling the cost for no better agreement (docs/results.md). Threads
    are pinned (and restored afterwards).
    ``rounds=1, repeats=50, warmup=10, statistic="median"`` is the protocol of tables
    measured before it. ``graph`` (CUDA only) times the replay of a CUDA graph of the
    forward pass instead of eager launches (see ``graph_replay``).
    """

    network: str = "deployable"
    batch: int = 1
    rounds: int = 3
    repeats: int = 7
    warmup: int = 1
    threads: int = 1
    remeasure_pct: float | None = None
    block: int = 50
    statistic: str = "min"
    seed: int = 0
    graph: bool = False

    def __post_init__(self) -> None:
        check_form(self.network)
        for name in ("batch", "rounds", "repeats", "threads", "block"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"timing: {name} must be >= 1, got {getattr(self, name)!r}")
        if int(self.warmup) < 0 or not (self.remeasure_pct is None
                                         or float(self.remeasure_pct) > 0):
            raise ConfigError("timing: warmup must be >= 0 and remeasure_pct > 0 (or None)")
        if self.statistic not in STATISTICS:
            raise ConfigError(f"timing: statistic must be one of {', '.join(STATISTICS)}, "
                              f"got {self.statistic!r}")

    def of_runs(self, runs: list[float]) -> float:
        """The statistic over timed runs (one round's, or all of a cell's)."""
        return float(STATISTICS[self.statistic](runs))

    def key(self) -> dict:
        """What must be equal for two runs to belong in one table."""
        return {"network": self.network, "batch": self.batch, "rounds": self.rounds,
                "repeats": self.repeats, "warmup": self.warmup, "threads": self.threads,
                "statistic": self.statistic, "graph": bool(self.graph)}


def _legacy_protocol(side: dict) -> dict:
    """The protocol of a sidecar written before protocols were recorded."""
    return {"network": "reference", "batch": side.get("batch", 1), "rounds": 1,
            "repeats": side.get("repeats"), "warmup": side.get("warmup"),
            "threads": side.get("threads"), "statistic": "median"}


@contextmanager
def pinned_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` inside, restored on the way out."""
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _row(arch: Arch, per_round: list[float], runs: list[float], protocol: TimingProtocol
         ) -> dict:
    """A table row: the statistic over all runs, and how much the rounds disagreed."""
    value = protocol.of_runs(runs)
    q1, q3 = np.percentile(runs, [25, 75])
    mid = float(np.median(per_round))
    spread = (max(per_round) - min(per_round)) / mid * 100 if mid > 0 else 0.0
    return {"arch": str(arch), "latency_ms": value, "median_ms": float(np.median(runs)),
            "iqr_ms": float(q3 - q1), "min_ms": float(min(runs)), "repeats": len(runs),
            "rounds": len(per_round), "spread_pct": float(spread)}


def measure_block(archs: Sequence[Arch], device: str = "cpu",
                  protocol: TimingProtocol | None = None, *, block_index: int = 0) -> list[dict]:
    """Time ``archs`` together under ``protocol``: one row per cell, in the given order."""
    p = protocol or TimingProtocol()
    dev = _device(device)
    check_graph(p, device)
    rng = np.random.default_rng([int(p.seed), int(block_index)])
    with pinned_threads(p.threads), torch.inference_mode():
        models = [CellNetwork(a, form=p.network).eval().to(dev) for a in archs]
        x = torch.randn(p.batch, *INPUT_SHAPE, device=dev)
        calls = [graph_replay(m, x) if p.graph else (lambda m=m: m(x)) for m in models]
        per_round: list[list[float]] = [[] for _ in archs]
        runs: list[list[float]] = [[] for _ in archs]

        def rounds(which: list[int]) -> None:
            for _ in range(p.rounds):
                for i in rng.permutation(which):
                    t = time_calls(calls[i], cuda=dev.type == "cuda", warmup=p.warmup,
                                   repeats=p.repeats)
                    per_round[i].append(p.of_runs(t))
                    runs[i].extend(t)

        rounds(list(range(len(archs))))
        rows = [_row(a, m, r, p) for a, m, r in zip(archs, per_round, runs)]
        shaky = ([] if p.remeasure_pct is None else
                 [i for i, row in enumerate(rows) if row["spread_pct"] > p.remeasure_pct])
        if shaky:  # once more for the cells whose rounds disagree
            rounds(shaky)
            for i in shaky:
                rows[i] = _row(archs[i], per_round[i], runs[i], p)
    return rows


def measure_arch(arch: Arch, device: str = "cpu", *, batch: int = 1, warmup: int = 10,
                 repeats: int = 50, network: str = "deployable", threads: int | None = None,
                 graph: bool = False) -> dict:
    """One cell timed alone (``repeats`` runs after ``warmup``): the live validation's check.

    ``graph`` (CUDA only) times the replay of a CUDA graph, as ``measure --cuda-graph``."""
    p = TimingProtocol(network=network, rounds=1, repeats=repeats, warmup=warmup, graph=graph)
    check_graph(p, device)
    dev = _device(device)
    with pinned_threads(threads):
        model = CellNetwork(arch, form=network).eval().to(dev)
        x = torch.randn(batch, *INPUT_SHAPE, device=dev)
        with torch.inference_mode():  # the calls as measure_block builds them
            run = graph_replay(model, x) if graph else (lambda: model(x))
            t = time_calls(run, cuda=dev.type == "cuda", warmup=warmup, repeats=repeats)
    return _row(arch, [p.of_runs(t)], t, p)


def conditions(device: str, protocol: TimingProtocol) -> dict:
    """The sidecar of a measured table: machine, software and the timing protocol."""
    return {"device": device, "device_model": device_model(device), "torch": torch.__version__,
            "threads": protocol.threads, "batch": protocol.batch,
            "input_size": list(INPUT_SHAPE), "warmup": protocol.warmup,
            "repeats": protocol.repeats, "network": protocol.network,
            "protocol": asdict(protocol),
            "python": platform.python_version(), "platform": platform.platform(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "statistic": (f"latency_ms is the {protocol.statistic} over all timed runs of "
                          f"{protocol.rounds} rounds interleaved over blocks of cells, each in "
                          "a shuffled order")}


def check_sidecar(side: Path, protocol: TimingProtocol, device: str) -> None:
    """Refuse to add rows measured another way to an existing table."""
    if not side.is_file():
        return
    try:
        old = json.loads(side.read_text())
        before = old.get("protocol") or _legacy_protocol(old)
        before = {k: before.get(k, False if k == "graph" else None) for k in protocol.key()}
    except (OSError, ValueError, AttributeError) as e:
        raise DataError(f"cannot read {side} ({e}); move it and its CSV away, or pick another "
                        "--out") from None
    now = protocol.key()
    diff = [f"{k} {before[k]!r} -> {now[k]!r}" for k in now if before[k] != now[k]]
    if old.get("device", device) != device:
        diff.insert(0, f"device {old.get('device')!r} -> {device!r}")
    if diff:
        raise ConfigError(f"{side.with_suffix('.csv')} was measured with another protocol "
                          f"({'; '.join(diff)}): resume with the same options, or pick "
                          "another --out")


def device_model(device: str) -> str:
    """The GPU's name for ``cuda``, else the CPU's model: what a timing table belongs to."""
    return torch.cuda.get_device_name(0) if device == "cuda" else _cpu_model()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def check_out_csv(path: str | Path, option: str = "--out") -> Path:
    """Refuse an output CSV that cannot be written, before any cell is timed; messages
    name ``option``, the option the path came from."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise ConfigError(f"{option} {path} is a folder; give the path of a CSV file")
    folder = nearest_existing(p.parent)  # the folders that do not exist yet are created
    if not folder.is_dir():
        raise ConfigError(f"{option} {path}: {folder} is a file, not a folder; "
                          f"choose another {option}")
    if not can_create_in(folder) or (p.exists() and not os.access(p, os.W_OK)):
        raise ConfigError(f"{option} {path}: cannot write there ({folder} is not writable); "
                          f"choose another {option}")
    if p.is_file() and p.stat().st_size:  # resuming appends: only to a table of this kind
        with open(p, newline="", errors="replace") as f:
            head = next(csv.reader(f), [])
        if head[:3] != FIELDS[:3]:
            raise ConfigError(f"{option} {path} exists and is not a measured table (its header "
                              f"is not {','.join(FIELDS[:3])},...); choose another {option}")
    return p


def _drop_partial_row(path: Path) -> None:
    """Cut a last row that an interrupted write left without its line end (appending
    would glue the next row onto it), with a warning naming it."""
    if not path.is_file() or not path.stat().st_size:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        data = f.seek(0) or f.read()
        keep = data.rfind(b"\n") + 1
        if keep == 0:  # the header itself is cut: nothing measured to keep
            raise DataError(f"{path} holds only a partial header line; move it away or pick "
                            "another --out")
        f.truncate(keep)
    warnings.warn(f"{path}: dropped a partial last row (an interrupted write): "
                  f"{data[keep:].decode(errors='replace')[:60]!r}; that cell is measured again",
                  stacklevel=3)


def already_measured(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    try:
        with open(path, newline="") as f:
            return {row["arch"] for row in csv.DictReader(f) if row.get("latency_ms")}
    except (OSError, KeyError, csv.Error) as e:
        raise DataError(f"cannot resume from {path}: {e}; move it away or pick another --out") from None


def measure_to_csv(archs: Sequence[Arch], out: str | Path, device: str = "cpu", *,
                   protocol: TimingProtocol | None = None,
                   on_cell: Callable[[int, int, dict | None], None] | None = None) -> int:
    """Measure ``archs`` into ``out`` (appending; cells already there are skipped).

    Cells are timed in blocks of ``protocol.block`` (interleaved rounds need the block
    together); each block's rows are flushed as soon as it is done, so an interrupted run
    loses at most the block in progress. Returns the number of cells measured now.
    """
    p = protocol or TimingProtocol()
    _device(device)  # no CUDA: one line, before any file is written
    check_graph(p, device)
    out = check_out_csv(out)
    side = out.with_suffix(".json")
    check_sidecar(side, p, device)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create its folder ({e.strerror or e}); "
                          "choose another --out") from None
    if out.is_file() and out.stat().st_size and not side.exists():
        # rows without a sidecar were measured some unknown way: appending would mix them
        raise ConfigError(f"--out {out} has rows but no {side.name} recording how they were "
                          "measured, so new rows could not be told apart; pick another --out")
    _drop_partial_row(out)
    done = already_measured(out)
    todo = [a for a in archs if str(a) not in done]
    if not side.exists():
        side.write_text(json.dumps(conditions(device, p), indent=2))
    new_file = not out.exists() or out.stat().st_size == 0
    fields = FIELDS
    if not new_file:  # resuming an older table: its own columns, so every row parses
        with open(out, newline="") as f:
            fields = next(csv.reader(f), FIELDS) or FIELDS
    n = 0
    with open(out, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new_file:
            w.writeheader()
        if on_cell:
            on_cell(len(archs) - len(todo), len(archs), None)
        for b in range(0, len(todo), int(p.block)):
            block = todo[b:b + int(p.block)]
            rows = measure_block(block, device, p, block_index=len(done) + b)
            for row in rows:
                w.writerow({k: (f"{v:.5f}" if isinstance(v, float) else v) for k, v in row.items()})
            f.flush()
            for row in rows:
                n += 1
                if on_cell:
                    on_cell(len(archs) - len(todo) + n, len(archs), row)
    return n
