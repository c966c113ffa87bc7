"""Plain words for the identifiers the core uses: metric, feature, baseline and rejection-reason
names as a person reads them. One table, for the pages (tables, chart axes) and anything else
that shows these names to a person; the identifiers themselves stay in files and code."""
from __future__ import annotations

import pandas as pd

from .data.aim94_lines import REASONS
from .data.codes import DAY_PARTS
from .prep.timeline import GLUCOSE_SLOTS
from .evaluation.metrics import METRICS

METRIC_LABELS = {
    "name": "model or baseline", "rows": "rows", "n": "decision points", "n_dose": "dose occasions",
    **{name: m.label for name, m in METRICS.items()},
    **{f"{name}_dose": f"{m.label} on dose occasions" for name, m in METRICS.items()},
    "missed": "doses missed", "unwanted": "unwanted doses",
}

PREDICTOR_LABELS = {
    "model": "LSTM-GRU model", "previous_row": "previous row's dose", "last_same_daypart": "last dose at this time of day",
    "sliding_scale": "the patient's own sliding scale", "ridge": "ridge regression", "gbm": "gradient boosting",
    "two_stage_gbm": "two-stage gradient boosting", "gbm_monotone": "gradient boosting, monotone",
    "two_stage_gbm_monotone": "two-stage gradient boosting, monotone",
}

FEATURE_LABELS = {
    "glucose": "glucose", "has_glucose": "a glucose reading", "regular": "Regular dose", "nph": "NPH dose",
    "ultralente": "UltraLente dose", "hypo": "hypoglycemic symptoms", "meal": "meal size", "exercise": "exercise",
    "tod_sin": "time of day (cycle, sine)", "tod_cos": "time of day (cycle, cosine)",
    **{f"dp_{p}": f"day part: {p}" for p in DAY_PARTS}, "log_hours_since_prev": "hours since the entry before",
    "paper_time": "a paper-record time",
    "has_meal": "a meal on record now", "meal_size": "size of the meal now (typical when none is written)",
    "scale_last_regular": "own sliding scale: last dose at this glucose or below",
    "scale_median5_regular": "own sliding scale: usual dose at this glucose or below",
    "scale_share_dose": "own sliding scale: how often a dose at this glucose or below",
    "scale_has": "own sliding scale: any record at this glucose or below",
    "share_dose_reading_same_dp": "how often a dose at a reading at this time of day",
    "share_followed_same_dp": "how often a reading at this time of day is followed by another entry within minutes",
    **{f"slot_{s}": f"reading slot: {s.replace('_', ' ')}" for s in GLUCOSE_SLOTS},
    "glucose_prev": "the reading before", "log_hours_since_glucose": "hours since the reading before",
    "last_regular_same_dp": "last dose at this time of day", "has_last_regular_same_dp": "a dose at this time of day before",
    "log_age_last_regular_same_dp": "hours since that dose", "median3_regular_same_dp": "usual dose now (last 3)",
    "median7_regular_same_dp": "usual dose now (last 7)", "share_dose_same_dp": "how often a dose at this time of day",
    "last_regular": "last Regular dose", "log_hours_since_regular": "hours since the last Regular dose",
    "last_nph": "last NPH dose", "last_ultralente": "last UltraLente dose",
    "last_regular_same_band": "last dose at this glucose", "median5_regular_same_band": "usual dose at this glucose",
    "share_dose_same_band": "how often a dose at this glucose", "has_same_band": "this glucose seen before",
}

REASON_LABELS = {reason: description[0].upper() + description[1:] for reason, description in REASONS.items()}

# Meal and exercise levels (codes.LEVELS) in a sentence: "a smaller meal than usual", never "a less meal".
LEVEL_PHRASES = {
    "meal": {"none": "no meal", "less": "a smaller meal than usual", "typical": "a usual meal",
             "more": "a larger meal than usual"},
    "exercise": {"none": "no exercise", "less": "less exercise than usual", "typical": "usual exercise",
                 "more": "more exercise than usual"},
}
# safety.SafetyFlag kinds as titles (the What-if page's warnings, the saved scenarios' table)
FLAG_TITLES = {"out_of_range": "Outside the training data", "non_monotone": "Dose-response not monotone",
               "above_history": "Far above their own history", "uncertain": "Dose or no dose: a coin toss",
               "flat_zero": "No dose at any glucose"}
STOP_LABELS = {"early_stopping": "the validation loss stopped improving", "max_epochs": "it reached the maximum number of epochs",
               "stopped_by_user": "stopped by the user", "diverged": "the loss diverged"}  # train.STOP_REASONS
SPLIT_LABELS = {"chrono": "by time (each patient's last days are the test part)",
                "patients": "by patient (the test patients are never seen in training)",
                "random": "at random (decision points drawn at random)"}
TARGET_LABELS = {"decision-point": "the decision dose at each decision point",
                 "next-row": "the next row's dose (the seed's formulation: flatters the score)"}
PART_LABELS = {"train": "training part", "val": "validation part", "test": "test part", "all": "all parts"}

# The columns of the predictions CSV (`evaluate --predictions` and the Predictions page's download):
# machine names stay in the file; these descriptions ship beside it (describe_columns).
COLUMN_DESCRIPTIONS = {
    "patient_id": "patient number (the NN of the data-NN file)",
    "timestamp": "date and time of the decision point",
    "day_part": "time of day: morning, afternoon, evening or night",
    "glucose_now": "glucose measured at the decision point (mg/dL; empty when none)",
    "part": "part of the model's split the decision point fell in: train, val (validation) or test",
    "split": "part of the model's split the decision point fell in: train, val (validation) or test",
    "actual": "the decision dose actually given (units of Regular insulin)",
    "predicted": "the LSTM-GRU model's predicted decision dose (units)",
    "week": "first day of the week (weeks start on Monday)",
}


def column_description(column: str) -> str:
    """What a predictions-CSV column holds, in words (baselines and 90% interval bounds included)."""
    if column in COLUMN_DESCRIPTIONS:
        return COLUMN_DESCRIPTIONS[column]
    for suffix, bound in (("_low", "low"), ("_high", "high")):
        if column.endswith(suffix):
            who = column.removesuffix(suffix)
            name = "the LSTM-GRU model" if who == "model" else PREDICTOR_LABELS.get(who, who)
            return f"{bound} end of the 90% interval of {name} (units)"
    if column in PREDICTOR_LABELS:
        return f"the dose predicted by the baseline '{PREDICTOR_LABELS[column]}' (units)"
    return label(column)


# The columns of tune.trials_table (an Optuna trial and the settings it tried), for the Tune page.
TRIAL_LABELS = {
    "trial": "trial", "state": "state", "val_mae": "validation MAE (U)", "window": "window (rows)",
    "lstm_hidden": "LSTM units", "lstm_layers": "LSTM layers", "gru_hidden": "GRU units", "gru_layers": "GRU layers",
    "dense": "dense layers", "dropout": "dropout", "lr": "learning rate", "batch": "batch size",
    "attention": "attention", "epochs": "epochs run", "seconds": "seconds", "default": "default settings",
    "worker": "worker",
}


def describe_columns(columns) -> pd.DataFrame:
    """A two-column table (column, description) for a CSV's header."""
    return pd.DataFrame({"column": list(columns), "description": [column_description(c) for c in columns]})


def label(name: str) -> str:
    """The plain words for an identifier (itself when it has none)."""
    for table in (METRIC_LABELS, PREDICTOR_LABELS, FEATURE_LABELS, REASON_LABELS, PART_LABELS, SPLIT_LABELS,
                  TARGET_LABELS):
        if name in table:
            return table[name]
    return name


WITHOUT_IMPLAUSIBLE = " (without implausible)"  # pipeline.bundle_meta's suffix for metrics without typo doses


def predictor_label(name: str) -> str:
    """A model / baseline name in words, also with the bundle metrics' "(without implausible)" suffix."""
    if isinstance(name, str) and name.endswith(WITHOUT_IMPLAUSIBLE):
        return f"{predictor_label(name.removesuffix(WITHOUT_IMPLAUSIBLE))}, implausible doses left out"
    return PREDICTOR_LABELS.get(name, name)


def plain_table(table: pd.DataFrame) -> pd.DataFrame:
    """A metrics-like table with plain column names and plain model / baseline names."""
    out = table.copy()
    for column in ("name", "predictor"):
        if column in out.columns:
            out[column] = out[column].map(predictor_label)
    return out.rename(columns=METRIC_LABELS)
