"""Several predictor fits at once, one process each: how ``auto`` uses a machine's cores.

``auto``'s slow work is a few GCN trainings, each on one core (``threads=1``: a second
thread thrashes on batches of 4). Side by side in worker processes they take the time of
the longest instead of the sum, with the same results as one after another: each fit is
seeded on its own and single-threaded either way. Workers are forked (Linux): a spawned
worker would re-run the caller's script, which a script without a ``__main__`` guard
cannot survive; the fits in them run one torch thread each, so no thread pool is
inherited mid-use (``gcn_plus``'s default; a GCN given more threads keeps them). Where
fork is missing (macOS, Windows) the fits run one after another.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import queue as queue_mod
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..space import Arch
from .base import Predictor

#: ``progress(job, epoch, total)``: a job's epoch count, for one bar over every job
JobProgress = Callable[[int, int, int], None]


@dataclass
class FitJob:
    """One fit: a predictor class and its parameters, its cells, and the cells it
    early-stops on (``val``; None for a backend that uses every cell)."""

    cls: type[Predictor]
    params: dict[str, Any]
    x: list[Arch]
    y: np.ndarray
    val: tuple[list[Arch], np.ndarray] | None = None


@dataclass
class FitDone:
    """A finished job: the fitted predictor, or why it failed, and its seconds."""

    predictor: Predictor | None
    error: str | None
    seconds: float


def usable_cpus() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def can_fork_workers() -> bool:
    """Whether this process can run fits in forked workers: Linux, and not a daemon
    process (which may not start children)."""
    return (sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods()
            and not mp.current_process().daemon)


def default_workers() -> int:
    """Worker processes ``auto`` uses unless told: one per core, at most 4 (its GCN fits
    and their refits); 1 where workers cannot be forked."""
    return max(1, min(4, usable_cpus())) if can_fork_workers() else 1


def side_by_side(workers: int) -> bool:
    """Whether ``fit_all(jobs, workers)`` runs slow jobs in workers (given two of them)."""
    return int(workers) > 1 and can_fork_workers()


def fit_one(job: FitJob, progress: Callable | None = None) -> FitDone:
    """Fit ``job`` here. A failing fit is returned as its error, not raised (a bad
    configuration and an interrupt are raised)."""
    p = job.cls(**job.params)
    t0 = time.perf_counter()
    try:
        p.fit(job.x, job.y, val=job.val, progress=progress)
    except (ConfigError, KeyboardInterrupt):
        raise
    except Exception as e:  # noqa: BLE001 - the caller records it
        return FitDone(None, f"{type(e).__name__}: {e}", time.perf_counter() - t0)
    return FitDone(p, None, time.perf_counter() - t0)


def _portable(job: FitJob) -> bool:
    """Whether a worker can be handed the job's class: one found by name (not a class
    local to a function)."""
    try:
        pickle.dumps(job.cls)
    except Exception:  # noqa: BLE001 - any reason means: fit it here
        return False
    return True


def _slow(job: FitJob) -> bool:
    """An iterative backend (a GCN): worth a process of its own."""
    return bool(job.cls.tags.get("iterative"))


_QUEUE: Any = None


#: ``prctl`` option: the signal a process gets when the thread that forked it ends
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this worker when its parent ends, however it ends: a parent
    killed by SIGKILL (an OOM killer, a CI timeout) cannot terminate its workers, which
    then trained on as orphans for minutes (session 15). Best effort: without the call
    (another libc) the worker lives as before."""
    try:
        import ctypes

        if ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            return
    except (ImportError, OSError, AttributeError):  # no ctypes, no libc, no prctl
        return
    # ``parent`` is the process that forked this one (the fork context: a forkserver's
    # workers would have the server as their parent): if it is gone already, the
    # signal was armed too late to fire
    if os.getppid() != parent:
        os._exit(1)


def _init_worker(q: Any, parent: int) -> None:
    """A fresh worker: its Ctrl-C is the parent's to handle (it terminates the workers),
    it dies with its parent, and it writes to the real stderr, not to a copy of the
    parent's live progress bar (whose lock may have been held at the fork)."""
    global _QUEUE
    _QUEUE = q
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__


def _fit_in_worker(i: int, job: FitJob) -> bytes:
    """Fit in a worker; the result goes back as plain pickle bytes (tensors by value).
    Left to multiprocessing, torch would send its tensors as shared-memory handles, whose
    locks a later fork can inherit taken: a second pool in one process then hangs."""
    q = _QUEUE
    progress = None if q is None else (lambda e, n, info: q.put((i, int(e), int(n))))
    return pickle.dumps(fit_one(job, progress), protocol=pickle.HIGHEST_PROTOCOL)


class _Interrupts:
    """Ctrl-C, noted. ``check()`` raises KeyboardInterrupt if one came since the start;
    inside ``deferred()`` a Ctrl-C is only noted, for ``check()`` to raise afterwards.

    A KeyboardInterrupt raised inside a library's C callback (XGBoost's data iterator) is
    printed as "Exception ignored" and lost, and unwinding there has corrupted the heap
    (glibc abort, "corrupted size vs. prev_size", session 14). So the quick fits made in
    this process run deferred: the noted Ctrl-C is raised at the fit's next progress call
    (``stoppable``: XGBoost calls it after each tree, from its Python training loop) or
    when the fit returns, and a GCN training here (Python code) still stops at once."""

    def __init__(self, previous: Callable | None):
        self.previous, self.noted, self.defer = previous, [], 0

    def on_sigint(self, signum: int, frame: Any) -> None:
        self.noted.append(signum)
        if not self.defer:
            self.previous(signum, frame)

    def check(self) -> None:
        if self.noted:
            raise KeyboardInterrupt

    def stoppable(self, show: Callable | None) -> Callable[[int, int, Any], None]:
        """``show`` (a fit's progress callback, or None) that first raises a noted Ctrl-C.
        A backend calls its progress between its own iterations, in Python, where
        unwinding is safe; a deferred fit then stops at its next iteration instead of
        after its last (30-47 s under load, session 15)."""
        def call(e: int, n: int, info: Any) -> None:
            self.check()
            if show is not None:
                show(e, n, info)

        return call

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self.defer += 1
        try:
            yield
        finally:
            self.defer -= 1


@contextlib.contextmanager
def _noted_interrupts() -> Iterator[_Interrupts]:
    """Ctrl-C noted while fitting (:class:`_Interrupts`); a caller's own SIGINT handler,
    or a thread other than the main one, is left alone (``check`` then never raises)."""
    previous = (signal.getsignal(signal.SIGINT)
                if threading.current_thread() is threading.main_thread() else None)
    guard = _Interrupts(previous)
    if previous is not signal.default_int_handler:
        yield guard
        return
    signal.signal(signal.SIGINT, guard.on_sigint)
    try:
        yield guard
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def quick_fits() -> Iterator[Callable[[Callable | None], Callable[[int, int, Any], None]]]:
    """Fits made here, one after another, that may run C callbacks (XGBoost): a Ctrl-C
    is noted, raised at the next call of a progress callback wrapped by the yielded
    function (``wrap(progress)``), and at the latest when the block ends."""
    with _noted_interrupts() as guard:
        with guard.deferred():
            yield guard.stoppable
        guard.check()


def fit_all(jobs: list[FitJob], workers: int, progress: JobProgress | None = None
            ) -> list[FitDone]:
    """Fit every job; the results come in the order of the list. With ``workers`` > 1 and
    at least two slow jobs (iterative backends), the slow ones run in that many forked
    processes, the first first (put the longest first), while the quick ones fit here.
    Same results either way."""
    with _noted_interrupts() as guard:
        def here(i: int) -> FitDone:
            show = None if progress is None else (lambda e, n, info: progress(i, e, n))
            if _slow(jobs[i]):
                d = fit_one(jobs[i], show)
            else:
                with guard.deferred():
                    d = fit_one(jobs[i], guard.stoppable(show))
            if progress is not None:
                progress(i, 1, 1)
            return d

        away = [i for i, j in enumerate(jobs) if _slow(j) and _portable(j)]
        if not side_by_side(workers) or len(away) < 2:
            done = []
            for i in range(len(jobs)):
                done.append(here(i))
                guard.check()
            return done
        return _fit_away(jobs, away, workers, here, guard.check, progress)


def _fit_away(jobs: list[FitJob], away: list[int], workers: int,
              here: Callable[[int], FitDone], check: Callable[[], None],
              progress: JobProgress | None) -> list[FitDone]:
    """``fit_all`` with the jobs ``away`` in forked workers, the others ``here``."""
    ctx = mp.get_context("fork")
    q = ctx.Queue() if progress is not None else None
    ex = ProcessPoolExecutor(max_workers=min(int(workers), len(away)), mp_context=ctx,
                             initializer=_init_worker, initargs=(q, os.getpid()))

    def relay() -> None:
        while q is not None:
            try:
                i, e, n = q.get_nowait()
            except queue_mod.Empty:
                return
            progress(i, e, n)

    out: dict[int, FitDone] = {}
    try:
        futures = {ex.submit(_fit_in_worker, i, jobs[i]): i for i in away}
        for i in range(len(jobs)):  # the quick ones, here, while the workers train
            if i not in away:
                out[i] = here(i)
                relay()
                check()
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            relay()
            check()
            for f in done:
                out[futures[f]] = _received(f)
                if progress is not None:
                    progress(futures[f], 1, 1)
    except BaseException:
        # an interrupt (or a configuration error) stops every worker now, not after its fit
        for p in list((getattr(ex, "_processes", None) or {}).values()):
            p.terminate()
        # and waits for the executor's manager thread, which sees the workers gone and
        # ends at once: left running, it closes its wake-up pipe while the interpreter's
        # exit hook writes to it (Python 3.11), and a Ctrl-C ended in a stray
        # "OSError: Bad file descriptor" traceback (CI, session 19)
        ex.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        if q is not None:
            q.close()
            q.join_thread()
    ex.shutdown(wait=True)
    return [out[i] for i in range(len(jobs))]


def _received(f: Any) -> FitDone:
    """A worker's result. A bad configuration and an interrupt raise; anything else (a
    worker killed by the OOM killer, a model that could not be sent) is that fit's
    failure, as it would be in one process."""
    try:
        data = f.result()
    except (ConfigError, KeyboardInterrupt):
        raise
    except Exception as e:  # noqa: BLE001 - recorded by the caller
        return FitDone(None, f"{type(e).__name__}: {e}", 0.0)
    # bytes from this process's own forked child, through a pipe: the same trust as the
    # objects multiprocessing itself unpickles from it (no file is read)
    return pickle.loads(data)


__all__ = ["FitDone", "FitJob", "can_fork_workers", "default_workers", "fit_all", "fit_one",
           "quick_fits", "side_by_side", "usable_cpus"]
