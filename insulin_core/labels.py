"""Plain words for the identifiers the core uses: metric, feature, baseline and rejection-reason
names as a person reads them. One table, for the pages (tables, chart axes) and anything else
that shows these names to a person; the identifiers themselves stay in files and code."""
from __future__ import annotations

import pandas as pd

from .aim94 import REASONS
from .codes import DAY_PARTS
from .features import GLUCOSE_SLOTS
from .metrics import METRICS

METRIC_LABELS = {
    "name": "model or baseline", "rows": "rows", "n": "decision points", "n_dose": "dose occasions",
    **{name: m.label for name, m in METRICS.items()},
    **{f"{name}_dose": f"{m.label} on dose occasions" for name, m in METRICS.items()},
}

PREDICTOR_LABELS = {
    "model": "LSTM-GRU model", "previous_row": "previous row's dose", "last_same_daypart": "last dose at this time of day",
    "sliding_scale": "the patient's own sliding scale", "ridge": "ridge regression", "gbm": "gradient boosting",
    "two_stage_gbm": "two-stage gradient boosting",
}

FEATURE_LABELS = {
    "glucose": "glucose", "has_glucose": "a glucose reading", "regular": "Regular dose", "nph": "NPH dose",
    "ultralente": "UltraLente dose", "hypo": "hypoglycemic symptoms", "meal": "meal size", "exercise": "exercise",
    "tod_sin": "time of day (cycle, sine)", "tod_cos": "time of day (cycle, cosine)",
    **{f"dp_{p}": p for p in DAY_PARTS}, "log_hours_since_prev": "hours since the entry before",
    "paper_time": "a paper-record time", **{f"slot_{s}": f"reading slot: {s.replace('_', ' ')}" for s in GLUCOSE_SLOTS},
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


def label(name: str) -> str:
    """The plain words for an identifier (itself when it has none)."""
    for table in (METRIC_LABELS, PREDICTOR_LABELS, FEATURE_LABELS, REASON_LABELS):
        if name in table:
            return table[name]
    return name


def plain_table(table: pd.DataFrame) -> pd.DataFrame:
    """A metrics-like table with plain column names and plain model / baseline names."""
    out = table.copy()
    for column in ("name", "predictor"):
        if column in out.columns:
            out[column] = out[column].map(lambda v: PREDICTOR_LABELS.get(v, v))
    return out.rename(columns=METRIC_LABELS)
