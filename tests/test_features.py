"""Timeline and features: one row per moment, history features strictly from the past."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from insulin_core.data.aim94 import load_texts
from insulin_core.prep.features import (NOW_FEATURES, SEQ_FEATURES, add_features, history_doses, now_columns,
                                        seq_columns)
from insulin_core.prep.timeline import (DOSE_COLUMNS, build_timeline, day_part_of, day_parts, fold_summary, hour_of_day,
                                        stamp_text)

from .conftest import aim94_text

ROWS = [
    "01-01-1991 7:30 58 150", "01-01-1991 7:30 33 6", "01-01-1991 7:30 34 12",
    "01-01-1991 12:00 60 210", "01-01-1991 12:00 33 8", "01-01-1991 12:00 67 0",
    "01-01-1991 15:00 33 2",  # insulin only
    "01-01-1991 18:00 62 90", "01-01-1991 18:00 69 0",
    "01-01-1991 23:00 48 0Hi",
    "01-02-1991 7:45 58 110", "01-02-1991 7:45 33 4", "01-02-1991 7:45 65 0",
    "01-02-1991 12:10 60 180", "01-02-1991 12:10 33 7",
    "01-03-1991 7:40 58 200", "01-03-1991 7:40 33 9",
]


@pytest.fixture
def features() -> pd.DataFrame:
    events = load_texts({"data-03": aim94_text(*ROWS)}, "t").events
    return add_features(build_timeline(events))


def test_timeline_has_one_row_per_moment(features):
    assert len(features) == 8  # 8 distinct timestamps
    first = features.iloc[0]
    assert (first["glucose"], first["regular"], first["nph"]) == (150.0, 6.0, 12.0)
    assert first["glucose_slot"] == "pre_breakfast"


def test_meal_and_exercise_levels_and_hypo(features):
    noon = features.iloc[1]
    assert noon["meal"] == 3.0  # code 67: more than usual
    assert features.iloc[3]["exercise"] == 2.0  # code 69: typical
    assert features.iloc[5]["hypo"] == 1.0


def test_decision_points_exclude_insulin_only_rows(features):
    insulin_only = features["timestamp"] == pd.Timestamp("1991-01-01 15:00")
    assert not features.loc[insulin_only, "decision_point"].item()
    assert features.loc[~insulin_only, "decision_point"].all()


def test_day_parts():
    assert list(day_part_of(np.array([0.0, 4.99, 5.0, 10.99, 11.0, 16.99, 17.0, 21.99, 22.0]))) == [
        3, 3, 0, 0, 1, 1, 2, 2, 3]


def test_day_parts_of_timestamps():
    # the one timestamp -> day part rule of features, scenarios, whatif, safety and the charts:
    # seconds are dropped (04:59:59 is still night), night wraps midnight, NaT reads as night as
    # pandas' dt.hour (NaN) did
    stamps = pd.Series(pd.to_datetime(["1990-01-01 04:59:59", "1990-01-01 05:00:00", "1990-01-02 10:59:00", "1990-01-02 11:00:00",
                                       "1990-01-03 16:59:00", "1990-01-03 17:00:00", "1990-01-03 21:59:00", "1990-01-03 22:00:00",
                                       "1990-01-04 00:00:00", None]))
    assert list(day_parts(stamps)) == ["night", "morning", "morning", "afternoon", "afternoon", "evening", "evening",
                                       "night", "night", "night"]
    hours = hour_of_day(stamps)
    assert hours[:3].tolist() == [4 + 59 / 60, 5.0, 10 + 59 / 60] and np.isnan(hours[-1])


def test_a_moment_is_named_to_the_minute_or_to_the_second_where_it_has_seconds():
    stamps = pd.Series([pd.Timestamp("1991-04-21 09:09"), pd.Timestamp("2024-02-04 23:03:27")])
    assert stamp_text(stamps).tolist() == ["1991-04-21 09:09", "2024-02-04 23:03:27"]
    assert [pd.Timestamp(t) for t in stamp_text(stamps)] == stamps.tolist()  # parsed back: the same moments
    assert stamp_text(pd.Timestamp("2024-02-04 23:03:27")) == "2024-02-04 23:03:27"


def test_cyclic_time_of_day(features):
    row = features.iloc[1]  # 12:00
    assert row["seq_tod_sin"] == pytest.approx(0.0, abs=1e-9)
    assert row["seq_tod_cos"] == pytest.approx(-1.0)


def test_last_dose_in_same_day_part_is_strictly_before(features):
    mornings = features[features["day_part"] == "morning"].set_index("timestamp")
    assert mornings.loc["1991-01-01 07:30", "now_has_last_regular_same_dp"] == 0.0
    assert mornings.loc["1991-01-02 07:45", "now_last_regular_same_dp"] == 6.0
    assert mornings.loc["1991-01-03 07:40", "now_last_regular_same_dp"] == 4.0
    assert mornings.loc["1991-01-03 07:40", "now_median3_regular_same_dp"] == 5.0  # median(6, 4)
    # age of the last morning dose: 07:45 -> next day 07:40 = 23.92 h
    assert np.expm1(mornings.loc["1991-01-03 07:40", "now_log_age_last_regular_same_dp"]) == pytest.approx(23 + 55 / 60)


def test_share_of_moments_with_a_dose_ignores_the_current_moment(features):
    evening = features.set_index("timestamp")
    # afternoon decision points: 01-01 12:00 (dose), 01-02 12:10 (dose); 15:00 is insulin-only.
    assert evening.loc["1991-01-02 12:10", "now_share_dose_same_dp"] == 1.0
    assert evening.loc["1991-01-01 12:00", "now_share_dose_same_dp"] == 0.0  # nothing before


def test_hours_since_last_regular_and_previous_glucose(features):
    by_time = features.set_index("timestamp")
    row = by_time.loc["1991-01-01 18:00"]
    assert np.expm1(row["now_log_hours_since_regular"]) == pytest.approx(3.0)  # 15:00 dose
    assert row["now_last_regular"] == 2.0
    assert row["now_glucose_prev"] == 210.0


def test_now_features_never_see_the_dose_given_now(features):
    """Changing the dose at a moment must not change that moment's NOW features."""
    events = load_texts({"data-03": aim94_text(*ROWS)}, "t").events
    changed = events.copy()
    changed.loc[(changed["code"] == 33) & (changed["value"] == 9.0), "value"] = 30.0
    other = add_features(build_timeline(changed))
    assert np.array_equal(features[now_columns()].to_numpy(), other[now_columns()].to_numpy())


def test_no_future_leaks_into_now_features(features):
    """Truncating the history after a moment leaves that moment's features unchanged."""
    events = load_texts({"data-03": aim94_text(*ROWS)}, "t").events
    cut = pd.Timestamp("1991-01-02 07:45")
    truncated = add_features(build_timeline(events[events["timestamp"] <= cut]))
    full = features[features["timestamp"] <= cut]
    assert np.allclose(full[now_columns()].to_numpy(), truncated[now_columns()].to_numpy())


def test_feature_columns_are_finite_and_named(features):
    assert len(seq_columns()) == len(SEQ_FEATURES) and len(now_columns()) == len(NOW_FEATURES)
    values = features[seq_columns() + now_columns()].to_numpy()
    assert np.isfinite(values).all()


def test_implausible_doses_are_capped_as_inputs():
    events = load_texts({"data-01": aim94_text("01-01-1991 8:00 58 100", "01-01-1991 8:00 33 344")}, "t").events
    features = add_features(build_timeline(events))
    assert features["regular"].item() == 344.0  # the record is kept as written
    assert features["seq_regular"].item() == 40.0  # but fed to models at the plausibility cap
    assert features["implausible"].item()


@pytest.mark.realdata
def test_real_data_share_of_insulin_only_rows_with_a_dose(real_cohort):
    tl = real_cohort.features
    insulin_only = tl[~tl["decision_point"]]
    # The reason decision points exclude insulin-only rows: 88% of them carry a Regular dose.
    assert (insulin_only["regular"] > 0).mean() == pytest.approx(0.88, abs=0.01)
    assert np.isfinite(tl[seq_columns() + now_columns()].to_numpy()).all()


# --- the numpy implementation equals the pandas groupby one it replaced (tests/reference_features.py)

def assert_same_as_reference(events: pd.DataFrame) -> None:
    """build_timeline and add_features equal the reference exactly: columns, order, dtypes, values."""
    from .reference_features import add_features as ref_features, build_timeline as ref_timeline

    timeline = build_timeline(events)
    pd.testing.assert_frame_equal(timeline, ref_timeline(events), check_exact=True)
    # The reference predates the decision dose: it equals a dose window of 0 (the moment's own dose).
    pd.testing.assert_frame_equal(add_features(timeline, dose_window=0).drop(columns=DOSE_COLUMNS),
                                  ref_features(timeline), check_exact=True)


def tails(events: pd.DataFrame, sizes=(300, 600)):
    """Single-patient tails the size the what-if explorer rebuilds, for a few patients."""
    counts = events["patient_id"].value_counts()
    for pid in [counts.index[0], counts.index[len(counts) // 2], counts.index[-1]]:
        mine = events[events["patient_id"] == pid]
        for size in sizes:
            yield mine.tail(size)


@pytest.fixture(scope="module")
def demo_events() -> pd.DataFrame:
    from insulin_core.data.demo import DemoConfig, generate_cohort

    return load_texts(generate_cohort(DemoConfig(patients=8, days=90)), "demo").events


def test_same_as_reference_on_demo_cohort(demo_events):
    assert_same_as_reference(demo_events)


def test_same_as_reference_on_single_patient_tails(demo_events):
    for tail in tails(demo_events):
        assert_same_as_reference(tail)


def test_same_as_reference_on_stacked_copies_and_any_row_order(demo_events):
    """What-if band variants stack copies under negative stand-in ids; rows may come in any order."""
    tail = demo_events[demo_events["patient_id"] == demo_events["patient_id"].iloc[0]].tail(400)
    stacked = pd.concat([tail.assign(patient_id=-1 - b) for b in range(3)], ignore_index=True)
    assert_same_as_reference(stacked)
    assert_same_as_reference(stacked.sample(frac=1.0, random_state=0))
    from .reference_features import add_features as ref_features

    shuffled = build_timeline(stacked).sample(frac=1.0, random_state=1)
    pd.testing.assert_frame_equal(add_features(shuffled, dose_window=0).drop(columns=DOSE_COLUMNS),
                                  ref_features(shuffled), check_exact=True)


def test_same_as_reference_on_fixture_rows_and_edge_cases():
    events = load_texts({"data-03": aim94_text(*ROWS), "data-04": aim94_text(*ROWS[:5])}, "t").events
    assert_same_as_reference(events)
    assert_same_as_reference(events.iloc[:0])  # no events at all
    assert_same_as_reference(events.iloc[:1])  # one event
    # Conflicts inside one moment: two glucose readings with different slots, a censored reading
    # after an uncensored one, an unknown meal word, a dose without a value.
    odd = events.copy()
    first = odd["timestamp"] == odd["timestamp"].min()
    extra = odd[first & (odd["kind"] == "glucose")].assign(value=171.0, detail="unspecified", censored="high")
    meal = odd[first].iloc[[0]].assign(kind="meal", detail="huge", value=0.0)
    nan_dose = odd[first & (odd["kind"] == "regular")].assign(value=np.nan)
    assert_same_as_reference(pd.concat([odd, extra, meal, nan_dose], ignore_index=True))


@pytest.mark.realdata
def test_same_as_reference_on_real_data(real_data_dir):
    from insulin_core.data.source import DataSource, load_source

    events = load_source(DataSource("folder", str(real_data_dir))).events
    assert_same_as_reference(events)
    for tail in tails(events):
        assert_same_as_reference(tail)


# --- the decision dose: Regular written minutes after the reading belongs to that decision ---------

LATE = [
    "02-01-1991 7:30 58 250",  # morning reading, no dose of its own ...
    "02-01-1991 7:34 33 9",  # ... the dose written 4 minutes later on its own row (folded)
    "02-01-1991 7:50 33 1",  # another small top-up within the hour (folded too)
    "02-01-1991 12:00 60 180",
    "02-01-1991 12:05 33 5",  # folded into 12:00
    "02-01-1991 13:30 33 2",  # 90 minutes later: alone (history only)
    "02-01-1991 18:00 62 140", "02-01-1991 18:00 33 4",  # a dose written at the moment itself
    "02-01-1991 18:40 57 160",  # the next decision point comes first ...
    "02-01-1991 18:45 33 3",  # ... so this dose belongs to 18:40, not to 18:00
    "02-02-1991 7:40 58 230",  # the next morning: its history sees yesterday's 10 U
    "02-02-1991 7:43 33 8",
]


def late_features(rows=LATE, dose_window=60) -> pd.DataFrame:
    return add_features(build_timeline(load_texts({"data-05": aim94_text(*rows)}, "t").events), dose_window)


def at(features: pd.DataFrame, stamp: str) -> pd.Series:
    return features.loc[features["timestamp"] == pd.Timestamp(stamp)].iloc[0]


def test_decision_dose_folds_insulin_only_rows_up_to_the_window():
    f = late_features()
    assert at(f, "1991-02-01 07:30")["decision_dose"] == 10.0  # 9 + 1
    assert at(f, "1991-02-01 12:00")["decision_dose"] == 5.0
    assert at(f, "1991-02-01 18:00")["decision_dose"] == 4.0
    assert at(f, "1991-02-01 18:40")["decision_dose"] == 3.0
    assert at(f, "1991-02-02 07:40")["decision_dose"] == 8.0
    alone = at(f, "1991-02-01 13:30")
    assert not alone["folded_regular"] and alone["decision_dose"] == 0.0
    assert at(f, "1991-02-01 07:34")["folded_regular"] and at(f, "1991-02-01 18:45")["folded_regular"]
    # Every Regular unit is counted exactly once: in a decision dose or alone.
    assert f["decision_dose"].sum() + f.loc[~f["decision_point"] & ~f["folded_regular"], "regular"].sum() == f["regular"].sum()


def test_dose_window_zero_is_the_moments_own_dose():
    f = late_features(dose_window=0)
    dp = f[f["decision_point"]]
    assert np.array_equal(dp["decision_dose"].to_numpy(), dp["regular"].to_numpy())
    assert not f["folded_regular"].any()
    five = late_features(dose_window=5)  # 7:34 is 4 minutes after 7:30, 7:50 is 20
    assert at(five, "1991-02-01 07:30")["decision_dose"] == 9.0


def test_a_folded_dose_changes_its_target_and_none_of_its_inputs():
    """No look-ahead: the dose written after a decision point is its answer, never its input."""
    base = late_features()
    changed_rows = [r.replace("7:34 33 9", "7:34 33 15") for r in LATE]
    changed = late_features(changed_rows)
    moment = base["timestamp"] == pd.Timestamp("1991-02-01 07:30")
    assert changed.loc[moment, "decision_dose"].item() == 16.0 != base.loc[moment, "decision_dose"].item()
    before = base["timestamp"] <= pd.Timestamp("1991-02-01 07:30")
    cols = now_columns() + seq_columns()
    assert np.array_equal(base.loc[before, cols].to_numpy(), changed.loc[before, cols].to_numpy())
    # ... and the next morning's history sees it: its last morning dose is the decision dose 16 U.
    assert at(changed, "1991-02-02 07:40")["now_last_regular_same_dp"] == 16.0
    assert at(base, "1991-02-02 07:40")["now_last_regular_same_dp"] == 10.0


def test_history_summaries_count_decision_doses():
    f = late_features()
    morning = at(f, "1991-02-02 07:40")
    assert morning["now_share_dose_same_dp"] == 1.0  # the 07:30 decision was a dose, though written later
    assert morning["now_median3_regular_same_dp"] == 10.0
    # The alone 13:30 dose is history too: the 18:00 moment's last Regular.
    assert at(f, "1991-02-01 18:00")["now_last_regular"] == 2.0
    without = late_features(dose_window=0)
    assert at(without, "1991-02-02 07:40")["now_share_dose_same_dp"] == 0.0  # the defect the fold removes


def test_one_rule_for_a_past_dose_caps_a_typing_error_and_marks_it():
    """features.history_doses is what the history features count and what the What-if's safety
    check reads: decision doses (late-written ones folded in), alone doses, a typing error at the
    cap and marked, so the safety check can leave it out."""
    rows = LATE + ["02-02-1991 12:00 60 150", "02-02-1991 12:00 33 344",  # a typing error at a decision point
                   "02-02-1991 15:00 33 99"]  # and one alone
    f = late_features(rows)
    dose, typo = history_doses(f)
    by_time = dict(zip(f["timestamp"].dt.strftime("%m-%d %H:%M"), zip(dose, typo)))
    assert by_time["02-01 07:30"] == (10.0, False) and by_time["02-01 07:34"] == (0.0, False)  # folded
    assert by_time["02-01 13:30"] == (2.0, False)  # alone
    assert by_time["02-02 12:00"] == (40.0, True) and by_time["02-02 15:00"] == (40.0, True)
    # the history features read exactly these doses: the last Regular before 15:00 is the capped 40 U
    assert at(f, "1991-02-02 15:00")["now_last_regular"] == 40.0


def test_fold_summary_counts_folded_and_alone_doses():
    tl = build_timeline(load_texts({"data-05": aim94_text(*LATE)}, "t").events)
    s = fold_summary(tl, 60)
    assert (s["insulin_only_regular"], s["folded"], s["alone"]) == (6, 5, 1)
    assert s["decision_points_with_folded_dose"] == 4 and s["of_them_without_own_dose"] == 4
    assert fold_summary(tl, 0)["folded"] == 0


@pytest.mark.realdata
def test_real_data_decision_doses(real_cohort):
    """The measured habit of the real files: most late-written doses fall within minutes."""
    tl = real_cohort.features
    s = fold_summary(tl[[c for c in tl.columns if not c.startswith(("seq_", "now_"))] ].drop(columns=DOSE_COLUMNS + ["day_part"]), 60)
    assert s["alone"] == 474 and s["folded"] == 2812 and s["patients_mostly_late"] == 39
    assert fold_summary(build_timeline(real_cohort.events), 5)["of_them_without_own_dose"] > 2300
