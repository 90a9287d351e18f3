"""Where studies live: Optuna storage URLs, the settings a study is created with, locks.

A study stored in a database can be resumed, so it records the settings that define it
(budget, device, oracle, objective, mode, sampler) and a resume with other ones is refused
instead of mixing two searches. SQLite serves one process: a search holds a lock on the
file for its whole run. A server database or a journal file serves several worker
processes (:mod:`nasloop.search.shared`, :mod:`nasloop.search.workers`). Everything here is checked before an oracle is fitted.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import optuna

try:
    import fcntl
except ImportError:  # pragma: no cover  (Windows: no advisory file locks)
    fcntl = None  # type: ignore[assignment]

from ..errors import ConfigError
from ..units import format_ms
from .shared import DEFAULT_HEARTBEAT_S, check_journal, check_storage_file, is_shared, journal_path, shared_storage

#: the study a ``--storage`` without ``--study-name`` resumes
DEFAULT_STUDY_NAME = "nasloop"
#: the settings that define a study, and the option that sets each: resuming a study with
#: another value would silently mix the trials of two different searches
STUDY_SETTINGS = {"budget_ms": "--budget", "device": "--device", "oracle": "--oracle",
                  "objective": "--objective", "mode": "--mode", "sampler": "--sampler"}
_SETTINGS_ATTR = "nasloop_settings"


def study_settings(budget_ms: float, device: str, oracle: str, objective: str, mode: str,
                   sampler: str) -> dict:
    """The settings stored with a study, so that a resume with other ones is refused."""
    return {"budget_ms": float(budget_ms), "device": str(device), "oracle": str(oracle),
            "objective": str(objective), "mode": str(mode), "sampler": str(sampler)}


def _show(key: str, value: object) -> str:
    return format_ms(value, sep="") if key == "budget_ms" and isinstance(value, (int, float)) else str(value)


def _settings_differ(key: str, old: object, new: object) -> bool:
    if key == "budget_ms" and isinstance(old, (int, float)) and isinstance(new, (int, float)):
        return not math.isclose(float(old), float(new), rel_tol=1e-9)
    return old != new


def sqlite_file(storage: str | None) -> Path | None:
    """The database file of a SQLite URL (None for other databases and in-memory SQLite)."""
    if not storage or journal_path(storage) is not None:
        return None
    from sqlalchemy.engine import make_url

    url = make_url(storage)
    if url.get_backend_name() != "sqlite":
        return None
    db = url.database or ""
    if db in ("", ":memory:") or db.startswith("file:"):
        return None
    return Path(db)


def check_storage(storage: str) -> None:
    """Refuse a ``--storage`` URL that cannot work, before any expensive step."""
    from sqlalchemy.engine import make_url

    journal = journal_path(storage)
    if journal is not None:  # Optuna's journal file: several processes, no server
        check_journal(storage, journal)
        return
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(storage)
    except ArgumentError:
        raise ConfigError(f"--storage {storage!r} is not a database URL: use sqlite:///study.db "
                          "for a file, or postgresql://user@host/db") from None
    try:
        url.get_dialect()
    except NoSuchModuleError:
        raise ConfigError(f"--storage {storage}: unknown database {url.drivername!r}; use "
                          "sqlite:///study.db, postgresql://... or mysql://...") from None
    db = sqlite_file(storage)
    if db is None:
        if url.get_backend_name() == "sqlite":
            raise ConfigError(f"--storage {storage}: an in-memory SQLite study keeps nothing "
                              "and cannot be resumed; name a file, e.g. sqlite:///study.db")
        return
    check_storage_file(storage, db, "database", "sqlite:///study.db")


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def _storage_error(storage: str, e: BaseException) -> ConfigError:
    first = _first_line(e)
    if isinstance(e, ImportError):
        return ConfigError(f"--storage {storage}: its database driver is not installed ({first}); "
                           "install it, or use sqlite:///study.db")
    return ConfigError(f"--storage {storage}: cannot open the study database ({first}); check "
                       "the URL, or use a new file such as sqlite:///study.db")


def get_storage(storage: str, heartbeat: int = DEFAULT_HEARTBEAT_S) -> optuna.storages.BaseStorage:
    """The storage of a URL; a shared one (server, journal) beats a heartbeat per trial."""
    try:
        if is_shared(storage):
            return shared_storage(storage, heartbeat)
        return optuna.storages.get_storage(storage)
    except ConfigError:
        raise
    except (ImportError, ValueError, OSError) as e:
        raise _storage_error(storage, e) from None
    except Exception as e:  # sqlalchemy errors: a file that is not a database, a server down
        if type(e).__module__.startswith(("sqlalchemy", "optuna")):
            raise _storage_error(storage, e) from None
        raise


def _check_settings(stored: dict | None, has_trials: bool, settings: dict, storage: str,
                    study_name: str) -> None:
    where = f"study {study_name!r} in {storage}"
    if stored is None:
        if has_trials:
            raise ConfigError(f"{where} has trials but no recorded nasloop settings (made by "
                              "another program or an older nasloop), so a resume could mix "
                              "searches; give another --study-name for a new study")
        return
    for key, option in STUDY_SETTINGS.items():
        old, new = stored.get(key), settings.get(key)
        if _settings_differ(key, old, new):
            raise ConfigError(
                f"{where} was created with {option} {_show(key, old)}, this run asks for "
                f"{option} {_show(key, new)}; resuming would mix the trials of two searches: "
                f"give another --study-name for a new study, or rerun with {option} "
                f"{_show(key, old)} to resume it")


def check_study(storage: str | None, study_name: str | None, settings: dict | None = None,
                *, must_exist: bool = False) -> str | None:
    """Validate ``--storage``/``--study-name`` (and a resume's settings) without creating anything.

    Returns the study name to use: ``DEFAULT_STUDY_NAME`` when a storage is given without
    one, so that re-running the same command resumes. Called before an oracle is fitted,
    so that a bad URL or a mismatched resume costs nothing.
    """
    if study_name is not None and not storage:
        raise ConfigError(f"--study-name {study_name} needs --storage: a study kept in memory "
                          "cannot be resumed; add e.g. --storage sqlite:///study.db")
    if not storage:
        return None
    if study_name is not None and not study_name.strip():
        raise ConfigError("--study-name is empty: give a name, or leave it out to use "
                          f"{DEFAULT_STUDY_NAME!r}")
    check_storage(storage)
    name = study_name or DEFAULT_STUDY_NAME
    db = sqlite_file(storage)
    if must_exist:  # --report reads a study: it never creates a database or a study
        _existing_study(storage, name, db)
    if db is not None and db.exists() and _sqlite_in_use(db):
        # refused at once: reading a database another process writes without pause can
        # wait on its locks for longer than that search takes
        raise _in_use(storage)
    if settings is None or (db is not None and not db.exists()):
        return name  # nothing to resume yet (and no empty database file left behind)
    st = get_storage(storage)
    try:
        sid = st.get_study_id_from_name(name)
    except KeyError:
        return name
    stored = st.get_study_user_attrs(sid).get(_SETTINGS_ATTR)
    _check_settings(stored, bool(st.get_all_trials(sid, deepcopy=False)), settings, storage, name)
    return name


def stored_settings(storage: str, study_name: str | None) -> dict:
    """The settings a study was run with (:func:`study_settings`), for ``--report``, which
    needs none repeated; {} for a study from before they were stored. Call
    ``check_study(..., must_exist=True)`` first: this opens the storage."""
    st = get_storage(storage)
    try:
        sid = st.get_study_id_from_name(study_name or DEFAULT_STUDY_NAME)
    except KeyError:
        return {}
    stored = st.get_study_user_attrs(sid).get(_SETTINGS_ATTR)
    return dict(stored) if isinstance(stored, dict) else {}


def _existing_study(storage: str, name: str, db: Path | None) -> None:
    """Refuse to report a study that is not there, creating nothing on the way."""
    journal = journal_path(storage)
    if (db is not None and not db.is_file()) or (journal is not None and not journal.is_file()):
        raise ConfigError(f"--report: {db or journal} does not exist, so there is no study to "
                          "report; check --storage, or run the search first")
    try:
        if db is not None:  # read-only: opening it through Optuna would add its tables
            import sqlite3

            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                names = [r[0] for r in con.execute("SELECT study_name FROM studies")]
            finally:
                con.close()
        else:
            names = [s.study_name for s in get_storage(storage).get_all_studies()]
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001  (a file that is not a study database)
        raise ConfigError(f"--report: {storage} holds no Optuna study ({_first_line(e)}); "
                          "check --storage") from None
    if name not in names:
        have = ", ".join(repr(n) for n in names) or "none"
        raise ConfigError(f"--report: no study {name!r} in {storage} (studies there: {have}); "
                          "give its --study-name, or run the search first")


def _in_use(storage: str) -> ConfigError:
    return ConfigError(f"--storage {storage} is in use by another nasloop search: SQLite "
                       "serves one process; wait for it to finish, or share a study "
                       "between processes with a server database URL "
                       "(postgresql://... or mysql://...)")


def _lock_path(db: Path) -> Path:
    """The file whose advisory lock a search holds for its SQLite study (:func:`sqlite_lock`)."""
    return db.with_name(db.name + ".lock")


def _try_lock(f) -> bool:
    """Take the one-process lock of an open lock file without waiting; False if it is held."""
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _sqlite_in_use(db: Path) -> bool:
    """Whether another process holds the study's one-process lock (see :func:`sqlite_lock`)."""
    lock_path = _lock_path(db)
    if fcntl is None or not lock_path.exists():
        return False
    try:
        with open(lock_path, "a") as f:
            if not _try_lock(f):
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


@contextlib.contextmanager
def sqlite_lock(storage: str | None) -> Iterator[None]:
    """Hold the one-process lock of a SQLite study database for a whole search.

    SQLite is meant for one process: concurrent searches on one file overshoot ``--trials``
    and die on "database is locked". A second search is refused at once instead.
    """
    db = sqlite_file(storage)
    if db is None or fcntl is None:
        yield
        return
    lock_path = _lock_path(db)
    try:
        f = open(lock_path, "a")
    except OSError as e:
        raise ConfigError(f"--storage {storage}: cannot create the lock file {lock_path} "
                          f"({e.strerror or e}); put the database in a folder you can "
                          "write") from None
    with f:
        if not _try_lock(f):
            raise _in_use(storage)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def open_study(storage: str | None, study_name: str | None, settings: dict,
                directions: list[str], sampler: optuna.samplers.BaseSampler,
                heartbeat: int = DEFAULT_HEARTBEAT_S, *, create: bool = True) -> optuna.Study:
    """Create or resume a study; a resume with other settings is refused. With
    ``create=False`` (a report) the study must exist and nothing is written."""
    if not storage:
        return optuna.create_study(directions=directions, sampler=sampler)
    if not create:  # a report: load, never create, and write nothing
        _existing_study(storage, study_name or DEFAULT_STUDY_NAME, sqlite_file(storage))
        try:
            return optuna.load_study(study_name=study_name or DEFAULT_STUDY_NAME,
                                     storage=get_storage(storage, heartbeat), sampler=sampler)
        except (ValueError, OSError, KeyError) as e:
            raise _storage_error(storage, e) from None
    st = get_storage(storage, heartbeat)
    assert study_name is not None
    try:
        sid = st.get_study_id_from_name(study_name)
    except KeyError:
        sid = None
    if sid is not None:
        stored = st.get_study_user_attrs(sid).get(_SETTINGS_ATTR)
        _check_settings(stored, bool(st.get_all_trials(sid, deepcopy=False)), settings, storage,
                        study_name)
    try:
        study = optuna.create_study(storage=st, study_name=study_name, load_if_exists=True,
                                    directions=directions, sampler=sampler)
    except (ValueError, OSError) as e:  # e.g. a journal changed since it was checked
        raise _storage_error(storage, e) from None
    except Exception as e:
        if type(e).__module__.startswith(("sqlalchemy", "optuna")):
            raise _storage_error(storage, e) from None
        raise
    if create and _SETTINGS_ATTR not in study.user_attrs:
        study.set_user_attr(_SETTINGS_ATTR, settings)
    return study


def fail_running(study: optuna.Study, keep: set[int] = frozenset()) -> int:
    """Mark RUNNING trials (except the numbers in ``keep``) FAIL: an interrupted run's leftovers."""
    n = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if t.number in keep:
            continue
        try:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            n += 1
        except Exception:  # noqa: BLE001  (another process finished it meanwhile)
            pass
    return n
