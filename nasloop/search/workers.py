"""Several workers on one study: no network evaluated twice, no finished trial lost.

Workers are processes (on one machine or many) running the same search on one shared
storage (a PostgreSQL/MySQL URL or a journal file, :mod:`nasloop.search.shared`). Each trial
**claims** its network right after sampling (user attribute ``nasloop_class``, the
isomorphism class), then looks at the study: if an earlier-numbered trial that is running
or complete claims the same class, it **yields** (it is pruned, with ``nasloop_yielded_to``,
and the worker samples again). The lowest trial number wins, and a trial waits for every
earlier running trial to have claimed before it decides, so two workers never evaluate
the same network, whatever the timing. The same rule caps the study: a trial with
``--trials`` live evaluations numbered before it yields, so the study ends with exactly
``--trials`` complete trials, however many workers run it.

A worker killed mid-trial stops beating its heartbeat; another worker fails that trial
after the grace period and Optuna retries its cell. A worker whose share is done waits
for the running trials of the others, and takes over if one dies, so the study reaches
its count while any worker is alive. The order in which networks are evaluated (so the
result of a budget-limited search) depends on timing: only single-process searches are
reproducible from the seed.
"""
from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import ConfigError, NasloopError
from ..space import OPS, Arch
from .feasible import FeasibleSpace
from .objective import ERROR_ATTR, MAX_CONSECUTIVE_FAILURES, ObjectiveFailed
from .samplers import PARAMS, params_arch
from .shared import GRACE_FACTOR, is_shared

__all__ = ["CLAIM_ATTR", "YIELD_ATTR", "WorkerExit", "check_worker_options", "optimize_shared",
           "optimize_study", "run_workers", "start_workers", "study_counts", "worker_argv"]

#: user attribute: the isomorphism class a trial evaluates (set before evaluating)
CLAIM_ATTR = "nasloop_class"
#: user attribute of a trial that gave way: the trial number it yielded to (-1: the study was full)
YIELD_ATTR = "nasloop_yielded_to"
#: seconds between two looks at the study while other workers finish the last trials
POLL_S = 0.25
_log = logging.getLogger("nasloop")
_COMPLETE, _RUNNING, _FAIL = TrialState.COMPLETE, TrialState.RUNNING, TrialState.FAIL


def optimize_study(study: optuna.Study, space: FeasibleSpace, acc_of: Callable[[Arch], float],
                   mode: str, trials: int, on_trial: Callable[[int, int, dict], None] | None, *,
                   storage: str | None, user_objective: bool, report_only: bool = False,
                   heartbeat: int = 10) -> tuple[optuna.Study, bool]:
    """Run the study the way its storage and objective need (``run_search`` calls this).

    A shared storage, or a user objective (whose failures are recorded, not fatal), runs
    :func:`optimize_shared`; a table objective in memory or SQLite runs the single-process
    loop of :mod:`nasloop.search.study`, unchanged. ``report_only`` evaluates nothing.
    """
    if report_only:
        return study, False
    if is_shared(storage) or user_objective:
        return optimize_shared(study, space, acc_of, mode, trials, on_trial,
                               wait_s=GRACE_FACTOR * heartbeat + 5)
    from .study import _optimize
    return _optimize(study, space, acc_of, mode, trials, on_trial)


def _class_of(t: FrozenTrial, space: FeasibleSpace) -> int | None:
    c = t.user_attrs.get(CLAIM_ATTR)
    if c is not None:
        return int(c)
    if t.state in (_COMPLETE, _FAIL) and len(t.params) == len(PARAMS):
        if t.state == _FAIL and ERROR_ATTR not in t.user_attrs:
            return None
        return space.class_id(params_arch(t.params))  # a trial of a single-process search
    return None


def _live(t: FrozenTrial) -> bool:
    """An evaluation that is done, or running and not giving way."""
    if YIELD_ATTR in t.user_attrs:
        return False
    return t.state == _COMPLETE or (t.state == _RUNNING and CLAIM_ATTR in t.user_attrs)


@dataclass
class StudyCounts:
    complete: int
    #: running trials that are (or may be about to be) evaluations
    running: int
    #: feasible networks complete, running or failed by the objective
    taken: int


def study_counts(study: optuna.Study, space: FeasibleSpace) -> StudyCounts:
    trials = study.get_trials(deepcopy=False)
    complete = sum(t.state == _COMPLETE for t in trials)
    running = sum(t.state == _RUNNING and YIELD_ATTR not in t.user_attrs for t in trials)
    taken = {c for t in trials if (t.state == _FAIL or _live(t))
             and (c := _class_of(t, space)) is not None}
    return StudyCounts(complete, running, len(taken))


def _earlier_claim(study: optuna.Study, number: int, cls: int, target: int, space: FeasibleSpace,
                   wait_s: float) -> int | None:
    """The trial this one must yield to (-1: the study is full), or None to go ahead.

    Waits until every earlier running trial has claimed its network (or finished), so the
    decision sees every claim that could win over this one.
    """
    deadline = time.monotonic() + wait_s
    while True:
        earlier = [t for t in study.get_trials(deepcopy=False) if t.number < number]
        pending = [t for t in earlier if t.state == _RUNNING and CLAIM_ATTR not in t.user_attrs
                   and YIELD_ATTR not in t.user_attrs]
        if not pending:
            break
        if time.monotonic() > deadline:
            return pending[0].number  # a dead worker's trial the heartbeat has not failed yet
        time.sleep(0.02)
    live = [t for t in earlier if _live(t)]
    for t in earlier:
        if (_live(t) or (t.state == _FAIL and ERROR_ATTR in t.user_attrs)) \
                and _class_of(t, space) == cls:
            return t.number
    if len(live) >= target:
        return -1
    return None


def optimize_shared(study: optuna.Study, space: FeasibleSpace, acc_of: Callable[[Arch], float],
                    mode: str, trials: int, on_trial: Callable[[int, int, dict], None] | None,
                    wait_s: float = 35.0) -> tuple[optuna.Study, bool]:
    """Run trials until the study holds ``trials`` complete ones, whichever worker ran them.

    Safe with any number of processes on the study (see the module doc). A user
    objective's failure (:class:`ObjectiveFailed`) is recorded on its trial
    (``nasloop_error``) and the network is not asked again; after
    ``MAX_CONSECUTIVE_FAILURES`` in a row the worker stops with one line. Returns the study
    and whether it was interrupted (Ctrl-C) before the count.
    """
    from optuna.storages import fail_stale_trials

    from .study import _GracefulSigint

    mine: set[int] = set()
    returned: set[int] = set()  # trials whose evaluation gave a value
    failures: list[str] = []

    def objective(trial: optuna.Trial):
        mine.add(trial.number)
        a = params_arch({k: trial.suggest_categorical(k, list(OPS)) for k in PARAMS})
        lat = space.predicted(a)
        trial.set_user_attr("arch", str(a))
        trial.set_user_attr("latency_ms", lat if math.isfinite(lat) else None)
        if not space.is_representative(a):
            raise optuna.TrialPruned()  # not a network's evaluated cell: nothing to spend on it
        cls = space.class_id(a)
        trial.set_user_attr(CLAIM_ATTR, cls)
        winner = _earlier_claim(study, trial.number, cls, trials, space, wait_s)
        if winner is not None:
            trial.set_user_attr(YIELD_ATTR, winner)
            raise optuna.TrialPruned()
        with warnings.catch_warnings():  # a retried trial inherits its constraint
            warnings.simplefilter("ignore", UserWarning)
            trial.set_constraint("latency", (lat - space.budget_ms) / space.budget_ms)
        try:
            acc = acc_of(a)
        except ObjectiveFailed as e:
            trial.set_user_attr(ERROR_ATTR, str(e))
            raise
        returned.add(trial.number)
        return acc if mode == "constrained" else (acc, lat)

    interrupted = False
    with _GracefulSigint() as sigint:
        def callback(st: optuna.Study, t: FrozenTrial) -> None:
            if t.state == _FAIL and ERROR_ATTR in t.user_attrs:
                failures.append(f"{t.user_attrs.get('arch')}: {t.user_attrs[ERROR_ATTR]}")
                _log.warning("trial %d (%s) failed: %s; the search goes on", t.number,
                             t.user_attrs.get("arch"), t.user_attrs[ERROR_ATTR])
            elif t.state == _COMPLETE:
                failures.clear()
            if on_trial is not None:
                n = len(st.get_trials(deepcopy=False, states=(_COMPLETE,)))
                on_trial(n, trials, {"arch": t.user_attrs.get("arch")})

        try:
            while not sigint.requested:
                with warnings.catch_warnings():  # "experimental" since Optuna 2.9
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    fail_stale_trials(study)  # a dead worker's trial: failed, its cell retried
                c = study_counts(study, space)
                if c.complete >= trials:
                    break
                if c.taken >= space.n_networks and not c.running:
                    break  # every feasible network is evaluated
                if c.complete + c.running >= trials or c.taken >= space.n_networks:
                    time.sleep(POLL_S)  # others finish the last ones; take over if one dies
                    continue
                try:
                    study.optimize(objective, n_trials=1, callbacks=[callback],
                                   catch=(ObjectiveFailed,), gc_after_trial=False)
                except (ValueError, AssertionError):  # Optuna's tell, by version
                    if (lost := _failed_by_another(study, mine, returned)) is None:
                        raise
                    _log.warning("trial %d (%s) was failed by another worker while it ran (its "
                                 "heartbeat came late); its network is retried", lost.number,
                                 lost.user_attrs.get("arch"))
                if len(failures) >= MAX_CONSECUTIVE_FAILURES:
                    raise ConfigError(
                        f"the objective failed on {len(failures)} networks in a row (last: "
                        f"{failures[-1]}); fix it and rerun the same command: the study keeps "
                        "its complete trials and does not retry the failed networks")
        except KeyboardInterrupt:
            interrupted = True
        finally:
            _fail_mine(study, mine)
        if sigint.requested and study_counts(study, space).complete < trials:
            interrupted = True
    return study, interrupted


def _failed_by_another(study: optuna.Study, mine: set[int], returned: set[int]
                       ) -> FrozenTrial | None:
    """This worker's last trial, if its evaluation gave a value but another worker had
    failed it as stale meanwhile.

    Optuna then refuses the result ("Cannot tell a FAIL trial", or an assertion of its
    own in some versions); the retry callback has already enqueued the network again,
    so the worker goes on instead of stopping.
    """
    last = max(mine, default=None)
    if last not in returned:
        return None
    return next((t for t in study.get_trials(deepcopy=False, states=(_FAIL,))
                 if t.number == last), None)


def _fail_mine(study: optuna.Study, mine: set[int]) -> None:
    """Fail this process's trials still RUNNING (an abort): never another worker's."""
    for t in study.get_trials(deepcopy=False, states=(_RUNNING,)):
        if t.number in mine:
            try:
                study.tell(t.number, state=_FAIL, skip_if_finished=True)
            except Exception:  # noqa: BLE001
                pass


class WorkerExit(NasloopError):
    """A worker process stopped with an error (its message is the worker's last line)."""


def run_workers(argv: Sequence[str], n: int, *, poll: Callable[[], None] | None = None,
                poll_s: float = 1.0) -> list[int]:
    """Start ``n`` local ``nasloop search`` worker processes on ``argv`` and wait for them.

    Returns their exit codes (negative: killed by that signal). A worker that stops with
    an error raises :class:`WorkerExit` with its last line, after the others are stopped;
    a killed worker is only reported (its trial is retried by the others). ``poll`` is
    called every ``poll_s`` while they run (e.g. a progress bar reading the study).
    """
    logs, procs = [], []
    env = dict(os.environ)
    try:
        for _ in range(n):
            f = tempfile.TemporaryFile()
            logs.append(f)
            procs.append(subprocess.Popen([sys.executable, "-m", "nasloop", "search", *argv],
                                          stdout=subprocess.DEVNULL, stderr=f, env=env,
                                          start_new_session=True))  # Ctrl-C: forwarded once
        while any(p.poll() is None for p in procs):
            bad = [i for i, p in enumerate(procs) if p.returncode not in (None, 0, 130)
                   and p.returncode > 0]
            if bad:
                break
            if poll is not None:
                poll()
            time.sleep(poll_s)
        for i, p in enumerate(procs):
            if p.poll() is None and any(q.returncode not in (None, 0, 130) and
                                        (q.returncode or 0) > 0 for q in procs):
                p.send_signal(signal.SIGINT)  # a worker failed: the others stop cleanly
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait()
        raise
    for i, (code, f) in enumerate(zip(codes, logs)):
        if code > 0 and code != 130:
            f.seek(0)
            lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
            last = lines[-1] if lines else f"exit code {code}"
            raise WorkerExit(f"worker {i + 1} of {n} stopped: {last.strip()}")
    for f in logs:
        f.close()
    return codes


def check_worker_options(storage: str | None, workers: int | None, report: bool,
                         device: str) -> None:
    """Refuse ``--workers``/``--report`` where they cannot work, before anything is fitted."""
    if report and not storage:
        raise ConfigError("--report reads a stored study: add --storage URL (and --study-name)")
    if report and workers:
        raise ConfigError("--report evaluates nothing: leave out --workers")
    if report and device in ("cpu", "cuda"):
        raise ConfigError(f"--report with --device {device} would time cells here before "
                          "reading the study; give the device table the study searched, or "
                          "leave --report out")
    if not workers:
        return
    if device in ("cpu", "cuda"):
        raise ConfigError(f"--workers needs a device table; with --device {device} start the "
                          "workers yourself, one `nasloop search` per machine")
    if not storage:
        raise ConfigError(f"--workers {workers} needs a study the workers share: add --storage "
                          "postgresql://user@host/db or --storage journal:study.log")
    if not is_shared(storage):
        raise ConfigError(f"--workers {workers} with --storage {storage}: SQLite serves one "
                          "process; use postgresql://user@host/db or journal:study.log")


def worker_argv(opts: dict) -> list[str]:
    """The ``nasloop search`` arguments of a worker, from the parent's options."""
    argv = ["--device", str(opts["device"]), "--budget", f"{float(opts['budget'])!r}ms",
            "--trials", str(opts["trials"]), "--mode", str(opts["mode"]),
            "--seed", str(opts["seed"]), "--storage", str(opts["storage"]),
            "--top", str(opts["top"]), "--heartbeat", str(opts["heartbeat"]), "--as-worker"]
    for key, flag in (("data_dir", "--data-dir"), ("oracle", "--oracle"), ("train", "--train"),
                      ("config", "--config"), ("objective", "--objective"),
                      ("objective_fn", "--objective-fn"), ("sampler", "--sampler"),
                      ("study_name", "--study-name"), ("confidence", "--confidence"),
                      ("cache_dir", "--cache-dir")):
        if opts.get(key) is not None:
            v = opts[key]
            argv += [flag, repr(float(v)) if key == "confidence" else str(v)]
    if opts.get("skip_bad_rows"):
        argv.append("--skip-bad-rows")
    for kv in opts.get("sets") or ():
        argv += ["--set", kv]
    return argv


def start_workers(n: int, opts: dict, on_progress: Callable[[int], None] | None = None
                  ) -> list[int]:
    """Run ``n`` local workers on the study of ``opts`` (the CLI's options) until they stop.

    The progress callback gets the study's complete trials every second. A worker killed
    by a signal is reported on stderr; the others (or the caller's own search, run next)
    finish its share.
    """
    storage, name = opts["storage"], opts.get("study_name")
    from .storage import DEFAULT_STUDY_NAME, get_storage

    st = get_storage(storage, int(opts["heartbeat"]))

    def poll() -> None:
        if on_progress is None:
            return
        try:
            sid = st.get_study_id_from_name(name or DEFAULT_STUDY_NAME)
        except KeyError:
            return  # not created yet
        on_progress(len(st.get_all_trials(sid, deepcopy=False, states=(_COMPLETE,))))

    codes = run_workers(worker_argv(opts), n, poll=poll)
    for i, code in enumerate(codes):
        if code < 0:
            _log.warning("worker %d of %d was killed (%s); the study finishes without it",
                         i + 1, n, signal.Signals(-code).name)
    poll()
    return codes
