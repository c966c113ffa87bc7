"""Using a saved bundle on a cohort: windows cut and scaled exactly as in training, predictions,
and the baselines beside them, for charts, tables and CSV downloads."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from .baselines import BASELINES, make_baseline
from .dataset import Cohort
from .metrics import dose_metrics, per_patient_metrics
from .pipeline import ExperimentConfig, Prepared, prepare, to_part
from .registry import ModelBundle, check_against_data
from .train import predict
from .windows import WindowConfig, WindowSet, make_windows


def bundle_experiment(bundle: ModelBundle) -> ExperimentConfig:
    meta = bundle.meta
    if "experiment" in meta:
        return ExperimentConfig.from_dict(meta["experiment"])
    return ExperimentConfig(WindowConfig.from_dict(meta["window"]), meta.get("split", "chrono"))


def predict_windows(bundle: ModelBundle, ws: WindowSet, idx: np.ndarray | None = None) -> np.ndarray:
    """Regular dose (units) for windows `idx` of `ws`, scaled with the bundle's own scalers."""
    idx = np.arange(len(ws)) if idx is None else np.asarray(idx)
    part = to_part(ws, idx, bundle.seq_scaler, bundle.now_scaler, bundle.patient_index)
    return predict(bundle.model, part)[:, 0]


def check_bundle_fits(bundle: ModelBundle, cohort: Cohort) -> list[str]:
    """Raise ValueError when the bundle cannot be used on this cohort; else return warnings."""
    exp = bundle_experiment(bundle)
    longest = int(cohort.features.groupby("patient_id").size().max()) if len(cohort.features) else 0
    if exp.window.length >= longest:
        raise ValueError(f"The model needs windows of {exp.window.length} rows, but the longest patient "
                         f"history here has {longest} rows.")
    return check_against_data(bundle, cohort.patients, cohort.fingerprint)


def predictions_table(bundle: ModelBundle, cohort: Cohort, baselines: list[str] | None = None) -> pd.DataFrame:
    """Every window of the cohort: part (train/val/test by the bundle's own split), actual dose,
    model prediction and each baseline (fit on the training part of that split)."""
    exp = bundle_experiment(bundle)
    # Every patient of this cohort gets predictions, not only those the bundle was trained on.
    prepared: Prepared = prepare(cohort.features, replace(exp, patients=()))
    ws = prepared.ws
    table = ws.context[["patient_id", "timestamp", "day_part", "glucose_now"]].copy()
    table["part"] = prepared.split.part_of(len(ws))
    table["actual"] = ws.y[:, 0]
    table["predicted"] = predict_windows(bundle, ws)
    for name in (list(BASELINES) if baselines is None else baselines):
        table[name] = make_baseline(name).fit(ws, prepared.train_idx).predict(ws, np.arange(len(ws)))
    table["week"] = table["timestamp"].dt.to_period("W-SUN").dt.start_time
    return table


def metrics_of(table: pd.DataFrame, part: str = "test") -> pd.DataFrame:
    """One row per model/baseline column of a predictions table, on one part."""
    rows = table if part == "all" else table[table["part"] == part]
    names = ["predicted"] + [c for c in table.columns if c in BASELINES]
    return pd.DataFrame([{"name": "model" if n == "predicted" else n, **dose_metrics(rows["actual"], rows[n])}
                         for n in names])


def per_patient_of(table: pd.DataFrame, part: str = "test") -> pd.DataFrame:
    rows = table if part == "all" else table[table["part"] == part]
    return per_patient_metrics(rows["patient_id"].to_numpy(), rows["actual"].to_numpy(), rows["predicted"].to_numpy())


def windows_for(bundle: ModelBundle, features: pd.DataFrame, rows: np.ndarray | None = None) -> WindowSet:
    return make_windows(features, bundle_experiment(bundle).window, rows)
