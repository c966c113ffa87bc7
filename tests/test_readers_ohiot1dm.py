"""The OhioT1DM reader on fixtures written from the data set's documentation (Marling and Bunescu
2020: <patient id>, glucose_level, finger_stick, basal, temp_basal, bolus type/dose, meal carbs,
exercise intensity/duration; ts dd-mm-yyyy HH:MM:SS): units, local times, duplicates, order,
broken events, empty and foreign files, every bolus unit once, and generated input."""
from __future__ import annotations

import random
from xml.sax.saxutils import quoteattr

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from insulin_core.data.readers.ohiot1dm import OhioT1DMReader

from .readers_contract import bolus_total, check_result

READER = OhioT1DMReader()
ELEMENTS = ("glucose_level", "finger_stick", "basal", "temp_basal", "bolus", "meal", "sleep", "work", "stressors",
            "hypo_event", "illness", "exercise", "basis_heart_rate", "basis_gsr", "basis_skin_temperature",
            "basis_air_temperature", "basis_steps", "basis_sleep", "acceleration")


def xml(events: dict[str, list[dict]], patient: str = "559") -> bytes:
    """A file as the data set writes one: every element present, each holding its <event>s."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f'<patient id="{patient}" weight="99" insulin_type="Novalog">']
    for tag in dict.fromkeys((*ELEMENTS, *events)):
        lines.append(f"\t<{tag}>")
        lines += ["\t\t<event " + " ".join(f"{k}={quoteattr(str(v))}" for k, v in e.items()) + "/>"
                  for e in events.get(tag, [])]
        lines.append(f"\t</{tag}>")
    return ("\n".join(lines + ["</patient>"]) + "\n").encode()


def ts(hhmm: str, day: str = "07-12-2021") -> str:
    return f"{day} {hhmm}:00"


def day() -> dict[str, list[dict]]:
    """07:00-09:30 of one patient: 10.5 U of bolus in four records (a dual bolus is two)."""
    return {
        "glucose_level": [{"ts": ts(f"{7 + m // 60:02d}:{m % 60:02d}"), "value": 120 + m // 5} for m in range(0, 120, 5)],
        "finger_stick": [{"ts": ts("07:28"), "value": 131}, {"ts": ts("09:05"), "value": 98}],
        "basal": [{"ts": ts("07:00"), "value": 1.0}, {"ts": ts("08:30"), "value": 1.2}],
        "temp_basal": [{"ts_begin": ts("09:00"), "ts_end": ts("09:30"), "value": 0.0}],
        "bolus": [
            {"ts_begin": ts("07:30"), "ts_end": ts("07:30"), "type": "normal", "dose": 5.0, "bwz_carb_input": 50},
            {"ts_begin": ts("08:00"), "ts_end": ts("08:00"), "type": "normal dual", "dose": 2.0, "bwz_carb_input": 40},
            {"ts_begin": ts("08:00"), "ts_end": ts("09:00"), "type": "square dual", "dose": 2.0, "bwz_carb_input": 40},
            {"ts_begin": ts("08:40"), "ts_end": ts("09:40"), "type": "square", "dose": 1.5},
        ],
        "meal": [{"ts": ts("07:32"), "type": "Breakfast", "carbs": 50}, {"ts": ts("08:02"), "type": "Snack", "carbs": 40},
                 {"ts": ts("08:45"), "type": "Snack", "carbs": 15}],
        "exercise": [{"ts": ts("09:10"), "intensity": 8, "type": "", "duration": 45, "competitive": ""},
                     {"ts": ts("09:20"), "intensity": "", "type": "", "duration": 10, "competitive": ""}],
        "hypo_event": [{"ts": ts("09:25")}],
        "sleep": [{"ts_begin": ts("23:00", "06-12-2021"), "ts_end": ts("06:30"), "quality": 2}],
        "basis_heart_rate": [{"ts": ts("07:00"), "value": 71}, {"ts": ts("07:05"), "value": 73}],
    }


BOLUS_UNITS = 5.0 + 2.0 + 2.0 + 1.5


def read(files: dict[str, bytes]):
    result = READER.read(files, "test")
    check_result(result, READER)
    return result


GOOD = read({"559-ws-training.xml": xml(day())})


def with_event(tag: str, event: dict) -> dict[str, list[dict]]:
    events = day()
    events.setdefault(tag, []).append(event)
    return events


def test_a_documented_morning_becomes_the_event_model():
    result = READER.read({"559-ws-training.xml": xml(day())}, "test")
    check_result(result, READER, downstream=True)
    events, report = result.events, result.report
    assert report.lines == 42 and report.rejected == {"unused_type": 3}  # sleep and the Basis heart rate
    assert set(events["patient_id"]) == {559} and report.record_name == "event"
    by_code = events["code"].value_counts().to_dict()
    assert by_code[48] == 24 and by_code[57] == 2 and by_code[33] == 4 and by_code[65] == 1
    assert events.loc[events["kind"] == "exercise", "detail"].tolist() == ["more", "less"]  # intensity 8; 10 min
    assert events.loc[events["kind"] == "meal", "detail"].tolist() == ["typical", "typical", "less"]
    basal = events[events["code"] == 35]
    # 1.0 U/h 07:00-08:30, 1.2 U/h from 08:30 until the last moment on record (09:30), suspended 09:00-09:30
    assert basal["value"].sum() == pytest.approx(1.0 * 1.5 + 1.2 * 0.5)
    assert basal["timestamp"].dt.strftime("%H:%M").tolist() == ["08:00", "09:00"]


def test_every_bolus_unit_is_counted_once_both_parts_of_a_dual_bolus_the_wizard_carbs_not_again():
    assert bolus_total(GOOD.events) == pytest.approx(BOLUS_UNITS)
    at_eight = GOOD.events[(GOOD.events["code"] == 33) & (GOOD.events["timestamp"] == pd.Timestamp("2021-12-07 08:00"))]
    assert at_eight["record_type"].tolist() == ["bolus/normal dual", "bolus/square dual"]  # equal doses, not duplicates
    assert GOOD.events["carbs_g"].sum() == 105.0  # the meals' grams; bwz_carb_input is not a second meal


def test_glucose_is_mg_dl_and_a_mmol_l_looking_value_is_rejected_not_converted():
    assert GOOD.report.units == {"mg/dL": 26}
    result = read({"559.xml": xml(with_event("finger_stick", {"ts": ts("09:06"), "value": 6.5}))})
    assert result.report.rejected == {"unused_type": 3, "glucose_out_of_range": 1}


def test_local_times_are_kept_across_a_dst_change_and_the_repeated_hour_counts_as_a_conflict():
    readings = [{"ts": ts("01:55", "27-03-2022"), "value": 100}, {"ts": ts("03:00", "27-03-2022"), "value": 101},
                {"ts": ts("01:30", "30-10-2022"), "value": 140}, {"ts": ts("01:30", "30-10-2022"), "value": 150}]
    result = read({"570.xml": xml({"glucose_level": readings}, "570")})
    assert result.events["timestamp"].dt.strftime("%m-%d %H:%M").tolist() == [
        "03-27 01:55", "03-27 03:00", "10-30 01:30", "10-30 01:30"]
    assert result.report.rejected == {} and result.report.conflicts == 1


def test_the_same_event_twice_is_rejected_as_a_duplicate_and_counted():
    events = day()
    events["bolus"].append(dict(events["bolus"][0]))
    events["glucose_level"].insert(3, dict(events["glucose_level"][2]))
    twice = read({"559.xml": xml(events)})
    assert twice.report.rejected == {"unused_type": 3, "duplicate_record": 2}
    pd.testing.assert_frame_equal(twice.events.drop(columns=["file", "line"]), GOOD.events.drop(columns=["file", "line"]))


def test_events_out_of_order_are_sorted_and_none_is_lost():
    events = {tag: random.Random(3).sample(found, len(found)) for tag, found in day().items()}
    shuffled = read({"559-ws-training.xml": xml(events)})
    columns = ["patient_id", "timestamp", "code", "value", "carbs_g", "record_type"]
    assert shuffled.report.accepted == GOOD.report.accepted
    pd.testing.assert_frame_equal(shuffled.events[columns], GOOD.events[columns])


BROKEN = [
    ("glucose_level", {"value": 100}, "missing_field"),
    ("glucose_level", {"ts": "2021-12-07 09:50:00", "value": 100}, "bad_date"),
    ("glucose_level", {"ts": "31-02-2021 09:50:00", "value": 100}, "impossible_date"),
    ("glucose_level", {"ts": ts("09:50"), "value": "1O0"}, "non_numeric_value"),
    ("glucose_level", {"ts": ts("09:50")}, "missing_field"),
    ("bolus", {"ts_begin": ts("09:50"), "ts_end": ts("09:50"), "type": "normal", "dose": -1}, "negative_value"),
    ("bolus", {"ts_begin": ts("09:50"), "ts_end": ts("09:50"), "type": "normal", "dose": 0}, "no_amount"),
    ("bolus", {"ts_begin": ts("09:50"), "ts_end": ts("09:50"), "type": "turbo", "dose": 1}, "unknown_type"),
    ("temp_basal", {"ts_begin": ts("09:50"), "ts_end": ts("09:20"), "value": 0.5}, "bad_duration"),
    ("exercise", {"ts": ts("09:50"), "intensity": 11, "duration": 30}, "bad_intensity"),
    ("meal", {"ts": ts("09:50"), "type": "Lunch"}, "missing_field"),
    ("teleport", {"ts": ts("09:50")}, "unknown_type"),
    ("work", {"ts_begin": ts("09:50"), "ts_end": ts("17:00"), "intensity": 3}, "unused_type"),
]


@pytest.mark.parametrize("tag, event, reason", BROKEN)
def test_each_broken_event_is_rejected_with_its_reason(tag, event, reason):
    result = read({"559.xml": xml(with_event(tag, event))})
    expected = {"unused_type": 3, reason: 1} if reason != "unused_type" else {reason: 4}
    assert result.report.rejected == expected and result.report.accepted == GOOD.report.accepted
    assert reason in READER.reasons
    assert any(e["text"].startswith(f"<{tag}> <event ") for e in result.report.examples[reason])


def test_patients_from_the_id_attribute_training_and_testing_files_are_one_patient():
    result = read({"559-ws-training.xml": xml(day()), "559-ws-testing.xml": xml({"glucose_level": [
        {"ts": ts("10:00", "20-01-2022"), "value": 150}]}), "no-id-588.xml": xml(day(), patient="")})
    assert sorted(result.events["patient_id"].unique()) == [559, 588]
    assert result.report.per_file["559-ws-testing.xml"]["patient_id"] == 559


def test_an_empty_file_another_format_a_dtd_and_broken_xml_are_skipped_and_named():
    bomb = b'<?xml version="1.0"?><!DOCTYPE patient [<!ENTITY a "aaaa">]><patient id="1"><glucose_level>' \
           b'<event ts="07-12-2021 01:17:00" value="&a;"/></glucose_level></patient>'
    files = {"empty.xml": b"", "treatments.json": b'[{"eventType": "Meal Bolus", "insulin": 2}]', "bomb.xml": bomb,
             "cut.xml": xml(day())[:400]}
    result = read(files)
    assert result.report.lines == 0 and result.events.empty and result.report.files == 0
    skipped = "\n".join(result.report.skipped_files)
    assert "empty.xml: an empty file" in skipped and "treatments.json: not a OhioT1DM file" in skipped
    assert "bomb.xml: declares a DTD or entities" in skipped and "cut.xml: not well-formed XML" in skipped


ATTRIBUTES = ("ts", "ts_begin", "ts_end", "value", "dose", "type", "carbs", "intensity", "duration")


@settings(max_examples=25, deadline=None)
@given(changes=st.lists(st.tuples(st.sampled_from(("glucose_level", "bolus", "basal", "temp_basal", "meal", "exercise")),
                                  st.sampled_from(ATTRIBUTES),
                                  st.text(max_size=12) | st.sampled_from(["07-12-2021 25:00:00", "-0", "1e9", "nan"])),
                        max_size=6))
def test_generated_attribute_values_never_make_the_reader_raise_and_the_counts_add_up(changes):
    events = day()
    for tag, attribute, value in changes:
        events[tag][0][attribute] = "".join(c for c in value if c.isprintable())
    result = read({"559.xml": xml(events)})
    assert result.report.lines == 42
