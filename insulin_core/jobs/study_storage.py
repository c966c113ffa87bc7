"""Where Optuna studies live: by default an embedded journal file in the project's data folder
(`data/optuna.journal`), or any SQLAlchemy database URL (`sqlite:///...`, `postgresql://...`) that
several processes, on one machine or many, share. `storage_label` is the form shown and written
into a bundle: never a password.
"""
from __future__ import annotations

import secrets
import time
from pathlib import Path

import optuna

from ..paths import DEFAULT_DATA_DIR

DEFAULT_STORAGE_FILE = DEFAULT_DATA_DIR / "optuna.journal"


def default_storage() -> str:
    return str(DEFAULT_STORAGE_FILE)


def is_url(storage: str) -> bool:
    return "://" in storage


def is_empty(storage: str | None = None) -> bool:
    """A journal file that does not exist yet holds no study (and is not created by asking)."""
    storage = storage or default_storage()
    return not is_url(storage) and not Path(storage).exists()


def open_storage(storage: str | None = None) -> optuna.storages.BaseStorage:
    """A SQLAlchemy URL -> RDBStorage; anything else is a journal file path (created if needed)."""
    storage = storage or default_storage()
    if is_url(storage):
        return _open_database(storage)
    path = Path(storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    # An open-lock (O_EXCL lock file) rather than a symlink: works on every file system.
    return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


def _open_database(url: str, attempts: int = 6) -> optuna.storages.RDBStorage:
    """RDBStorage, retried: workers started together on a fresh database race to create its tables
    (one gets "UNIQUE constraint failed: alembic_version" or "database is locked"); once the
    other has made them, opening succeeds."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(attempts):
        try:
            if url.startswith("sqlite"):  # a writer waits for the lock up to 60 s, not pysqlite's 5
                return _serialized(optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}}))
            return optuna.storages.RDBStorage(url)
        except (ImportError, ModuleNotFoundError) as exc:  # e.g. postgresql:// without its driver
            raise ValueError(f"Cannot open the study storage {storage_label(url)}: {exc}") from None
        except (IntegrityError, OperationalError) as exc:
            if attempt == attempts - 1 or not _is_race(exc):
                raise ValueError(f"Cannot open the study storage {storage_label(url)}: "
                                 f"{str(exc).splitlines()[0]}") from None
            time.sleep(0.2 * (attempt + 1) + secrets.randbelow(200) / 1000)
        except Exception as exc:  # SQLAlchemy's other errors: bad URL, unknown dialect
            raise ValueError(f"Cannot open the study storage {storage_label(url)}: "
                             f"{str(exc).splitlines()[0]}") from None
    raise AssertionError("unreachable")


def _serialized(storage: optuna.storages.RDBStorage) -> optuna.storages.RDBStorage:
    """Every SQLite transaction begins IMMEDIATE, taking the database's write lock first.

    Why: SQLite ignores the SELECT ... FOR UPDATE with which Optuna claims a waiting (enqueued)
    trial, so two workers both read the default trial as waiting and both ran it; the second to
    finish failed with "Cannot tell a COMPLETE trial" (tests/test_tune.py's two-process test,
    2026-12-04; optuna issue #4002). With the lock taken at BEGIN the read, check and claim are one
    step. SQLAlchemy's own recipe for pysqlite: its driver's implicit BEGIN switched off at connect,
    our BEGIN emitted at the engine's "begin" event."""
    from sqlalchemy import event

    @event.listens_for(storage.engine, "connect")
    def _no_implicit_begin(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(storage.engine, "begin")
    def _begin_immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    storage.engine.dispose()  # the connections opened before the listeners
    return storage


def _is_race(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(sign in text for sign in ("unique constraint", "already exists", "database is locked", "duplicate"))


def storage_label(storage: str | None) -> str:
    """The storage as it may be shown and written into a bundle: never a password."""
    storage = storage or default_storage()
    if not is_url(storage):
        return storage
    try:
        from sqlalchemy.engine import make_url

        return make_url(storage).render_as_string(hide_password=True)
    except Exception:  # unparsable: keep the scheme only
        return storage.split("://", 1)[0] + "://..."
