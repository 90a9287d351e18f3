"""Storages several worker processes share: a database server, or Optuna's journal file.

Both get a heartbeat: every running trial records one every ``heartbeat`` seconds, and a
trial silent for ``GRACE_FACTOR`` times that (its worker was killed, its machine lost) is
failed by the next worker that looks, and retried (Optuna's ``RetryFailedTrialCallback``
enqueues its cell again). Optuna's RDB storage has this built in; its journal storage has
not, so :class:`HeartbeatJournalStorage` adds it, with the heartbeat as a system attribute.
A journal worker calls a trial stale when it has *watched* the heartbeat stay unchanged for
the grace period, not by comparing clocks (see :meth:`HeartbeatJournalStorage._get_stale_trial_ids`).
"""
from __future__ import annotations

import json

import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RetryFailedTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

from ..errors import ConfigError

#: seconds between two heartbeats of a running trial (``--heartbeat``)
DEFAULT_HEARTBEAT_S = 10
#: a trial with no heartbeat for this many intervals is failed and retried
GRACE_FACTOR = 3
#: times a dead worker's cell is retried before it is left failed (it may be what kills workers)
MAX_RETRY = 2
_HEARTBEAT_ATTR = "nasloop:heartbeat"
_PREFIX = "journal:"


def journal_path(storage: str | None) -> Path | None:
    """The log file of a journal storage (``journal:PATH``, ``journal:///abs/path``, ``x.log``)."""
    if not storage:
        return None
    s = storage.strip()
    if s.startswith(_PREFIX):
        rest = s[len(_PREFIX):]
        if rest.startswith("///"):
            rest = rest[2:]
        elif rest.startswith("//"):
            raise ConfigError(f"--storage {storage}: a journal is a file path: write "
                              "journal:///abs/path/study.log or journal:study.log")
        if not rest:
            raise ConfigError(f"--storage {storage}: name the journal file, e.g. "
                              "journal:study.log")
        return Path(rest).expanduser()
    if "://" not in s and s.endswith(".log"):
        return Path(s).expanduser()
    return None


def check_storage_file(storage: str, path: Path, what: str, example: str) -> None:
    """Refuse a storage file (``what``: journal, database) that cannot be written."""
    if path.is_dir():
        raise ConfigError(f"--storage {storage}: {path} is a folder; name a {what} file, "
                          f"e.g. {example}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(f"--storage {storage}: folder {folder} does not exist; create it "
                          f"first or put the {what} elsewhere")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"--storage {storage}: {path} is not writable; put the {what} in a "
                          "folder you can write")


def check_journal(storage: str, path: Path, *, content: bool = True) -> None:
    """Refuse a journal path that cannot be written, or (``content``) a journal Optuna
    cannot extend, before anything is fitted or appended.

    Every line of Optuna's journal is one JSON object ending in a newline. Optuna reads
    past one bad last line, but a record appended after it, or after a blank line, breaks
    the file for good. Workers skip the content check: a line another worker is writing
    would look cut short.
    """
    check_storage_file(storage, path, "journal", f"journal:{path / 'study.log'}")
    if not content or not path.is_file():
        return
    try:
        with path.open("rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f"--storage {storage}: cannot read {path} ({e.strerror or e}); "
                          "check its permissions, or give a new journal file") from None
    lines = data.split(b"\n")
    last = lines.pop()  # b"" when the file ends in a newline, as Optuna leaves it
    if last.strip():
        raise ConfigError(f"--storage {storage}: the last line of {path} (line {len(lines) + 1}) "
                          "is cut short, as when a worker is killed mid-write; remove that "
                          "line to resume the study, or give another journal file")
    for n, line in enumerate(lines, 1):
        try:
            ok = isinstance(json.loads(line), dict)
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"--storage {storage}: {path} is not an Optuna journal (line {n} "
                              f"is {'blank' if not line.strip() else 'not a JSON record'}); "
                              "give another journal file, or move this one away")


def is_shared(storage: str | None) -> bool:
    """Whether several processes may run one study in ``storage`` (not memory, not SQLite)."""
    if not storage:
        return False
    if journal_path(storage) is not None:
        return True
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(storage).get_backend_name() != "sqlite"
    except ArgumentError:
        return False


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with the heartbeat of its RDB storage (see the module doc)."""

    def __init__(self, backend: optuna.storages.journal.BaseJournalBackend,
                 heartbeat_interval: int | None = None, grace_period: int | None = None,
                 stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None
                 ) -> None:
        super().__init__(backend)
        self._heartbeat_interval = heartbeat_interval
        self._grace_period = grace_period if grace_period is not None else (
            GRACE_FACTOR * heartbeat_interval if heartbeat_interval else None)
        self._stale_callback = stale_trial_callback
        #: study id -> trial id -> (heartbeat seen, monotonic time of that look, silence so far)
        self._watched: dict[int, dict[int, tuple[object, float, float]]] = {}

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, _HEARTBEAT_ATTR, time.time())
        except Exception:  # noqa: BLE001  (finished meanwhile: nothing left to keep alive)
            pass

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """Running trials whose heartbeat this process has watched stay unchanged for the
        grace period.

        Why watched, not compared with the clock: a worker killed while it holds the
        journal's file lock stops every process for the lock's own grace (30 s), heartbeat
        threads included. Compared with the clock, every live trial then looks stale at
        once, and a live worker's finished evaluation is thrown away. So silence is summed
        over this process's looks, each gap between two looks counting for at most one
        heartbeat interval (a stall counts as one interval, however long); machines sharing
        the file need no synchronised clocks either.
        """
        if not self._grace_period:
            return []
        trials = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        now = time.monotonic()
        step = float(self._heartbeat_interval or self._grace_period)
        before = self._watched.get(study_id, {})
        watched, stale = {}, []
        for t in trials:
            beat = t.system_attrs.get(_HEARTBEAT_ATTR)
            silent = 0.0
            if t._trial_id in before:
                last_beat, last_look, last_silent = before[t._trial_id]
                if last_beat == beat:
                    silent = last_silent + min(now - last_look, step)
            watched[t._trial_id] = (beat, now, silent)
            if silent > self._grace_period:
                stale.append(t._trial_id)
        self._watched[study_id] = watched
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self._heartbeat_interval

    def get_heartbeat_stale_trial_callback(self
                                           ) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self._stale_callback

    def get_failed_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self._stale_callback  # the name Optuna 4 asks for


def shared_storage(storage: str, heartbeat: int = DEFAULT_HEARTBEAT_S
                   ) -> optuna.storages.BaseStorage:
    """A journal or server storage with heartbeats and retry of a dead worker's trial."""
    if heartbeat < 1:
        raise ConfigError(f"--heartbeat {heartbeat}: give a whole number of seconds >= 1")
    with warnings.catch_warnings():  # experimental in Optuna, and renamed in 4.9
        warnings.simplefilter("ignore")
        retry_cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback",
                            RetryFailedTrialCallback)
        retry = retry_cls(max_retry=MAX_RETRY)
    grace = GRACE_FACTOR * heartbeat
    path = journal_path(storage)
    if path is not None:
        check_journal(storage, path, content=False)  # checked before any worker started
        backend = optuna.storages.journal.JournalFileBackend(str(path))
        return HeartbeatJournalStorage(backend, heartbeat, grace, retry)
    for attempt in range(10):
        try:
            return _rdb(storage, heartbeat, grace, retry)
        except Exception as e:  # noqa: BLE001
            if not _schema_race(e) or attempt == 9:
                raise
            time.sleep(0.2 + 0.1 * attempt)
    raise AssertionError("unreachable")


def _schema_race(e: BaseException) -> bool:
    """Workers starting together on an empty database race to create Optuna's tables: the
    loser sees a unique violation (PostgreSQL's type catalogue) or a table that already
    exists (DuplicateTable, a ProgrammingError). Both are settled by trying again."""
    text = f"{type(e).__name__}: {e}"
    return any(k in text for k in ("IntegrityError", "UniqueViolation", "DuplicateTable",
                                   "already exists"))


def _rdb(storage: str, heartbeat: int, grace: int,
         retry: Callable[[optuna.Study, FrozenTrial], None]) -> optuna.storages.RDBStorage:
    with warnings.catch_warnings():  # heartbeat_interval is "experimental" in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(storage, heartbeat_interval=heartbeat,
                                              grace_period=grace,
                                              heartbeat_stale_trial_callback=retry)
        except TypeError:  # Optuna 4: the callback's older name
            return optuna.storages.RDBStorage(storage, heartbeat_interval=heartbeat,
                                              grace_period=grace, failed_trial_callback=retry)
