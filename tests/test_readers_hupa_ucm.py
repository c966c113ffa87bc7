"""The HUPA-UCM reader on fixtures written from the data set's description (Data in Brief 2024: the
preprocessed `time;glucose;calories;heart_rate;steps;basal_rate;bolus_volume_delivered;carb_input`
files, a row per 5 minutes, one file per patient): units, local times, duplicates, order, broken
rows, empty and foreign files, every bolus unit once, exercise from steps, and generated input."""
from __future__ import annotations

import random
from datetime import datetime, timedelta

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from insulin_core.data.readers.hupa_ucm import COLUMNS, HupaUcmReader

from .readers_contract import bolus_total, check_result

READER = HupaUcmReader()
START = datetime(2018, 6, 13, 18, 0)


def row(minutes: int, glucose=120.0, steps=10, heart_rate=80, basal_rate=0.8, bolus=0.0, carbs=0.0, calories=4.5,
        start: datetime = START) -> str:
    moment = (start + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S")
    return ";".join(str(v) for v in (moment, glucose, calories, heart_rate, steps, basal_rate, bolus, carbs))


def csv(rows: list[str]) -> bytes:
    return "".join(line + "\n" for line in [";".join(COLUMNS), *rows]).encode("utf-8", "surrogatepass")


def day() -> list[str]:
    """Two hours: 5.5 U of bolus, a 30-minute walk, a 20-minute run, 15 minutes of a racing heart
    with no steps recorded, basal 0.8 U/h."""
    rows = []
    for m in range(0, 120, 5):
        steps = 600 if 30 <= m < 60 else 700 if 80 <= m < 100 else "" if 105 <= m < 120 else 10
        rows.append(row(m, glucose=110 + m / 5, steps=steps, heart_rate=130 if 105 <= m < 120 else 80,
                        bolus=4.0 if m == 0 else 1.5 if m == 60 else 0.0, carbs=45 if m == 0 else 20 if m == 60 else 0))
    return rows


def read(files: dict[str, bytes]):
    result = READER.read(files, "test")
    check_result(result, READER)
    return result


GOOD = read({"HUPA0001P.csv": csv(day())})


def test_a_documented_evening_becomes_the_event_model():
    result = READER.read({"HUPA0001P.csv": csv(day())}, "test")
    check_result(result, READER, downstream=True)
    events, report = result.events, result.report
    assert report.lines == 24 and report.accepted == 24 and report.record_name == "row"
    assert set(events["patient_id"]) == {1} and report.per_file["HUPA0001P.csv"]["patient_id"] == 1
    assert (events["code"] == 48).sum() == 24 and report.units == {"mg/dL": 24}
    assert events.loc[events["kind"] == "meal", "detail"].tolist() == ["typical", "less"]
    exercise = events[events["kind"] == "exercise"]
    # the walk (100-120 steps/min, 30 min) typical, the run (140 steps/min) more, the heart rate's 15 min less,
    # each stamped when it ends
    assert exercise[["detail", "record_type"]].values.tolist() == [["typical", "steps"], ["more", "steps"],
                                                                   ["less", "heart_rate"]]
    assert exercise["timestamp"].dt.strftime("%H:%M").tolist() == ["19:00", "19:40", "20:00"]
    basal = events[events["code"] == 35]
    assert basal["value"].sum() == pytest.approx(0.8 * 2) and basal["timestamp"].dt.strftime("%H:%M").tolist() == [
        "19:00", "20:00"]


def test_every_bolus_unit_is_counted_once():
    assert bolus_total(GOOD.events) == pytest.approx(5.5)


def test_glucose_is_mg_dl_and_a_mmol_l_looking_value_is_rejected_not_converted():
    result = read({"HUPA0001P.csv": csv(day() + [row(120, glucose=6.5)])})
    assert result.report.rejected == {"glucose_out_of_range": 1}


def test_local_times_are_kept_across_a_dst_change_and_the_repeated_hour_counts_as_a_conflict():
    spring = [row(115, start=datetime(2022, 3, 27, 0, 0)), row(180, start=datetime(2022, 3, 27, 0, 0))]
    autumn = [row(90, glucose=140, start=datetime(2022, 10, 30, 0, 0)),
              row(90, glucose=150, start=datetime(2022, 10, 30, 0, 0))]
    result = read({"HUPA0002P.csv": csv(spring + autumn)})
    glucose = result.events[result.events["code"] == 48]
    assert glucose["timestamp"].dt.strftime("%m-%d %H:%M").tolist() == ["03-27 01:55", "03-27 03:00", "10-30 01:30",
                                                                       "10-30 01:30"]
    assert result.report.rejected == {} and result.report.conflicts >= 1


def test_the_same_row_twice_is_rejected_as_a_duplicate_and_counted():
    rows = day()
    twice = read({"HUPA0001P.csv": csv(rows[:5] + [rows[0]] + rows[5:] + [rows[12]])})
    assert twice.report.rejected == {"duplicate_record": 2}
    assert twice.report.examples["duplicate_record"][0] == {"file": "HUPA0001P.csv", "line": 7, "text": rows[0]}
    columns = ["patient_id", "timestamp", "code", "value", "carbs_g", "record_type"]
    pd.testing.assert_frame_equal(twice.events[columns], GOOD.events[columns])


def test_rows_out_of_order_are_sorted_and_none_is_lost():
    shuffled = read({"HUPA0001P.csv": csv(random.Random(2).sample(day(), 24))})
    columns = ["patient_id", "timestamp", "code", "value", "carbs_g", "record_type"]
    assert shuffled.report.accepted == 24
    pd.testing.assert_frame_equal(shuffled.events[columns], GOOD.events[columns])


BROKEN = [
    ("2018-06-13T20:00:00;120;4.5;80;10;0.8;0", "wrong_field_count"),
    ("", "wrong_field_count"),  # a blank line inside the file
    (";120;4.5;80;10;0.8;0;0", "missing_field"),
    ("13/06/2018 20:00;120;4.5;80;10;0.8;0;0", "bad_date"),
    ("2018-02-30T20:00:00;120;4.5;80;10;0.8;0;0", "impossible_date"),
    ("1970-01-01T00:00:00;120;4.5;80;10;0.8;0;0", "impossible_date"),
    ("2018-06-13T20:00:00;abc;4.5;80;10;0.8;0;0", "non_numeric_value"),
    ("2018-06-13T20:00:00;120;4.5;80;10;0,8;0;0", "non_numeric_value"),
    ("2018-06-13T20:00:00;120;4.5;80;10;0.8;-2;0", "negative_value"),
    ("2018-06-13T20:00:00;900;4.5;80;10;0.8;0;0", "glucose_out_of_range"),
]


@pytest.mark.parametrize("line, reason", BROKEN)
def test_each_broken_row_is_rejected_with_its_reason(line, reason):
    rows = day()
    result = read({"HUPA0001P.csv": csv(rows[:10] + [line] + rows[10:])})
    assert result.report.rejected == {reason: 1} and result.report.accepted == 24 and reason in READER.reasons
    assert result.report.examples[reason] == [{"file": "HUPA0001P.csv", "line": 12, "text": line}]


def test_a_row_without_glucose_keeps_its_insulin():
    result = read({"HUPA0001P.csv": csv([row(0, glucose="", bolus=2.0)])})
    assert result.events["code"].tolist() == [33, 35] and result.report.rejected == {}


def test_an_empty_file_a_header_alone_and_other_formats_are_skipped_or_empty():
    files = {"HUPA0003P.csv": b"", "HUPA0004P.csv": csv([]), "data-01": b"06-13-2018\t18:00\t58\t120\n",
             "entries.json": b'[{"type": "sgv", "sgv": 120, "date": 1528912800000}]'}
    result = read(files)
    assert result.report.lines == 0 and result.report.files == 1 and result.events.empty
    skipped = "\n".join(result.report.skipped_files)
    assert "HUPA0003P.csv: an empty file" in skipped
    for name in ("data-01", "entries.json"):
        assert f"{name}: not a HUPA-UCM file" in skipped


CELL = st.text(alphabet=st.characters(blacklist_characters=";\n\r"), max_size=8) | st.sampled_from(
    ["2018-06-13T18:00:00", "2018-06-13 18:05", "1e3", "-0", "0.5", "nan", "120", "9999999999"])


@settings(max_examples=25, deadline=None)
@given(rows=st.lists(st.lists(CELL, min_size=6, max_size=9).map(";".join) | st.sampled_from(day()), max_size=12))
def test_generated_rows_never_make_the_reader_raise_and_the_counts_add_up(rows):
    result = read({"HUPA0001P.csv": csv(rows)})
    assert result.report.lines == len(rows)  # a blank row too is a record (rejected), not dropped
