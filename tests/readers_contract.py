"""What every reader's result must satisfy (insulin_core/data/readers/contract.py), checked by each reader's
tests on each of its fixtures: the events table of aim94 (same columns first, same dtypes, sorted),
a report whose counts add up, reasons the reader declares, and a table the downstream stages take."""
from __future__ import annotations

import numpy as np
import pandas as pd

from insulin_core.data import aim94
from insulin_core.data.aim94 import EVENT_COLUMNS, LoadResult
from insulin_core.data.codes import CODE_TABLE
from insulin_core.prep.features import add_features
from insulin_core.prep.timeline import build_timeline
from insulin_core.data.readers.base import EXTRA_COLUMNS
from insulin_core.data.readers.contract import Reader, RecordReader

AIM94_DTYPES = aim94._empty_events().dtypes


def check_result(result: LoadResult, reader: Reader, downstream: bool = False) -> None:
    events, report = result.events, result.report
    assert list(events.columns[: len(EVENT_COLUMNS)]) == EVENT_COLUMNS
    assert set(events.columns[len(EVENT_COLUMNS):]) <= set(EXTRA_COLUMNS)
    for column in EVENT_COLUMNS:
        assert events[column].dtype == AIM94_DTYPES[column], column
    assert set(events["code"]) <= set(CODE_TABLE)
    if isinstance(reader, RecordReader):  # AIM94's paper records and meter words are its own
        assert not events["paper_time"].any() and (events["censored"] == "").all()
    order = events.sort_values(["patient_id", "timestamp"], kind="stable").index
    assert (order == events.index).all(), "events sorted by patient and time"
    assert report.accepted + report.rejected_total == report.lines
    assert sum(f["lines"] for f in report.per_file.values()) == report.lines
    assert sum(f["accepted"] for f in report.per_file.values()) == report.accepted
    assert set(report.rejected) <= set(reader.reasons), set(report.rejected) - set(reader.reasons)
    assert report.reasons == reader.reasons and report.events == len(events)
    if "carbs_g" in events:
        meals = events["kind"] == "meal"
        assert (events.loc[meals, "carbs_g"] > 0).all() and events.loc[~meals, "carbs_g"].isna().all()
    if downstream and len(events):
        features = add_features(build_timeline(events))
        assert len(features) and np.isfinite(features["glucose"].fillna(0)).all()


def bolus_total(events: pd.DataFrame) -> float:
    return float(events.loc[events["code"] == 33, "value"].sum())
