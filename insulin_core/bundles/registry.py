"""Model bundles on disk: a small store that never loses a bundle and never shows half of one.

A bundle is a folder `models/NAME/` with two files:
- `weights.pt`: the model's state dict, read back with `torch.load(weights_only=True)`, so a
  bundle can never run code (a pickle that would is refused by torch, not executed).
- `bundle.json`: everything else needed to use and judge the model: format version, model /
  train / window configs, split, feature lists in order, fitted scalers, patient index, training
  history, metrics (model and baselines), data source and its fingerprint, library versions,
  created time. What makes both files valid is `schema.py`, checked on every read.

Several app sessions, CLI runs and killed processes share one models folder: its lock, staged
saves and the repair after a killed save are models_folder.py's (read its docstring).
"""
from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import models_folder
from .schema import FORMAT_VERSION, BundleError, check_meta, check_state, check_weights
from ..errors import NAME_PATTERN, check_name  # noqa: F401 (check_name: part of the registry's API)
from ..models.model import DoseNet, ModelConfig
from ..paths import DEFAULT_MODELS_DIR
from ..models.predictor import InputScaling, NetworkPredictor
from ..data.provenance import trained_on
from ..prep.scaling import MinMaxScaler

__all__ = ["BundleError", "FORMAT_VERSION", "ModelBundle", "save_bundle", "load_bundle", "list_bundles",
           "delete_bundle", "bundle_files", "bundle_stamp", "check_name", "check_against_data"]

WEIGHTS_FILE = "weights.pt"
META_FILE = "bundle.json"
MAX_FILE_BYTES = 200 * 1024 * 1024
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
    # scikit-learn's version from its installed metadata, not by importing it: the import (scipy
    # with it) cost a background run's worker 1.3 s at every save, for one string.
    return {"torch": torch.__version__, "numpy": np.__version__, "pandas": pd.__version__,
            "scikit-learn": importlib.metadata.version("scikit-learn"), "format": str(FORMAT_VERSION)}


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
    with models_folder.locked(models_dir, write=True):
        models_folder.recover_name(models_dir, name)
        final = models_dir / name
        if final.exists() and not overwrite:
            raise BundleError(f"A model named {name!r} already exists; pick another name or overwrite it.")
        staged = models_folder.staging_folder(models_dir, name)
        try:
            torch.save(state, staged / WEIGHTS_FILE)
            (staged / META_FILE).write_bytes(meta_bytes)
            models_folder.sync_files(staged)
            models_folder.move_into_place(staged, final)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
    return final


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
    with models_folder.locked(path.parent) as locked:
        if locked:
            models_folder.recover_name(path.parent, path.name)
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
    with models_folder.locked(path.parent) as locked:
        if locked:
            models_folder.recover_name(path.parent, path.name)
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
    with models_folder.locked(models_dir) as locked:
        if locked:
            models_folder.recover(models_dir)
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
    with models_folder.locked(models_dir, write=True):
        models_folder.recover_name(models_dir, name)
        if not path.is_dir():
            raise BundleError(f"No model bundle named {name!r}")
        staged = models_folder.staging_folder(models_dir, name)
        os.replace(path, staged / name)
        shutil.rmtree(staged)
