"""One models folder shared by many processes (app sessions, CLI runs, training workers, killed
ones): its lock, staged saves moved into place, and the repair of what a killed save left. The
registry (registry.py) does every save, read, listing and delete through these.

- One lock per models folder, the hidden file `.registry.lock` (`filelock.FileLock`: an flock on
  Linux, which the kernel releases when its holder dies, even by kill -9).
- A save holds the lock from start to end. It writes into `.staging/` (same disk), then renames
  into place: a new name is one rename; an overwrite is NAME -> `.NAME.old`, staged -> NAME,
  then `.NAME.old` is removed. A new name that exists is refused, never replaced.
- A reader holds the lock only while it reads the two files' bytes, and parses them after, so it
  sees the bundle from before a save or from after it, whole, never the moment between renames.
- Whoever takes the lock repairs what a killed save left: a `.NAME.old` without NAME is renamed
  back (the overwrite never finished, the old bundle stays), a `.NAME.old` beside NAME is removed
  (it finished), and `.staging/` is emptied (no save runs while we hold the lock, so anything there
  is a leftover). Readers repair only the bundle they read; `list_bundles` repairs the folder.
- A folder we cannot lock (read-only) is read without the lock: nobody can be writing to it.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from .schema import BundleError
from ..errors import NAME_REGEX
from ..paths import DEFAULT_MODELS_DIR

LOCK_FILE = ".registry.lock"
STAGING_DIR = ".staging"
OLD_SUFFIX = ".old"
LOCK_TIMEOUT_S = 30.0  # a save of a DoseNet takes well under a second; longer means something is stuck
# `.NAME.xxxxxxxx`: the temporary folders of the earlier save_bundle (tempfile.mkdtemp), which took no
# lock, so only old ones are surely dead.
_LEGACY_TEMP = re.compile(rf"\.{NAME_REGEX}\.[a-z0-9_]{{8}}")
LEGACY_TEMP_AGE_S = 300.0
log = logging.getLogger("insulin_core.bundles.registry")  # the registry's log, as before the split


def staging_folder(models_dir: Path, name: str) -> Path:
    staging = models_dir / STAGING_DIR
    staging.mkdir(exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=staging))
    staged.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be shared
    return staged


def sync_files(folder: Path) -> None:
    """Data on disk before the rename that publishes it (a power cut must not publish empty files)."""
    for path in folder.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())


def move_into_place(staged: Path, final: Path) -> None:
    if not final.exists():
        os.replace(staged, final)
        return
    old = old_of(final.parent, final.name)
    os.replace(final, old)  # a crash from here until the next rename is repaired by recover_name
    os.replace(staged, final)
    remove(old)


def old_of(models_dir: Path, name: str) -> Path:
    return models_dir / f".{name}{OLD_SUFFIX}"


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def locked(models_dir: Path, write: bool = False):
    """Hold the models folder's lock (see the module docstring); yields whether it is held.

    Threads of one process (the sessions of a server) queue on a threading lock first and take the
    file lock one at a time: FileLock polls (sleeping 50 ms a try), so under 20 sessions listing
    the models at once most of a page view went to those sleeps; a threading lock wakes the next
    thread at once. Other processes (the CLI, another server, a training worker) still meet at the
    file lock."""
    busy = BundleError(f"The models folder {models_dir} has been busy for {LOCK_TIMEOUT_S:.0f} s; try again.")
    in_process = thread_lock(models_dir)
    if not in_process.acquire(timeout=LOCK_TIMEOUT_S):
        raise busy
    try:
        lock = FileLock(models_dir / LOCK_FILE, timeout=LOCK_TIMEOUT_S, is_singleton=True, preserve_lock_file=True)
        try:
            lock.acquire()
        except Timeout:
            raise busy from None
        except OSError as exc:
            if write:
                raise BundleError(f"Cannot lock the models folder {models_dir}: {exc}") from None
            yield False  # read-only or missing folder: nobody can be changing it
            return
        try:
            yield True
        finally:
            lock.release()
    finally:
        in_process.release()


_THREAD_LOCKS: dict[str, threading.RLock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _forget_thread_locks() -> None:
    """In a forked child: the parent's threads (and what they held) are gone; start afresh."""
    global _THREAD_LOCKS_GUARD
    _THREAD_LOCKS.clear()
    _THREAD_LOCKS_GUARD = threading.Lock()


os.register_at_fork(after_in_child=_forget_thread_locks)


def thread_lock(models_dir: Path) -> threading.RLock:
    """One re-entrant lock per models folder in this process (re-entrant: a save repairs and
    reads under the lock it holds)."""
    key = os.path.abspath(models_dir)
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(key, threading.RLock())


def recover_name(models_dir: Path, name: str) -> str | None:
    """Repair what a killed save of `name` left (call with the lock held); a note when it did."""
    old, final = old_of(models_dir, name), models_dir / name
    if not old.exists():
        return None
    if final.exists():
        remove(old)
        return f"removed {old.name}, left by a save of {name!r} that was killed after it finished"
    os.replace(old, final)
    return f"restored {name!r} from {old.name}: a save that would have replaced it was killed"


def recover(models_dir: Path = DEFAULT_MODELS_DIR) -> list[str]:
    """Repair the whole folder after crashes (call with the lock held); one note per repair."""
    models_dir = Path(models_dir)
    notes = []
    for entry in sorted(models_dir.iterdir()) if models_dir.is_dir() else []:
        if entry.name.startswith(".") and entry.name.endswith(OLD_SUFFIX):
            note = recover_name(models_dir, entry.name[1:-len(OLD_SUFFIX)])
            notes += [note] if note else []
        elif entry.name == STAGING_DIR:
            for leftover in sorted(entry.iterdir()):
                remove(leftover)
                notes.append(f"removed {STAGING_DIR}/{leftover.name}, left by a killed save")
        elif _LEGACY_TEMP.fullmatch(entry.name) and time.time() - entry.stat().st_mtime > LEGACY_TEMP_AGE_S:
            remove(entry)  # the earlier code's `.NAME.xxxxxxxx` temporaries; it took no lock
            notes.append(f"removed {entry.name}, a temporary folder left by a killed save")
    for note in notes:
        log.warning("models folder %s: %s", models_dir, note)
    return notes
