"""The rules every reader shares (insulin_core/data/readers/base.py, records.py), worked by hand: basal rates to
units per clock hour, temporary rates over running ones, meal sizes against earlier meals only,
exercise levels, patient numbers, times and numbers."""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from insulin_core.data.readers.base import (BASAL_COLUMNS, EVENT_ITEM_COLUMNS, MEAL_BY_GRAMS, Reject, exercise_code,
                                            iso_time, number, patient_ids)
from insulin_core.data.codes import MEAL_CODES
from insulin_core.data.readers.records import (Records, basal_hours, meal_size_of, resolve_basal, size_meals,
                                             usual_meal_grams)


def segments(*rows: tuple) -> pd.DataFrame:
    """(start, end or None, rate, override) rows of patient 1, as the readers write them."""
    frame = pd.DataFrame([(i, 1, pd.Timestamp(s), pd.Timestamp(e) if e else pd.NaT, r, o, "basal")
                          for i, (s, e, r, o) in enumerate(rows)], columns=BASAL_COLUMNS)
    return frame.astype({"start": "datetime64[us]", "end": "datetime64[us]"})


def test_a_rate_becomes_the_units_of_each_clock_hour_stamped_when_that_hour_s_delivery_ends():
    hours = basal_hours(segments(("2024-01-01 06:40", "2024-01-01 09:10", 1.2, False)))
    assert hours["timestamp"].dt.strftime("%H:%M").tolist() == ["07:00", "08:00", "09:00", "09:10"]
    assert hours["value"].tolist() == pytest.approx([0.4, 1.2, 1.2, 0.2])
    assert (hours["code"] == 35).all() and list(hours.columns) == EVENT_ITEM_COLUMNS


def test_a_temporary_rate_replaces_the_running_one_and_an_open_rate_runs_to_the_next_or_a_day_at_most():
    rows = segments(("2024-01-01 00:00", None, 1.0, False), ("2024-01-01 02:00", None, 0.5, False),
                    ("2024-01-01 00:30", "2024-01-01 01:00", 3.0, True))
    last = {1: np.datetime64("2024-01-03T00:00")}
    resolved = resolve_basal(rows, last)
    units = basal_hours(resolved).set_index("timestamp")["value"]
    assert units[pd.Timestamp("2024-01-01 01:00")] == pytest.approx(0.5 * 1.0 + 0.5 * 3.0)
    assert units[pd.Timestamp("2024-01-01 02:00")] == pytest.approx(1.0)
    assert units.sum() == pytest.approx(2 * 1.0 - 0.5 + 1.5 + 24 * 0.5)  # the last rate: 24 h, not to the 3rd
    stopped = basal_hours(resolve_basal(rows, {1: np.datetime64("2024-01-01T03:00")}))
    assert stopped["value"].sum() == pytest.approx(1.5 + 1.5 + 0.5)  # and never past the last moment on record


def meal_events(*grams_at: tuple[float, str]) -> pd.DataFrame:
    return pd.DataFrame([(i, 1, pd.Timestamp(t), pd.NaT, MEAL_BY_GRAMS, 0.0, g, "g", "meal")
                         for i, (g, t) in enumerate(grams_at)], columns=EVENT_ITEM_COLUMNS)


def test_meals_are_sized_against_the_median_of_the_patient_s_earlier_meals_only():
    sized = size_meals(meal_events((60, "2024-01-01 08:00"), (30, "2024-01-01 12:00"), (90, "2024-01-01 19:00"),
                                   (60, "2024-01-02 08:00"), (39, "2024-01-02 12:00")), Records())
    # 60 first: typical; 30 < 2/3 x 60; 90 > 1.5 x median(60, 30) = 45; 60 = median(30, 60, 90); 39 < 2/3 x 60
    assert sized["code"].tolist() == [66, 68, 67, 66, 68]
    later_feast = size_meals(meal_events((60, "2024-01-01 08:00"), (30, "2024-01-01 12:00"),
                                         (900, "2024-01-05 12:00")), Records())
    assert later_feast["code"].tolist()[:2] == [66, 68]  # a later meal never resizes an earlier one


def test_the_what_if_reads_grams_by_the_same_rule_as_the_reader():
    """records.meal_size_of is size_meals' rule; usual_meal_grams is the median of the meals before
    a moment (the What-if's carbohydrate field), None where the data has no grams."""
    events = size_meals(meal_events((60, "2024-01-01 08:00"), (30, "2024-01-01 12:00"), (90, "2024-01-01 19:00")),
                        Records()).assign(kind="meal")
    assert usual_meal_grams(events, pd.Timestamp("2024-01-01 19:00")) == 45.0  # 60 and 30, not the 19:00 meal
    assert usual_meal_grams(events, pd.Timestamp("2024-01-01 08:00")) is None  # nothing earlier
    assert usual_meal_grams(events.drop(columns="carbs_g"), pd.Timestamp("2024-01-02")) is None  # AIM94: no grams
    assert [meal_size_of(g, 45.0) for g in (29.9, 30.1, 67.4, 67.6)] == ["less", "typical", "typical", "more"]
    assert meal_size_of(500, None) == "typical" and meal_size_of(500, 0.0) == "typical"
    # the reader's own sizing of the 19:00 meal is the rule at its moment
    assert events["code"].iloc[2] == MEAL_CODES[meal_size_of(90, usual_meal_grams(events, pd.Timestamp("2024-01-01 19:00")))]


@pytest.mark.parametrize("minutes, level, code", [
    (None, "", 69), (10, "", 71), (19.9, "", 71), (20, "", 69), (59, "", 69), (60, "", 70), (5, "more", 70),
    (120, "less", 71)])
def test_exercise_is_its_intensity_else_its_duration(minutes, level, code):
    assert exercise_code(minutes, level)[0] == code


def test_patients_are_the_numbers_in_their_names_when_those_tell_them_apart():
    assert patient_ids(["HUPA0001P", "HUPA0027P"]) == {"HUPA0001P": 1, "HUPA0027P": 27}
    assert patient_ids(["alice", "bob", "p7"]) == {"alice": 1, "bob": 2, "p7": 3}
    assert patient_ids(["559-training", "559-testing"]) == {"559-testing": 1, "559-training": 2}


@pytest.mark.parametrize("text, clock, offset", [
    ("2024-03-31T01:55:00.000Z", datetime(2024, 3, 31, 1, 55), 0),
    ("2024-03-31T01:55:00+02:00", datetime(2024, 3, 31, 1, 55), 120),
    ("2015-08-27T08:22:11.000-0700", datetime(2015, 8, 27, 8, 22, 11), -420),
    ("2024-03-31 01:55", datetime(2024, 3, 31, 1, 55), None)])
def test_iso_times_give_their_clock_time_and_offset(text, clock, offset):
    assert iso_time(text) == (clock, offset)


@pytest.mark.parametrize("value, reason", [
    ("2024-03-31T25:00:00Z", "impossible_date"), ("2024-03-31T01:00:00+17:00", "bad_offset"),
    ("31/03/2024", "bad_date"), (20240331, "bad_date"), ("1979-12-31T23:59:59Z", "impossible_date")])
def test_times_that_are_not_rejected_with_their_reason(value, reason):
    with pytest.raises(Reject, match=reason):
        iso_time(value)


@pytest.mark.parametrize("value, expected", [(3, 3.0), (2.5, 2.5), ("0.35", 0.35), (" 7 ", 7.0)])
def test_numbers_are_json_numbers_or_plain_decimals(value, expected):
    assert number(value) == expected


@pytest.mark.parametrize("value, reason", [
    (True, "non_numeric_value"), ("1e5", "non_numeric_value"), (float("inf"), "non_numeric_value"),
    ("\u0665", "non_numeric_value"), (10**20, "non_numeric_value"), ([1], "non_numeric_value"), (None, "missing_field"),
    ("", "missing_field")])
def test_anything_else_is_not_a_number(value, reason):
    with pytest.raises(Reject, match=reason):
        number(value)
