"""One call from a data source to model-ready features: events -> timeline -> features."""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import pandas as pd

from ..data.aim94 import LoadResult, QualityReport
from .features import add_features
from .timeline import TIMELINE_COLUMNS, build_timeline, fold_summary
from ..data.source import DataSource, load_source


@dataclass
class Cohort:
    source: DataSource
    events: pd.DataFrame
    report: QualityReport
    features: pd.DataFrame  # one row per (patient, timestamp) with SEQ/NOW feature columns
    format: str = "AIM94"  # the reader's name (LoadResult.format)
    glucose_units: str = "mg/dL"  # in words, with the units records came in (LoadResult.glucose_units)

    @property
    def data_label(self) -> str:
        """The source, its format and its glucose unit: what every page and command names."""
        return f"{self.source.label} [{self.format}; glucose in {self.glucose_units}]"

    @functools.cached_property  # a hash of every event: once per cohort, not once per page view
    def fingerprint(self) -> str:
        return data_fingerprint(self.events)

    @functools.cached_property  # once per cohort, not once per page view
    def has_cgm(self) -> bool:
        """Whether the data holds a CGM stream (its decision points then follow a model's cadence)."""
        return bool(self.features["cgm_reading"].any())

    @property
    def patients(self) -> list[int]:
        return sorted(int(p) for p in self.features["patient_id"].unique())

    def summary(self) -> dict:
        tl = self.features
        days = tl.groupby("patient_id")["timestamp"].agg(lambda s: (s.max() - s.min()).days + 1)
        return {
            "source": self.source.label, "format": self.format, "glucose_units": self.glucose_units,
            "synthetic": self.source.is_synthetic,
            "patients": len(self.patients), "events": len(self.events), "moments": len(tl),
            "decision_points": int(tl["decision_point"].sum()),
            "regular_doses": int((tl["regular"] > 0).sum()),
            "days_median": float(days.median()) if len(days) else 0.0,
            "first": str(tl["timestamp"].min()) if len(tl) else "", "last": str(tl["timestamp"].max()) if len(tl) else "",
            "events_by_kind": {k: int(n) for k, n in self.events["kind"].value_counts().items()},
            "decision_doses": fold_summary(tl[TIMELINE_COLUMNS], int(tl["dose_window"].iloc[0]) if len(tl) else 60),
        }


def cohort_from_load(source: DataSource, loaded: LoadResult) -> Cohort:
    return Cohort(source, loaded.events, loaded.report, add_features(build_timeline(loaded.events)),
                  loaded.format, loaded.glucose_units)


def load_cohort(source: DataSource) -> Cohort:
    return cohort_from_load(source, load_source(source))


def data_fingerprint(events: pd.DataFrame) -> str:
    """A short hash of the accepted events: tells whether a bundle was trained on this data."""
    cols = events[["patient_id", "timestamp", "code", "value"]]
    digest = hashlib.sha256(pd.util.hash_pandas_object(cols, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]
