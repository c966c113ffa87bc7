"""Using a saved bundle on a cohort: windows cut and scaled exactly as in training, predictions,
and the baselines beside them, for charts, tables and CSV downloads."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from ..models.baselines import BASELINES
from ..prep.dataset import Cohort
from ..models.intervals import coverage_of
from ..evaluation.metrics import metrics_table, per_patient_metrics
from ..evaluation.pipeline import ExperimentConfig, Prepared, prepare
from ..models.predictor import DosePredictor
from ..data.provenance import trained_format
from .registry import ModelBundle, check_against_data
from ..prep.windows import WindowConfig, WindowSet


def bundle_experiment(bundle: ModelBundle) -> ExperimentConfig:
    meta = bundle.meta
    if "experiment" in meta:
        return ExperimentConfig.from_dict(meta["experiment"])
    # every bundle.json records its split; a meta without one would be from before that, when chrono
    # was the default: pinned, so a new splits.DEFAULT_SPLIT cannot re-read an old bundle
    return ExperimentConfig(WindowConfig.from_dict(meta["window"]), meta.get("split", "chrono"))


def predict_windows(bundle: ModelBundle, ws: WindowSet, idx: np.ndarray | None = None) -> np.ndarray:
    """Regular dose (units) for windows `idx` of `ws`, scaled with the bundle's own scalers."""
    idx = np.arange(len(ws)) if idx is None else np.asarray(idx)
    return bundle.predictor().dose(ws, idx)


def other_source(bundle: ModelBundle, cohort: Cohort) -> bool:
    """Whether the cohort is of another format than the bundle's training data: its patient numbers
    then name other people (a Nightscout p01 is not AIM94's data-01), so every patient is unseen."""
    return trained_format(bundle.meta) != cohort.format


def check_bundle_fits(bundle: ModelBundle, cohort: Cohort) -> list[str]:
    """Raise ValueError when the bundle cannot be used on this cohort; else return warnings."""
    features = bundle.meta.get("features") or {}
    wanted = [*(f"seq_{f}" for f in features.get("seq", ())), *(f"now_{f}" for f in features.get("now", ()))]
    missing = [f for f in wanted if f not in cohort.features.columns]  # features.seq_columns' names
    if missing:
        raise ValueError(f"The model reads features this data does not have ({', '.join(missing[:5])}"
                         f"{' ...' if len(missing) > 5 else ''}): it was trained on {trained_format(bundle.meta)} "
                         f"data with another feature list than {cohort.format} data gives here.")
    exp = bundle_experiment(bundle)
    longest = int(cohort.features.groupby("patient_id").size().max()) if len(cohort.features) else 0
    if exp.window.length >= longest:
        raise ValueError(f"The model needs windows of {exp.window.length} rows, but the longest patient "
                         f"history here has {longest} rows.")
    if other_source(bundle, cohort):
        return [f"The model was trained on {trained_format(bundle.meta)} data and is used on {cohort.format} data: "
                "every patient here is new to it (its pooled 'unknown patient' answer)."]
    return check_against_data(bundle, cohort.patients, cohort.fingerprint)


def predictions_table(bundle: ModelBundle, cohort: Cohort, baselines: list[str] | None = None,
                      baseline_columns: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every window of the cohort: part (train/val/test by the bundle's own split), actual dose,
    model prediction and each baseline (fit on the training part of that split). Pass
    `baseline_columns` (from `baseline_table` of the same cohort and `bundle_experiment`) to reuse
    baselines already fit: they depend on the data and the experiment, not on the network."""
    prepared = bundle_prepared(bundle, cohort.features, unseen=other_source(bundle, cohort))
    ws, every = prepared.ws, np.arange(len(prepared.ws))
    table = ws.context[["patient_id", "timestamp", "day_part", "glucose_now"]].copy()
    table["part"] = prepared.split.part_of(len(ws))
    table["actual"] = ws.y[:, 0]
    table["predicted"], table["model_low"], table["model_high"] = bundle_model(bundle, prepared).interval(ws, every)
    if baseline_columns is None:
        baseline_columns = baseline_predictions(prepared, baselines)
    table = pd.concat([table, baseline_columns.set_axis(table.index)], axis=1)
    table["week"] = table["timestamp"].dt.to_period("W-SUN").dt.start_time
    return table


def baseline_table(cohort: Cohort, exp: ExperimentConfig, baselines: list[str] | None = None) -> pd.DataFrame:
    """Each baseline's dose and interval columns (name, name_low, name_high) for every window of
    the cohort under an experiment, in predictions_table's row order."""
    return baseline_predictions(prepare(cohort.features, replace(exp, patients=())), baselines)


def baseline_predictions(prepared: Prepared, baselines: list[str] | None = None) -> pd.DataFrame:
    """Each baseline fit on the training part and calibrated on the validation part
    (`Prepared.fit_baselines`): its dose and interval at every window."""
    ws, every, columns = prepared.ws, np.arange(len(prepared.ws)), {}
    for name, predictor in prepared.fit_baselines(baselines).items():
        columns[name], columns[f"{name}_low"], columns[f"{name}_high"] = predictor.interval(ws, every)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(ws)))


def bundle_prepared(bundle: ModelBundle, features: pd.DataFrame, every_patient: bool = True,
                    unseen: bool = False) -> Prepared:
    """The bundle's experiment re-prepared on these features (every patient of them, or only the
    bundle's own selection), scaled with the bundle's own scalers and patient index (`unseen`:
    none, every patient row 0, the pooled answer: data of another source, `other_source`)."""
    exp = bundle_experiment(bundle)
    prepared = prepare(features, replace(exp, patients=()) if every_patient else exp)
    scaling = replace(bundle.scaling, patient_index={}) if unseen else bundle.scaling
    return replace(prepared, scaling=scaling)


def bundle_model(bundle: ModelBundle, prepared: Prepared) -> DosePredictor:
    """The bundle's network with its own conformal table, else one calibrated now on the
    validation part; with the prepared scaling (its patient index: none for another source)."""
    return prepared.calibrate(replace(bundle.predictor(), scaling=prepared.scaling))


def metrics_of(table: pd.DataFrame, part: str = "test") -> pd.DataFrame:
    """One row per model/baseline column of a predictions table, on one part."""
    rows = table if part == "all" else table[table["part"] == part]
    names = ["predicted"] + [c for c in table.columns if c in BASELINES]
    return metrics_table({"model" if n == "predicted" else n: rows[n] for n in names}, rows["actual"])


def interval_coverage_of(table: pd.DataFrame, part: str = "test") -> pd.DataFrame:
    """How often each predictor's 90% interval holds the actual dose, on one part of a predictions table."""
    rows = table if part == "all" else table[table["part"] == part]
    names = [c.removesuffix("_low") for c in table.columns if c.endswith("_low")]
    return pd.DataFrame([{"name": n, **coverage_of(rows["actual"], rows[f"{n}_low"], rows[f"{n}_high"])} for n in names])


# Short enough for a table cell; the Predictions page explains them under the table.
NOTE_NO_DOSE_PERFECT = "no dose given: perfect by construction"
NOTE_NO_DOSE = "no dose given"
NOTE_EXACT = "every dose exact: check the rows"


def per_patient_of(table: pd.DataFrame, part: str = "test") -> pd.DataFrame:
    """The model's scores per patient, with a note where a score is perfect or missing for a
    reason a reader should see (a flawless row is a question until explained)."""
    rows = table if part == "all" else table[table["part"] == part]
    out = per_patient_metrics(rows["patient_id"].to_numpy(), rows["actual"].to_numpy(), rows["predicted"].to_numpy())
    no_dose = out["n_dose"] == 0
    exact = ~no_dose & (out["mae"] == 0)
    out["note"] = np.select(
        [no_dose & (out["mae"] == 0), no_dose, exact],
        [NOTE_NO_DOSE_PERFECT, NOTE_NO_DOSE, NOTE_EXACT], default="")
    return out
