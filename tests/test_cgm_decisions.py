"""Decision points on CGM and pump data without look-ahead (insulin_core/prep/timeline.py): a CGM
reading is one only at the clock cadence, meals / fingersticks / exercise always, insulin never;
boluses fold into the decision point before them within the dose window, others stay alone and are
counted; every bolus unit is counted once; AIM94's readings are untouched by the cadence."""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from insulin_core.data.demo import DemoConfig, generate_cohort
from insulin_core.data.aim94 import load_texts
from insulin_core.data.codes import CODE_TABLE
from insulin_core.data.demo_modern import ModernDemoConfig, modern_files
from insulin_core.data.readers.detect import read_files
from insulin_core.prep.features import add_features
from insulin_core.prep.timeline import add_decision_doses, build_timeline, fold_summary, with_cgm_cadence
from insulin_core.prep.windows import WindowConfig, features_for, make_windows

DAY = datetime(2024, 3, 4)


def events(rows: list[tuple[str, int, float]], patient: int = 1) -> pd.DataFrame:
    """(HH:MM, code, value) rows -> a modern reader's events table (with its extra columns)."""
    stamps = [DAY + timedelta(hours=int(t[:2]), minutes=int(t[3:])) for t, _, _ in rows]
    codes = [c for _, c, _ in rows]
    return pd.DataFrame({
        "patient_id": patient, "timestamp": pd.to_datetime(stamps).astype("datetime64[us]"), "code": codes,
        "value": [float(v) for _, _, v in rows], "kind": [CODE_TABLE[c].kind for c in codes],
        "detail": [CODE_TABLE[c].detail for c in codes], "paper_time": False, "censored": "", "implausible": False,
        "file": "f", "line": range(1, len(rows) + 1), "carbs_g": np.nan, "unit_in": "mg/dL", "record_type": "x"})


def cgm(start: str, end: str) -> list[tuple[str, int, float]]:
    t0, t1 = (datetime.strptime(x, "%H:%M") for x in (start, end))
    return [((t0 + timedelta(minutes=m)).strftime("%H:%M"), 48, 120.0)
            for m in range(0, int((t1 - t0).total_seconds() // 60) + 1, 5)]


FIXTURE = [*cgm("07:58", "10:58"),
           ("05:00", 33, 1.0),  # a bolus before anything else: alone, history only
           ("08:30", 66, 0.0), ("08:32", 33, 4.5),  # a meal and its bolus two minutes later
           ("09:41", 33, 1.5),  # a correction 38 min after the 09:03 check: folded there
           ("10:20", 57, 210.0), ("10:21", 33, 2.0),  # a fingerstick and its bolus
           ("12:30", 33, 0.7)]  # 92 min after the last CGM point (10:58 is off the cadence): alone


def decision_times(tl: pd.DataFrame) -> list[str]:
    return [t.strftime("%H:%M") for t in tl.loc[tl["decision_point"], "timestamp"]]


def modern_events() -> pd.DataFrame:
    return read_files(modern_files(ModernDemoConfig(patients=3, days=5)), "test").events


def test_cgm_readings_are_decision_points_only_at_the_clock_cadence_meals_and_fingersticks_always():
    tl = build_timeline(events(FIXTURE), cgm_every_min=60)
    assert decision_times(tl) == ["07:58", "08:03", "08:30", "09:03", "10:03", "10:20"]
    assert decision_times(build_timeline(events(FIXTURE), cgm_every_min=30)) == [
        "07:58", "08:03", "08:30", "08:33", "09:03", "09:33", "10:03", "10:20", "10:33"]
    every_reading = build_timeline(events(FIXTURE), cgm_every_min=5)
    assert every_reading.loc[every_reading["glucose"].notna(), "decision_point"].all()
    with pytest.raises(ValueError, match="whole number of minutes from 1"):
        build_timeline(events(FIXTURE), cgm_every_min=0)


def test_boluses_fold_into_the_decision_point_before_them_and_the_others_stay_alone_and_are_counted():
    tl = add_decision_doses(build_timeline(events(FIXTURE)), 60)
    dose = dict(zip(decision_times(tl), tl.loc[tl["decision_point"], "decision_dose"]))
    assert dose == {"07:58": 0.0, "08:03": 0.0, "08:30": 4.5, "09:03": 1.5, "10:03": 0.0, "10:20": 2.0}
    summary = fold_summary(build_timeline(events(FIXTURE)), 60)
    assert summary["alone"] == 2 and summary["alone_units"] == pytest.approx(1.7)
    assert summary["decision_units"] + summary["alone_units"] == pytest.approx(9.7)


@pytest.mark.parametrize("window", [0, 15, 60, 180])
@pytest.mark.parametrize("every", [15, 60])
def test_every_bolus_unit_is_counted_once_on_the_modern_demo(window, every):
    ev = modern_events()
    bolus_units = ev.loc[ev["code"] == 33, "value"].sum()
    summary = fold_summary(build_timeline(ev, every), window)
    assert bolus_units > 0 and summary["regular_units"] == pytest.approx(bolus_units)
    assert summary["decision_units"] + summary["alone_units"] == pytest.approx(bolus_units)
    if window == 0:
        assert summary["folded"] == 0


def test_no_decision_point_exists_only_because_of_insulin():
    ev = modern_events()
    insulin = ev["kind"].isin(["regular", "nph", "ultralente"])
    with_insulin = build_timeline(ev)
    without = build_timeline(ev[~insulin].reset_index(drop=True))
    points = with_insulin.loc[with_insulin["decision_point"], ["patient_id", "timestamp"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(points, without.loc[without["decision_point"], ["patient_id", "timestamp"]]
                                  .reset_index(drop=True))
    assert len(points) < 0.2 * len(with_insulin)  # most CGM rows are history, not decision points


def test_decision_points_do_not_look_ahead():
    ev = modern_events()
    cut = ev["timestamp"].min() + pd.Timedelta(days=2, hours=7, minutes=13)
    full, early = build_timeline(ev), build_timeline(ev[ev["timestamp"] <= cut].reset_index(drop=True))
    before = full[full["timestamp"] <= cut].reset_index(drop=True)
    pd.testing.assert_series_equal(before["decision_point"], early["decision_point"])


def test_aim94_readings_code_48_included_are_untouched_by_the_cadence():
    ev = load_texts(generate_cohort(DemoConfig(patients=4, days=30)), "demo").events
    assert (ev["code"] == 48).any()
    five, daily = build_timeline(ev, cgm_every_min=5), build_timeline(ev, cgm_every_min=240)
    assert not five["cgm_reading"].any()
    pd.testing.assert_frame_equal(five.drop(columns="cgm_every"), daily.drop(columns="cgm_every"))
    tl = build_timeline(ev)
    assert tl.loc[tl["glucose"].notna(), "decision_point"].all()


@pytest.mark.parametrize("every", [5, 30, 60, 240])
def test_another_cadence_applied_to_a_timeline_is_the_timeline_built_with_it(every):
    """The cadence travels with a model as the dose window does: applied to a built timeline
    (with_cgm_cadence), it gives what building the timeline at that cadence gives."""
    ev = pd.concat([events(FIXTURE), modern_events()], ignore_index=True)
    built = build_timeline(ev, cgm_every_min=every)
    for start in (5, 60, 1440):
        pd.testing.assert_frame_equal(with_cgm_cadence(build_timeline(ev, cgm_every_min=start), every), built)
    assert (built["cgm_every"] == every).all() and built["cgm_reading"].any()
    assert with_cgm_cadence(built, every) is built  # nothing to do: no copy


@pytest.mark.parametrize("every", [0, -5, 1441, 2.5, True, "60"])
def test_an_impossible_cadence_is_refused_in_words(every):
    with pytest.raises(ValueError, match="CGM cadence must be a whole number of minutes from 1 to 1440"):
        with_cgm_cadence(build_timeline(events(FIXTURE)), every)
    with pytest.raises(ValueError, match="CGM cadence"):
        WindowConfig(cgm_every=every)


def test_a_models_cadence_decides_its_decision_points_and_older_models_keep_the_hour():
    features = add_features(build_timeline(modern_events()))  # the cohort as loaded: the default hour
    hourly = make_windows(features, WindowConfig(length=3))
    half = make_windows(features, WindowConfig(length=3, cgm_every=30))
    assert len(half) > len(hourly)
    expected = add_features(build_timeline(modern_events(), cgm_every_min=30))
    pd.testing.assert_frame_equal(features_for(features, 60, 30), expected)
    assert features_for(features, 60, 60) is features
    # a bundle saved before the cadence was kept was trained at the hour
    old = {k: v for k, v in WindowConfig().to_dict().items() if k != "cgm_every"}
    assert WindowConfig.from_dict(old).cgm_every == 60
