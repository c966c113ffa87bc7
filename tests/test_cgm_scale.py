"""bench/cgm_scale.py and its generator on a tiny cohort: the generator writes what the HUPA-UCM
reader reads (every row a record, every record accepted), and each stage's rows agree with the
one before it."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import cgm_generator  # noqa: E402
import cgm_scale  # noqa: E402

DAYS = 3


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cgm")
    return folder, cgm_generator.write_cohort(folder, 2, DAYS, seed=0)


def test_generator_is_deterministic_and_shaped(cohort):
    _, paths = cohort
    assert [p.name for p in paths] == ["HUPA0001P.csv", "HUPA0002P.csv"]
    assert paths[0].read_bytes() == cgm_generator.patient_csv(1, DAYS, seed=0)
    assert paths[0].read_bytes() != paths[1].read_bytes()
    lines = paths[0].read_text().splitlines()
    assert lines[0] == cgm_generator.HEADER and len(lines) == 1 + DAYS * cgm_generator.SLOTS_PER_DAY
    rows = cgm_generator.patient_rows(1, DAYS)
    assert (np.diff(pd.to_datetime(rows["time"]).to_numpy()) == np.timedelta64(5, "m")).all()
    per_day = lambda col: (rows[col] > 0).sum() / DAYS  # noqa: E731
    assert 2 <= per_day("bolus_volume_delivered") <= 6 and 2 <= per_day("carb_input") <= 6
    assert (rows["basal_rate"] > 0).all() and rows["glucose"].isna().any()
    assert rows["glucose"].dropna().between(*cgm_generator.CGM_RANGE).all()


def test_stages_agree_row_for_row(cohort):
    _, paths = cohort
    rows = cgm_generator.patient_rows(1, DAYS)
    meter = cgm_scale.Meter()
    loaded, timeline, features, ws = cgm_scale.patient_stages(paths[0], meter)
    report, events = loaded.report, loaded.events
    assert report.lines == report.accepted == len(rows) == meter.rows["read"] and not report.rejected
    kinds = events["kind"].value_counts()
    assert kinds["glucose"] == rows["glucose"].notna().sum()  # one CGM event per reading, none made up
    assert kinds["regular"] == (rows["bolus_volume_delivered"] > 0).sum()
    assert kinds["meal"] == (rows["carb_input"] > 0).sum()
    assert np.isclose(events.loc[events["kind"] == "regular", "value"].sum(), rows["bolus_volume_delivered"].sum())
    assert np.isclose(events.loc[events["kind"] == "ultralente", "value"].sum(), (rows["basal_rate"] / 12).sum())
    moments = events[["patient_id", "timestamp"]].drop_duplicates()
    assert len(timeline) == len(moments) == len(features) == meter.rows["timeline"] == meter.rows["features"]
    assert meter.rows["events"] == len(events)
    # a window for each decision point with `length` rows of history before it, no more
    eligible = timeline["decision_point"].to_numpy().copy()
    eligible[: ws.config.length] = False
    assert len(ws) == eligible.sum() == meter.rows["windows"]
    assert set(meter.seconds) == set(cgm_scale.STAGES) and all(v > 0 for v in meter.peak.values())


def test_child_and_report_run(cohort):
    folder, _ = cohort
    r = cgm_scale.child_cgm(2, folder, DAYS, max_seconds=600, train_max=2, train_sample=512)
    assert r["patients_done"] == 2 and r["generate_s"] < 1  # the files were there: none made
    assert r["rows"]["read"] == 2 * DAYS * cgm_generator.SLOTS_PER_DAY
    t = r["train"]
    # every window is in the training, validation or (left out) test part, patient by patient
    assert t["train_windows"] + t["val_windows"] <= r["rows"]["windows"] < (t["train_windows"] + t["val_windows"]) * 1.3
    # the sample asked for, or every training window when there are fewer (a CGM reading is a decision
    # point only once an hour, so two days of two patients give about a hundred)
    assert t["sample_train"] == min(512, t["train_windows"]) and t["windows_per_s"] > 0 and t["epoch_s_extrapolated"] > 0
    lines = cgm_scale.table({"cgm": [r, r], "aim94": None})
    assert len(lines) == 2 + 2 * (len(cgm_scale.STAGES) + 1)
    assert "data path 1.00x" in cgm_scale.ratios({"cgm": [r, r], "aim94": None})[0]


def test_a_stage_too_quick_to_time_has_no_ratio_and_no_division_by_zero():
    """Seconds are kept to the hundredth: a stage of a few milliseconds on the small run reads 0.00
    (it failed this module's run once, dividing by it)."""
    stages = {s: 1.0 for s in cgm_scale.STAGES}
    quick = {s: (0.0 if i == 0 else 1.0) for i, s in enumerate(cgm_scale.STAGES)}
    small = {"patients_done": 2, "patient_years": 1, "seconds": quick, "rows": {"read": 10, "windows": 5}}
    large = {"patients_done": 4, "patient_years": 2, "seconds": {s: 2 * v for s, v in stages.items()},
             "rows": {"read": 20, "windows": 10}}
    line = cgm_scale.ratios({"cgm": [small, large], "aim94": small})
    first = cgm_scale.STAGES[0]
    assert f"{first} n/a" in line[0] and f"{cgm_scale.STAGES[1]} 1.00x" in line[0]
    assert f"{first} n/a" in line[1]
