"""Model bundles on disk: save atomically, load safely, list, delete.

A bundle is a folder `models/NAME/` with two files:
- `weights.pt`: the model's state dict, read back with `torch.load(weights_only=True)`, so a
  bundle can never run code (a pickle that would is refused by torch, not executed).
- `bundle.json`: everything else needed to use and judge the model: format version, model /
  train / window configs, split, feature lists in order, fitted scalers, patient index, training
  history, metrics (model and baselines), data source and its fingerprint, library versions,
  created time.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from .features import NOW_FEATURES, SEQ_FEATURES
from .model import DoseNet, ModelConfig
from .paths import DEFAULT_MODELS_DIR
from .scaling import MinMaxScaler

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.pt"
META_FILE = "bundle.json"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class BundleError(Exception):
    """A bundle that cannot be used, with a message naming what is wrong."""


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


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise BundleError(
            f"Invalid model name {name!r}: use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit."
        )
    return name


def library_versions() -> dict[str, str]:
    import pandas
    import sklearn

    return {"torch": torch.__version__, "numpy": np.__version__, "pandas": pandas.__version__,
            "scikit-learn": sklearn.__version__, "format": str(FORMAT_VERSION)}


def save_bundle(model: DoseNet, meta: dict, name: str, models_dir: Path = DEFAULT_MODELS_DIR,
                overwrite: bool = False) -> Path:
    """Write `models_dir/name/` atomically: a temporary folder renamed into place."""
    check_name(name)
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    final = models_dir / name
    if final.exists() and not overwrite:
        raise BundleError(f"A model named {name!r} already exists; pick another name or overwrite it.")
    meta = {**meta, "name": name, "format_version": FORMAT_VERSION,
            "model_config": model.cfg.to_dict(), "versions": library_versions(),
            "created": meta.get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds")}
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=models_dir))
    tmp.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be shared
    try:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save(state, tmp / WEIGHTS_FILE)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1, default=_json_default))
        if final.exists():
            old = models_dir / f".{name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
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


def load_bundle(path: Path) -> ModelBundle:
    """Read and check a bundle folder; every problem is a BundleError naming it."""
    path = Path(path)
    meta = read_meta(path)
    try:
        cfg = ModelConfig.from_dict(meta["model_config"])
    except (ValueError, TypeError) as exc:
        raise BundleError(f"{path.name}: invalid model config: {exc}") from None
    _check_features(meta, cfg, path.name)
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise BundleError(f"{path.name}: missing {WEIGHTS_FILE}")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise BundleError(f"{path.name}: {WEIGHTS_FILE} is corrupt or not a plain weights file "
                          f"(refused to unpickle anything else): {str(exc).splitlines()[0][:200]}") from None
    model = DoseNet(cfg)
    if not isinstance(state, dict):
        raise BundleError(f"{path.name}: {WEIGHTS_FILE} does not hold a state dict")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BundleError(f"{path.name}: weights do not fit the model config: {str(exc).splitlines()[0][:300]}") from None
    model.eval()
    return ModelBundle(meta.get("name", path.name), model, meta, path)


def read_meta(path: Path) -> dict:
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"No model bundle at {path}")
    meta_file = path / META_FILE
    if not meta_file.is_file():
        raise BundleError(f"{path.name}: missing {META_FILE}")
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path.name}: {META_FILE} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise BundleError(f"{path.name}: {META_FILE} is not a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(f"{path.name}: bundle format version {version!r}, this code reads version {FORMAT_VERSION}")
    missing = [k for k in ("model_config", "window", "features", "scalers", "patient_index") if k not in meta]
    if missing:
        raise BundleError(f"{path.name}: {META_FILE} lacks {', '.join(missing)}")
    return meta


def _check_features(meta: dict, cfg: ModelConfig, name: str) -> None:
    """The bundle's feature lists must be the ones this code computes, in the same order."""
    seq, now = meta["features"].get("seq", []), meta["features"].get("now", [])
    if list(seq) != list(SEQ_FEATURES):
        raise BundleError(f"{name}: feature mismatch: the bundle's sequence features differ from this code's "
                          f"({_diff(seq, SEQ_FEATURES)})")
    if now and list(now) != list(NOW_FEATURES):
        raise BundleError(f"{name}: feature mismatch: the bundle's decision-moment features differ from this "
                          f"code's ({_diff(now, NOW_FEATURES)})")
    if cfg.n_seq_features != len(seq) or cfg.n_now_features != len(now):
        raise BundleError(f"{name}: model config expects {cfg.n_seq_features}+{cfg.n_now_features} features, "
                          f"the bundle lists {len(seq)}+{len(now)}")
    for part, names in (("seq", seq), ("now", now)):
        bounds = meta["scalers"].get(part, {})
        if len(bounds.get("low", [])) != len(names) or len(bounds.get("high", [])) != len(names):
            raise BundleError(f"{name}: the {part} scaler does not match its {len(names)} features")


def _diff(got, want) -> str:
    extra = [f for f in got if f not in want]
    missing = [f for f in want if f not in got]
    if not extra and not missing:
        return "same names, different order"
    return f"unknown: {extra[:5]}, missing: {missing[:5]}"


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
    """One summary row per bundle folder, readable or not (a broken one says why)."""
    rows = []
    for path in sorted(Path(models_dir).glob("*")) if Path(models_dir).is_dir() else []:
        if not path.is_dir() or path.name.startswith("."):
            continue
        try:
            meta = read_meta(path)
        except BundleError as exc:
            rows.append({"name": path.name, "ok": False, "error": str(exc)})
            continue
        model_metrics = meta.get("metrics", {}).get("model", {})
        rows.append({
            "name": path.name, "ok": True, "error": "", "created": meta.get("created", ""),
            "data": meta.get("data", {}).get("source", ""), "split": meta.get("split", ""),
            "target": meta["window"].get("target", ""), "window": meta["window"].get("length"),
            "mae": model_metrics.get("mae"), "r2": model_metrics.get("r2"),
            "mae_dose": model_metrics.get("mae_dose"), "within_1u": model_metrics.get("within_1u"),
        })
    return rows


def delete_bundle(name: str, models_dir: Path = DEFAULT_MODELS_DIR) -> None:
    path = Path(models_dir) / check_name(name)
    if not (path / META_FILE).is_file() and not (path / WEIGHTS_FILE).is_file():
        raise BundleError(f"No model bundle named {name!r}")
    shutil.rmtree(path)
