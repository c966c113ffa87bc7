"""Model bundles on disk: a small store that never loses a bundle and never shows half of one.

A bundle is a folder `models/NAME/` with two files:
- `weights.pt`: the model's state dict, read back with `torch.load(weights_only=True)`, so a
  bundle can never run code (a pickle that would is refused by torch, not executed).
- `bundle.json`: everything else needed to use and judge the model: format version, model /
  train / window configs, split, feature lists in order, fitted scalers, patient index, training
  history, metrics (model and baselines), data source and its fingerprint, library versions,
  created time. What makes both files valid is `bundle_schema.py`, checked on every read.

Several app sessions, CLI runs and killed processes share one models folder. The design:
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

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock, Timeout

from .bundle_schema import FORMAT_VERSION, BundleError, check_meta, check_state, check_weights
from .errors import NAME_PATTERN, NAME_REGEX, check_name  # noqa: F401 (check_name: part of the registry's API)
from .model import DoseNet, ModelConfig
from .paths import DEFAULT_MODELS_DIR
from .predictor import InputScaling, NetworkPredictor
from .provenance import trained_on
from .scaling import MinMaxScaler

__all__ = ["BundleError", "FORMAT_VERSION", "ModelBundle", "save_bundle", "load_bundle", "list_bundles",
           "delete_bundle", "recover", "bundle_files", "bundle_stamp", "check_name", "check_against_data"]

WEIGHTS_FILE = "weights.pt"
META_FILE = "bundle.json"
LOCK_FILE = ".registry.lock"
STAGING_DIR = ".staging"
OLD_SUFFIX = ".old"
LOCK_TIMEOUT_S = 30.0  # a save of a DoseNet takes well under a second; longer means something is stuck
MAX_FILE_BYTES = 200 * 1024 * 1024
# `.NAME.xxxxxxxx`: the temporary folders of the earlier save_bundle (tempfile.mkdtemp), which took no
# lock, so only old ones are surely dead.
_LEGACY_TEMP = re.compile(rf"\.{NAME_REGEX}\.[a-z0-9_]{{8}}")
LEGACY_TEMP_AGE_S = 300.0
log = logging.getLogger(__name__)


@dataclass
class ModelBundle:
    name: str
    model: DoseNet
    meta: dict
    path: Path | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def model_config(self) -> ModelConfig:
        return self.model.cfg

    @property
    def seq_scaler(self) -> MinMaxScaler:
        return MinMaxScaler.from_dict(self.meta["scalers"]["seq"])

    @property
    def now_scaler(self) -> MinMaxScaler:
        return MinMaxScaler.from_dict(self.meta["scalers"]["now"])

    @property
    def patient_index(self) -> dict[int, int]:
        return {int(k): int(v) for k, v in self.meta["patient_index"].items()}

    @property
    def monotone(self) -> bool:
        """Monotone by construction in glucose now (and exercise now): True for bundles of the
        monotone network; bundles saved before it are not, and their What-if curves are checked."""
        return self.model.cfg.is_monotone

    @property
    def scaling(self) -> InputScaling:
        return InputScaling(self.seq_scaler, self.now_scaler, self.patient_index)

    def predictor(self, conformal: dict | None = None) -> NetworkPredictor:
        """The bundle's network with its own scaling and conformal table (or `conformal`)."""
        table = self.meta.get("conformal") if conformal is None else conformal
        return NetworkPredictor(self.model, self.scaling, table, self.name)


def library_versions() -> dict[str, str]:
    import pandas
    import sklearn

    return {"torch": torch.__version__, "numpy": np.__version__, "pandas": pandas.__version__,
            "scikit-learn": sklearn.__version__, "format": str(FORMAT_VERSION)}


def save_bundle(model: DoseNet, meta: dict, name: str, models_dir: Path = DEFAULT_MODELS_DIR,
                overwrite: bool = False) -> Path:
    """Write `models_dir/name/`; raises BundleError when the name is taken and not `overwrite`, or
    when the bundle would not load back (NaN weights, a meta that fails the schema)."""
    check_name(name)
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "name": name, "format_version": FORMAT_VERSION,
            "model_config": model.cfg.to_dict(), "versions": library_versions(),
            "created": meta.get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds")}
    meta_bytes = json.dumps(meta, indent=1, default=_json_default).encode()
    check_meta(meta_bytes, name)  # what is on disk is what gets checked
    check_state(model, name)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with _locked(models_dir, write=True):
        _recover_name(models_dir, name)
        final = models_dir / name
        if final.exists() and not overwrite:
            raise BundleError(f"A model named {name!r} already exists; pick another name or overwrite it.")
        staged = _staging_folder(models_dir, name)
        try:
            torch.save(state, staged / WEIGHTS_FILE)
            (staged / META_FILE).write_bytes(meta_bytes)
            _sync_files(staged)
            _move_into_place(staged, final)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
    return final


def _staging_folder(models_dir: Path, name: str) -> Path:
    staging = models_dir / STAGING_DIR
    staging.mkdir(exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=staging))
    staged.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be shared
    return staged


def _sync_files(folder: Path) -> None:
    """Data on disk before the rename that publishes it (a power cut must not publish empty files)."""
    for path in folder.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())


def _move_into_place(staged: Path, final: Path) -> None:
    if not final.exists():
        os.replace(staged, final)
        return
    old = _old_of(final.parent, final.name)
    os.replace(final, old)  # a crash from here until the next rename is repaired by _recover_name
    os.replace(staged, final)
    _remove(old)


def _old_of(models_dir: Path, name: str) -> Path:
    return models_dir / f".{name}{OLD_SUFFIX}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def _locked(models_dir: Path, write: bool = False):
    """Hold the models folder's lock (see the module docstring); yields whether it is held.

    Threads of one process (the sessions of a server) queue on a threading lock first and take the
    file lock one at a time: FileLock polls (sleeping 50 ms a try), so under 20 sessions listing
    the models at once most of a page view went to those sleeps; a threading lock wakes the next
    thread at once. Other processes (the CLI, another server, a training worker) still meet at the
    file lock."""
    busy = BundleError(f"The models folder {models_dir} has been busy for {LOCK_TIMEOUT_S:.0f} s; try again.")
    in_process = _thread_lock(models_dir)
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


def _thread_lock(models_dir: Path) -> threading.RLock:
    """One re-entrant lock per models folder in this process (re-entrant: a save repairs and
    reads under the lock it holds)."""
    key = os.path.abspath(models_dir)
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(key, threading.RLock())


def _recover_name(models_dir: Path, name: str) -> str | None:
    """Repair what a killed save of `name` left (call with the lock held); a note when it did."""
    old, final = _old_of(models_dir, name), models_dir / name
    if not old.exists():
        return None
    if final.exists():
        _remove(old)
        return f"removed {old.name}, left by a save of {name!r} that was killed after it finished"
    os.replace(old, final)
    return f"restored {name!r} from {old.name}: a save that would have replaced it was killed"


def recover(models_dir: Path = DEFAULT_MODELS_DIR) -> list[str]:
    """Repair the whole folder after crashes (call with the lock held); one note per repair."""
    models_dir = Path(models_dir)
    notes = []
    for entry in sorted(models_dir.iterdir()) if models_dir.is_dir() else []:
        if entry.name.startswith(".") and entry.name.endswith(OLD_SUFFIX):
            note = _recover_name(models_dir, entry.name[1:-len(OLD_SUFFIX)])
            notes += [note] if note else []
        elif entry.name == STAGING_DIR:
            for leftover in sorted(entry.iterdir()):
                _remove(leftover)
                notes.append(f"removed {STAGING_DIR}/{leftover.name}, left by a killed save")
        elif _LEGACY_TEMP.fullmatch(entry.name) and time.time() - entry.stat().st_mtime > LEGACY_TEMP_AGE_S:
            _remove(entry)  # the earlier code's `.NAME.xxxxxxxx` temporaries; it took no lock
            notes.append(f"removed {entry.name}, a temporary folder left by a killed save")
    for note in notes:
        log.warning("models folder %s: %s", models_dir, note)
    return notes


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def bundle_files(path: Path) -> dict[str, bytes]:
    """The bytes of a bundle's two files, read together under the lock: both from one save."""
    path = Path(path)
    with _locked(path.parent) as locked:
        if locked:
            _recover_name(path.parent, path.name)
        return _read_files(path)


def _read_files(path: Path) -> dict[str, bytes]:
    if not path.is_dir():
        raise BundleError(f"No model bundle at {path}")
    files = {}
    for name in (META_FILE, WEIGHTS_FILE):
        file = path / name
        if not file.is_file():
            raise BundleError(f"{path.name}: missing {name}" + (" (a folder is in its place)" if file.is_dir() else ""))
        if file.stat().st_size > MAX_FILE_BYTES:
            raise BundleError(f"{path.name}: {name} is over {MAX_FILE_BYTES / 1e6:.0f} MB")
        files[name] = file.read_bytes()
    return files


def load_bundle(path: Path) -> ModelBundle:
    """Read and check a bundle folder; every problem is a BundleError naming it."""
    path = Path(path)
    files = bundle_files(path)
    meta = check_meta(files[META_FILE], path.name)
    model = check_weights(files[WEIGHTS_FILE], meta, path.name)
    return ModelBundle(meta.get("name", path.name), model, meta, path)


def read_meta(path: Path) -> dict:
    """The checked `bundle.json` of a bundle folder (weights not read)."""
    return check_meta(bundle_files(path)[META_FILE], Path(path).name)


def bundle_stamp(path: Path) -> tuple:
    """What changes whenever a save replaces the bundle at `path` (a cache key); BundleError if none."""
    path = Path(path)
    with _locked(path.parent) as locked:
        if locked:
            _recover_name(path.parent, path.name)
        try:
            return _stamp(path)
        except OSError:
            raise BundleError(f"No model bundle named {path.name!r} in {path.parent}") from None


def check_against_data(bundle: ModelBundle, patients: list[int], fingerprint: str) -> list[str]:
    """Warnings (not errors) about using a bundle on this data: other data, unseen patients."""
    notes = []
    if bundle.meta.get("data", {}).get("fingerprint") not in (None, fingerprint):
        notes.append(f"The model was trained on other data ({bundle.meta['data'].get('source', '?')}); "
                     "its metrics describe that data, not this one.")
    unseen = sorted(set(patients) - set(bundle.patient_index))
    if unseen:
        shown = ", ".join(map(str, unseen[:10])) + (" ..." if len(unseen) > 10 else "")
        notes.append(f"Patients the model never saw ({shown}) get its pooled 'unknown patient' answer.")
    return notes


def list_bundles(models_dir: Path = DEFAULT_MODELS_DIR) -> list[dict]:
    """One summary row per bundle folder, checked in full (meta and weights); a broken one has
    ok=False and says why. Repairs what killed saves left first. Never raises for a bad bundle:
    only BundleError when the folder stays locked for LOCK_TIMEOUT_S."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    with _locked(models_dir) as locked:
        if locked:
            recover(models_dir)
        found = [(path, _files_or_error(path)) for path in _bundle_folders(models_dir)]
    return [_summary(path, files) for path, files in found]


def _bundle_folders(models_dir: Path) -> list[Path]:
    folders = []
    for path in sorted(models_dir.iterdir()):
        if path.name.startswith(".") or not path.is_dir():
            continue
        if NAME_PATTERN.fullmatch(path.name):
            folders.append(path)
        else:  # never made by save_bundle; a row for it could not be loaded or deleted by name
            log.warning("models folder %s: skipped %r, not a valid model name", models_dir, path.name)
    return folders


# str(path) -> (stamp, row): listing runs on every page view; reading and checking every weights
# file each time would not do. A save renames a new folder into place, so the stamp changes.
_SUMMARIES: dict[str, tuple] = {}


def _stamp(path: Path) -> tuple:
    return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in
                 (os.stat(path / META_FILE), os.stat(path / WEIGHTS_FILE)))


def _files_or_error(path: Path) -> tuple | BundleError:
    """(stamp, the files' bytes or None when that stamp is cached already), or the error."""
    try:
        stamp = _stamp(path)
        cached = _SUMMARIES.get(str(path))
        return stamp, (None if cached and cached[0] == stamp else _read_files(path))
    except BundleError as exc:
        return exc
    except OSError:  # a file is missing, or a folder sits in its place: let _read_files name it
        try:
            _read_files(path)
        except BundleError as exc:
            return exc
        return BundleError(f"{path.name}: cannot be read")


def _summary(path: Path, found: tuple | BundleError) -> dict:
    name = path.name
    if isinstance(found, BundleError):
        return {"name": name, "ok": False, "error": str(found)}
    stamp, files = found
    if files is None:
        return _SUMMARIES[str(path)][1]
    try:
        meta = check_meta(files[META_FILE], name)
        check_weights(files[WEIGHTS_FILE], meta, name)
        row = _row(name, meta)
    except BundleError as exc:
        row = {"name": name, "ok": False, "error": str(exc)}
    except Exception as exc:  # a check this code lacks must not take every page down with it
        log.exception("unexpected error checking bundle %s", name)
        # not cached: it may be passing (the next listing checks again), a BundleError is not
        return {"name": name, "ok": False, "error": f"{name}: cannot be read ({type(exc).__name__}: {exc})"}
    _SUMMARIES[str(path)] = (stamp, row)
    return row


def _row(name: str, meta: dict) -> dict:
    """The table row of a checked meta (every field used here has its type checked by the schema)."""
    model_metrics = meta.get("metrics", {}).get("model", {})
    data = trained_on(meta)
    return {
        "name": name, "ok": True, "error": "", "created": meta.get("created", ""),
        "data": data.label, "trained_on": data.words(), "trained_on_short": data.short(), "fingerprint": data.fingerprint, "split": meta.get("split", ""),
        "target": meta["window"].get("target", ""), "window": meta["window"].get("length"),
        "mae": model_metrics.get("mae"), "r2": model_metrics.get("r2"),
        "mae_dose": model_metrics.get("mae_dose"), "within_1u": model_metrics.get("within_1u"),
    }


def delete_bundle(name: str, models_dir: Path = DEFAULT_MODELS_DIR) -> None:
    """Remove a bundle, broken or not: renamed out of sight first, so a kill mid-way leaves no half."""
    models_dir = Path(models_dir)
    path = models_dir / check_name(name)
    with _locked(models_dir, write=True):
        _recover_name(models_dir, name)
        if not path.is_dir():
            raise BundleError(f"No model bundle named {name!r}")
        staged = _staging_folder(models_dir, name)
        os.replace(path, staged / name)
        shutil.rmtree(staged)
