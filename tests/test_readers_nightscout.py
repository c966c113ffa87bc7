"""The Nightscout reader on fixtures written from the API's documentation (lib/server/swagger.yaml:
Entry, Treatment; API v3: `date` UTC, `utcOffset` minutes): units, offsets, duplicates, order,
broken records, empty and foreign files, every bolus unit once, and generated input."""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from insulin_core.data.codes import MGDL_PER_MMOL
from insulin_core.data.readers.nightscout import NightscoutReader

from .readers_contract import bolus_total, check_result

READER = NightscoutReader()


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def entry(moment: datetime, sgv, offset=60, **fields) -> dict:
    """An sgv entry as GET /api/v1/entries.json returns it (moment in UTC)."""
    return {"_id": f"e{moment:%H%M%S}", "type": "sgv", "sgv": sgv, "direction": "Flat", "device": "xDrip-DexcomG6",
            "date": int(moment.replace(tzinfo=timezone.utc).timestamp() * 1000), "dateString": iso(moment),
            "utcOffset": offset, **fields}


def treatment(kind: str, moment: datetime, offset=60, **fields) -> dict:
    """A treatment as GET /api/v1/treatments.json returns it (moment in UTC)."""
    return {"_id": f"t{kind[:3]}{moment:%H%M%S}", "eventType": kind, "created_at": iso(moment),
            "utcOffset": offset, "enteredBy": "careportal", **fields}


START = datetime(2024, 3, 30, 6, 0)  # UTC; local 07:00 at +60


def day(offset: int = 60) -> tuple[list[dict], list[dict]]:
    """Two hours of CGM every 5 minutes and a documented treatment of each kind; 24.5 U of bolus."""
    entries = [entry(START + timedelta(minutes=5 * i), 110 + 2 * i, offset) for i in range(24)]
    entries.append({**entry(START + timedelta(minutes=7), None, offset), "type": "mbg", "mbg": 118})
    del entries[-1]["sgv"]
    treatments = [
        treatment("Meal Bolus", START + timedelta(minutes=10), offset, insulin=6.5, carbs=60),
        treatment("Correction Bolus", START + timedelta(minutes=40), offset, insulin="1.5"),
        treatment("Snack Bolus", START + timedelta(minutes=70), offset, insulin=1.0, carbs=20),
        treatment("Carb Correction", START + timedelta(minutes=80), offset, carbs=120),
        treatment("Combo Bolus", START + timedelta(minutes=90), offset, insulin=4.5, enteredinsulin=9.0,
                  splitNow=50, splitExt=50, relative=2.25, duration=120, carbs=60),
        treatment("Bolus", START + timedelta(minutes=95), offset, insulin=2.0, type="normal"),
        treatment("SMB", START + timedelta(minutes=100), offset, insulin=0.5, isSMB=True),
        treatment("BG Check", START + timedelta(minutes=30), offset, glucose=125, glucoseType="Finger", units="mg/dl"),
        treatment("Exercise", START + timedelta(minutes=105), offset, duration=45, notes="bike"),
        treatment("Temp Basal", START + timedelta(minutes=15), offset, absolute=0.6, rate=0.6, duration=60),
        treatment("Site Change", START + timedelta(minutes=110), offset),
    ]
    return entries, treatments


BOLUS_UNITS = 6.5 + 1.5 + 1.0 + 9.0 + 2.0 + 0.5


def files_of(entries: list, treatments: list, prefix: str = "") -> dict[str, bytes]:
    return {f"{prefix}entries.json": json.dumps(entries).encode(),
            f"{prefix}treatments.json": json.dumps(treatments).encode()}


def read(entries: list, treatments: list):
    result = READER.read(files_of(entries, treatments), "test")
    check_result(result, READER)
    return result


def test_a_documented_day_becomes_the_event_model():
    result = READER.read(files_of(*day()), "test")
    check_result(result, READER, downstream=True)
    events, report = result.events, result.report
    assert report.lines == 36 and report.rejected == {"unused_type": 1}  # the Site Change
    assert events["patient_id"].unique().tolist() == [1] and events["timestamp"].min() == pd.Timestamp("2024-03-30 07:00")
    by_code = events["code"].value_counts().to_dict()
    assert by_code[48] == 24 and by_code[57] == 2 and by_code[33] == 6 and by_code[69] == 1
    meals = events[events["kind"] == "meal"].set_index("record_type")
    assert meals["carbs_g"].to_dict() == {"Meal Bolus": 60.0, "Snack Bolus": 20.0, "Carb Correction": 120.0,
                                          "Combo Bolus": 60.0}
    # sized against the patient's earlier meals: 60 first (typical), 20 < 2/3 of 60, 120 > 1.5 x 40, 60 = median
    assert meals["detail"].to_dict() == {"Meal Bolus": "typical", "Snack Bolus": "less", "Carb Correction": "more",
                                         "Combo Bolus": "typical"}
    basal = events[events["code"] == 35]
    assert basal["value"].sum() == pytest.approx(0.6) and (basal["unit_in"] == "U/h").all()
    assert basal["timestamp"].tolist() == [pd.Timestamp("2024-03-30 08:00"), pd.Timestamp("2024-03-30 08:15")]


def test_every_bolus_unit_is_counted_once_the_combo_bolus_extended_part_included():
    result = READER.read(files_of(*day()), "test")
    assert bolus_total(result.events) == pytest.approx(BOLUS_UNITS)
    combo = result.events[(result.events["record_type"] == "Combo Bolus") & (result.events["code"] == 33)]
    assert combo["value"].tolist() == [9.0]  # now 4.5 + extended 2.25 U/h x 2 h, not 4.5 and not 13.5
    without_total = {k: v for k, v in day()[1][4].items() if k != "enteredinsulin"}
    assert bolus_total(read([], [without_total]).events) == pytest.approx(9.0)


def test_mg_dl_and_mmol_l_per_record_and_counted():
    entries = [entry(START, 126), entry(START + timedelta(minutes=5), 7.0, units="mmol")]
    treatments = [treatment("BG Check", START, glucose=7.2, glucoseType="Finger", units="mmol"),
                  treatment("BG Check", START + timedelta(minutes=1), glucose="130", glucoseType="Sensor")]
    events = read(entries, treatments).events.set_index(["record_type", "line", "file"])
    values = events["value"].round(4).to_dict()
    assert values[("sgv", 1, "entries.json")] == 126.0
    assert values[("sgv", 2, "entries.json")] == round(7.0 * MGDL_PER_MMOL, 4)
    assert values[("BG Check", 1, "treatments.json")] == round(7.2 * MGDL_PER_MMOL, 4)
    assert events.loc[("BG Check", 2, "treatments.json"), "code"] == 48  # glucoseType Sensor
    report = read(entries, treatments).report
    assert report.units == {"mg/dL": 2, "mmol/L": 2}


def test_local_time_follows_each_record_s_offset_across_a_dst_change():
    spring = [entry(datetime(2024, 3, 31, 0, 55), 100, 60), entry(datetime(2024, 3, 31, 1, 0), 101, 120)]
    # the autumn hour twice: 00:30 UTC at +120 and 01:30 UTC at +60 are both 02:30 local
    autumn = [entry(datetime(2024, 10, 27, 0, 30), 140, 120), entry(datetime(2024, 10, 27, 1, 30), 140, 60)]
    result = read(spring + autumn, [])
    assert result.events["timestamp"].dt.strftime("%m-%d %H:%M").tolist() == [
        "03-31 01:55", "03-31 03:00", "10-27 02:30", "10-27 02:30"]
    assert result.report.rejected == {} and result.report.conflicts == 1  # two readings, one local minute


def test_an_offset_in_the_time_string_and_no_offset_at_all():
    written = {"type": "sgv", "sgv": 100, "dateString": "2024-03-30T08:00:00.000+02:00"}
    epoch_beside_string = {"type": "sgv", "sgv": 101, "date": 1711785600000, "dateString": "2024-03-30T10:00:00+02:00"}
    utc_only = treatment("BG Check", datetime(2024, 3, 30, 9, 0), glucose=99)
    del utc_only["utcOffset"]
    result = read([written, epoch_beside_string], [utc_only])
    assert result.events["timestamp"].dt.strftime("%H:%M").tolist() == ["08:00", "09:00", "10:00"]
    assert result.report.assumed == {"no UTC offset on the record: read as UTC": 1}


def test_the_same_record_twice_is_rejected_as_a_duplicate_and_counted():
    entries, treatments = day()
    again = [dict(entries[3]), {**treatments[0], "_id": "another-upload"}]
    once = read(entries, treatments)
    twice = read(entries + [again[0]], treatments + [again[1]])
    assert twice.report.rejected == {"unused_type": 1, "duplicate_record": 2}
    assert twice.report.examples["duplicate_record"][0] == {
        "file": "entries.json", "line": 26, "text": json.dumps(again[0], separators=(",", ":"))}
    pd.testing.assert_frame_equal(once.events, twice.events)


def test_records_out_of_order_are_sorted_and_none_is_lost():
    entries, treatments = day()
    shuffled = READER.read(files_of(random.Random(4).sample(entries, len(entries)),
                                    random.Random(5).sample(treatments, len(treatments))), "test")
    ordered = READER.read(files_of(entries, treatments), "test")
    check_result(shuffled, READER)
    assert shuffled.report.accepted == ordered.report.accepted
    columns = ["patient_id", "timestamp", "code", "value", "carbs_g", "record_type"]
    pd.testing.assert_frame_equal(shuffled.events[columns], ordered.events[columns])


AT = datetime(2024, 3, 30, 12, 0)
BROKEN = [
    ({"type": "sgv", "date": 1711800000000}, "missing_field"),
    ({"type": "sgv", "sgv": 120}, "missing_field"),
    ({"type": "sgv", "sgv": "12O", "date": 1711800000000}, "non_numeric_value"),
    ({"type": "sgv", "sgv": True, "date": 1711800000000}, "non_numeric_value"),
    ({"type": "sgv", "sgv": 120, "date": "noon"}, "non_numeric_value"),
    ({"type": "sgv", "sgv": 120, "dateString": "2024-02-30T10:00:00Z"}, "impossible_date"),
    ({"type": "sgv", "sgv": 120, "date": 0}, "impossible_date"),
    ({"type": "sgv", "sgv": 120, "date": 1e30}, "impossible_date"),
    ({"type": "sgv", "sgv": 120, "dateString": "Sat Mar 30 2024 12:00"}, "bad_date"),
    ({"type": "sgv", "sgv": 120, "date": 1711800000000, "utcOffset": "CET"}, "bad_offset"),
    ({"type": "sgv", "sgv": 120, "date": 1711800000000, "utcOffset": 6000}, "bad_offset"),
    ({"type": "sgv", "sgv": 120, "date": 1711800000000, "units": "furlongs"}, "unknown_unit"),
    ({"type": "sgv", "sgv": 5, "date": 1711800000000}, "glucose_out_of_range"),  # a Dexcom error code
    ({"type": "cal", "slope": 900, "date": 1711800000000}, "unused_type"),
    ({"type": "wind", "date": 1711800000000}, "unknown_type"),
    ([1, 2], "not_an_object"),
    (treatment("Meal Bolus", AT, insulin=-2), "negative_value"),
    (treatment("Meal Bolus", AT, insulin=0, carbs=0), "no_amount"),
    (treatment("Carb Correction", AT), "no_amount"),
    (treatment("Temp Basal", AT, percent=-20, duration=30), "needs_profile"),
    (treatment("Temp Basal", AT, absolute=1.0), "bad_duration"),
    (treatment("Temp Basal", AT, absolute=1.0, duration=60 * 24 * 6), "bad_duration"),
    (treatment("Temp Basal", AT, absolute=1.0, duration=1e300), "bad_duration"),
    (treatment("Temp Basal", AT, absolute=1.0, duration=0), "no_amount"),
    (treatment("BG Check", AT, glucose="high"), "non_numeric_value"),
    ({**treatment("Correction Bolus", AT, insulin=1), "created_at": "2024-13-01T00:00:00Z"}, "impossible_date"),
    (treatment("Hovercraft Landing", AT), "unknown_type"),
    (treatment("Note", AT, notes="x"), "unused_type"),
    ({"eventType": None, "created_at": iso(AT)}, "missing_field"),
]


@pytest.mark.parametrize("record, reason", BROKEN)
def test_each_broken_record_is_rejected_with_its_reason(record, reason):
    entries, treatments = day()
    good = read(entries, treatments).report.accepted
    result = read(entries + [record], treatments)
    assert result.report.rejected == {"unused_type": 1, reason: 1} if reason != "unused_type" else {reason: 2}
    assert result.report.accepted == good
    assert reason in READER.reasons
    where = [(e["file"], e["line"]) for e in result.report.examples[reason]]
    assert ("entries.json", len(entries) + 1) in where


def test_an_empty_file_another_format_and_broken_json_are_skipped_and_named():
    tidepool = json.dumps([{"type": "cbg", "value": 6.1, "units": "mmol/L", "time": "2024-03-30T12:00:00Z"}])
    files = {"entries.json": b"", "export.json": tidepool.encode(), "data-01": b"03-30-2024\t12:00\t58\t100\n",
             "treatments.json": b'[{"eventType": "Meal Bolus", "insulin": 2', "empty.json": b"[]"}
    result = READER.read(files, "test")
    check_result(result, READER)
    assert result.report.lines == 0 and result.events.empty and result.report.files == 0
    skipped = "\n".join(result.report.skipped_files)
    assert "entries.json: an empty file" in skipped and "treatments.json: not JSON" in skipped
    for name in ("export.json", "data-01", "empty.json"):
        assert f"{name}: not a Nightscout file" in skipped
    assert "none accepted" in result.report.unusable_reason()


def test_exports_are_grouped_into_patients_by_file_name():
    entries, treatments = day()
    files = {**files_of(entries, treatments, "p2-"), **files_of(entries[:3], [], "p3-")}
    result = READER.read(files, "test")
    check_result(result, READER)
    assert sorted(result.events["patient_id"].unique()) == [2, 3]
    assert result.report.per_file["p3-entries.json"]["patient_id"] == 3


# ---- generated input: no record, however odd, makes the reader raise, and the counts add up ------
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)
KEYS = ("type", "sgv", "mbg", "date", "dateString", "utcOffset", "units", "eventType", "created_at", "insulin",
        "carbs", "glucose", "glucoseType", "duration", "absolute", "rate", "percent", "enteredinsulin", "relative")


@st.composite
def mutated_records(draw) -> list:
    records = [dict(r) for r in draw(st.sampled_from([day()[0][:4], day()[1]]))]
    for _ in range(draw(st.integers(0, 6))):
        record = draw(st.sampled_from(records))
        record[draw(st.sampled_from(KEYS))] = draw(JSON | st.sampled_from(
            ["2024-03-30T10:00:00Z", "Meal Bolus", "Temp Basal", "BG Check", "sgv", "mmol", 1e400, -1, 0, "7.5"]))
    return records + draw(st.lists(JSON, max_size=3))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=mutated_records())
def test_generated_records_never_make_the_reader_raise_and_the_counts_add_up(records):
    text = json.dumps(records)
    result = READER.read({"treatments.json": text.encode(), "entries.json": ("[" + text[1:]).encode()}, "test")
    check_result(result, READER)
    assert result.report.lines == 2 * len(records)


@settings(max_examples=20, deadline=None)
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(lambda t: ('[{"eventType": ' + t).encode()))
def test_generated_bytes_never_make_the_reader_raise(data):
    result = READER.read({"treatments.json": data}, "test")
    check_result(result, READER)
