"""The Tidepool reader on fixtures written from the data-model documentation (device-data/types:
cbg, smbg, bolus normal / square / dual/square / automated, wizard, basal, food, physicalActivity,
insulin; `time` UTC + `timezoneOffset` minutes): units, offsets, duplicates, order, broken records,
empty and foreign files, every bolus unit once, and generated input."""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from insulin_core.data.codes import MGDL_PER_MMOL
from insulin_core.data.readers.tidepool import TidepoolReader

from .readers_contract import bolus_total, check_result

READER = TidepoolReader()
START = datetime(2018, 5, 14, 8, 0)  # UTC; 18:00 local at +600, as the documentation's examples


def datum(kind: str, moment: datetime, offset: int = 600, **fields) -> dict:
    """A data object as the documentation's client examples write it (moment in UTC)."""
    return {"type": kind, "time": moment.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "timezoneOffset": offset,
            "deviceTime": (moment + timedelta(minutes=offset)).strftime("%Y-%m-%dT%H:%M:%S"),
            "clockDriftOffset": 0, "conversionOffset": 0, "deviceId": "DevId0987654321",
            "id": f"{kind}{moment:%H%M%S}", "uploadId": "SampleUploadId", **fields}


def at(minutes: int) -> datetime:
    return START + timedelta(minutes=minutes)


def day(offset: int = 600) -> list[dict]:
    """Two hours of a pump and CGM user: 15.35 U of rapid-acting insulin in five records."""
    return [
        *(datum("cbg", at(5 * i), offset, units="mmol/L", value=round(6.0 + 0.1 * i, 4)) for i in range(24)),
        datum("smbg", at(2), offset, units="mmol/L", value=6.2, subType="manual"),
        datum("smbg", at(62), offset, units="mg/dL", value=131),
        datum("wizard", at(10), offset, carbInput=45, insulinCarbRatio=10, units="mmol/L", bgInput=6.2,
              bolus="bolus081000", recommended={"carb": 4.5, "correction": 0, "net": 4.5}),
        datum("bolus", at(10), offset, subType="normal", normal=4.5),
        datum("bolus", at(30), offset, subType="square", extended=2.0, duration=3600000),
        datum("bolus", at(50), offset, subType="dual/square", normal=3.0, extended=2.5, expectedExtended=3.0,
              duration=1800000, expectedDuration=3600000),
        datum("bolus", at(70), offset, subType="automated", normal=0.35, expectedNormal=0.4),
        datum("insulin", at(80), offset, dose={"total": 3.0, "units": "Units"},
              formulation={"simple": {"actingType": "rapid"}}),
        datum("insulin", at(85), offset, dose={"total": 14.0, "units": "Units"},
              formulation={"simple": {"actingType": "long"}}),
        datum("basal", at(0), offset, deliveryType="scheduled", rate=0.8, duration=7200000, scheduleName="Standard"),
        datum("basal", at(120), offset, deliveryType="temp", rate=1.2, duration=1800000, percent=1.5),
        datum("basal", at(150), offset, deliveryType="suspend", duration=1800000),
        datum("food", at(95), offset, nutrition={"carbohydrate": {"net": 25, "units": "grams"}}),
        datum("physicalActivity", at(100), offset, activityType="rugby", reportedIntensity="high",
              duration={"value": 80, "units": "minutes"}),
        datum("physicalActivity", at(110), offset, duration={"value": 0.25, "units": "hours"}),
        datum("upload", at(115), offset, deviceManufacturers=["Medtronic"]),
    ]


RAPID_UNITS = 4.5 + 2.0 + 3.0 + 2.5 + 0.35 + 3.0


def read(records: list, name: str = "export.json"):
    result = READER.read({name: json.dumps(records).encode()}, "test")
    check_result(result, READER)
    return result


GOOD = read(day())


def test_a_documented_day_becomes_the_event_model():
    result = READER.read({"tidepool-17.json": json.dumps(day()).encode()}, "test")
    check_result(result, READER, downstream=True)
    events, report = result.events, result.report
    assert report.rejected == {"unused_type": 1} and set(events["patient_id"]) == {17}
    assert events["timestamp"].min() == pd.Timestamp("2018-05-14 18:00")  # 08:00 UTC + 600 min
    by_code = events["code"].value_counts().to_dict()
    assert by_code[48] == 24 and by_code[57] == 2 and by_code[33] == 5
    assert events.loc[events["record_type"] == "insulin/long", ["code", "value"]].values.tolist() == [[35, 14.0]]
    exercise = events[events["kind"] == "exercise"].set_index("unit_in")["detail"].to_dict()
    assert exercise == {"": "more", "min": "less"}  # reportedIntensity high; 15 minutes
    meals = events[events["kind"] == "meal"]
    assert meals["carbs_g"].tolist() == [45.0, 25.0] and meals["detail"].tolist() == ["typical", "less"]
    pump = events[(events["code"] == 35) & (events["unit_in"] == "U/h")]
    assert pump["value"].sum() == pytest.approx(0.8 * 2 + 1.2 * 0.5)  # the suspension delivers nothing
    assert pump["timestamp"].dt.strftime("%H:%M").tolist() == ["19:00", "20:00", "20:30"]


def test_every_bolus_unit_is_counted_once_extended_parts_included_the_wizard_s_bolus_not_again():
    assert bolus_total(GOOD.events) == pytest.approx(RAPID_UNITS)
    dual = GOOD.events[GOOD.events["record_type"] == "bolus/dual/square"]
    assert dual["value"].tolist() == [5.5]  # delivered normal 3 + extended 2.5, not the expected 3


def test_mmol_l_and_mg_dl_per_record_and_counted():
    events = GOOD.events
    glucose = events[events["kind"] == "glucose"].set_index("line")["value"]
    assert glucose[1] == pytest.approx(6.0 * MGDL_PER_MMOL) and glucose[26] == 131.0
    assert GOOD.report.units == {"mmol/L": 25, "mg/dL": 1}
    assert read([datum("cbg", START, value=101, units="mg/dl")]).events["value"].tolist() == [101.0]


def test_local_time_is_time_plus_timezone_offset_across_a_dst_change():
    spring = [datum("cbg", datetime(2024, 3, 31, 0, 55), 60, units="mg/dL", value=100),
              datum("cbg", datetime(2024, 3, 31, 1, 0), 120, units="mg/dL", value=101)]
    autumn = [datum("cbg", datetime(2024, 10, 27, 0, 30), 120, units="mg/dL", value=140),
              datum("cbg", datetime(2024, 10, 27, 1, 30), 60, units="mg/dL", value=140)]
    result = read(spring + autumn)
    assert result.events["timestamp"].dt.strftime("%m-%d %H:%M").tolist() == [
        "03-31 01:55", "03-31 03:00", "10-27 02:30", "10-27 02:30"]
    assert result.report.rejected == {} and result.report.conflicts == 1


def test_without_timezone_offset_the_device_time_then_utc():
    device_only = {k: v for k, v in datum("cbg", START, 600, units="mg/dL", value=100).items() if k != "timezoneOffset"}
    neither = {k: v for k, v in datum("cbg", START, 600, units="mg/dL", value=101).items()
               if k not in ("timezoneOffset", "deviceTime")}
    result = read([device_only, neither])
    assert result.events["timestamp"].dt.strftime("%H:%M").tolist() == ["08:00", "18:00"]
    assert result.report.assumed == {"no timezoneOffset: read at its deviceTime": 1,
                                     "no UTC offset on the record: read as UTC": 1}


def test_the_same_record_twice_is_rejected_as_a_duplicate_and_counted():
    records = day()
    twice = read(records + [dict(records[27], id="reuploaded"), dict(records[33])])
    assert twice.report.rejected == {"unused_type": 1, "duplicate_record": 2}
    pd.testing.assert_frame_equal(twice.events, GOOD.events)


def test_records_out_of_order_are_sorted_and_none_is_lost():
    shuffled = read(random.Random(7).sample(day(), len(day())))
    columns = ["patient_id", "timestamp", "code", "value", "carbs_g", "record_type"]
    assert shuffled.report.accepted == GOOD.report.accepted
    pd.testing.assert_frame_equal(shuffled.events[columns], GOOD.events[columns])


BROKEN = [
    (datum("cbg", START, value=6.1), "missing_field"),  # no units
    (datum("cbg", START, units="mmol/L"), "missing_field"),
    ({k: v for k, v in datum("cbg", START, units="mmol/L", value=6).items() if k != "time"}, "missing_field"),
    (datum("cbg", START, units="mmol/L", value="6,1"), "non_numeric_value"),
    (datum("cbg", START, units="mmol/L", value=float("nan")), "non_numeric_value"),
    (dict(datum("cbg", START, units="mmol/L", value=6), time="2018-02-30T08:00:00Z"), "impossible_date"),
    (dict(datum("cbg", START, units="mmol/L", value=6), time="1970-01-01T00:00:00Z"), "impossible_date"),
    (dict(datum("cbg", START, units="mmol/L", value=6), time="14/05/2018 08:00"), "bad_date"),
    (datum("cbg", START, 6000, units="mmol/L", value=6), "bad_offset"),
    (datum("cbg", START, units="mol/L", value=6), "unknown_unit"),
    (datum("cbg", START, units="mmol/L", value=40), "glucose_out_of_range"),  # 720 mg/dL
    (datum("bolus", START, subType="normal", normal=-1), "negative_value"),
    (datum("bolus", START, subType="normal", normal=0, expectedNormal=2), "no_amount"),
    (datum("bolus", START, subType="megabolus", normal=1), "unknown_type"),
    (datum("bolus", START, normal=1), "missing_field"),
    (datum("basal", START, deliveryType="scheduled", rate=0.8), "bad_duration"),
    (datum("basal", START, deliveryType="scheduled", rate=0.8, duration=6 * 86400000), "bad_duration"),
    (datum("basal", START, deliveryType="scheduled", rate=0.8, duration=1e300), "bad_duration"),
    (datum("wizard", START, bolus="x"), "no_amount"),
    (datum("food", START, nutrition={"carbohydrate": {"net": 2, "units": "exchanges"}}), "unknown_unit"),
    (datum("food", START, nutrition={}), "missing_field"),
    (datum("insulin", START, dose={"total": 4}, formulation={"simple": {"actingType": "inhaled"}}), "unknown_insulin"),
    (datum("physicalActivity", START, duration={"value": 3, "units": "fortnights"}), "unknown_unit"),
    (datum("pumpSettings", START, activeSchedule="Standard"), "unused_type"),
    (datum("teleportation", START), "unknown_type"),
    ({"time": "2018-05-14T08:00:00Z"}, "missing_field"),
    ("cbg", "not_an_object"),
]


@pytest.mark.parametrize("record, reason", BROKEN)
def test_each_broken_record_is_rejected_with_its_reason(record, reason):
    result = read(day() + [record])
    assert result.report.rejected == ({"unused_type": 1, reason: 1} if reason != "unused_type" else {reason: 2})
    assert result.report.accepted == GOOD.report.accepted and reason in READER.reasons
    assert ("export.json", len(day()) + 1) in [(e["file"], e["line"]) for e in result.report.examples[reason]]


def test_an_empty_file_another_format_and_broken_json_are_skipped_and_named():
    nightscout = json.dumps([{"eventType": "Meal Bolus", "insulin": 2, "created_at": "2024-03-30T12:00:00Z"}])
    files = {"a.json": b"", "entries.json": nightscout.encode(), "HUPA0001P.csv": b"time;glucose\n",
             "b.json": b'[{"type": "cbg", "value": ', "c.json": b"\xff\xfe" + '[{"type":"cbg"}]'.encode("utf-16-le")}
    result = READER.read(files, "test")
    check_result(result, READER)
    assert result.report.lines == 0 and result.events.empty
    skipped = "\n".join(result.report.skipped_files)
    assert "a.json: an empty file" in skipped and "b.json: not JSON" in skipped and "c.json: UTF-16" in skipped
    for name in ("entries.json", "HUPA0001P.csv"):
        assert f"{name}: not a Tidepool file" in skipped


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)
KEYS = ("type", "subType", "time", "timezoneOffset", "deviceTime", "value", "units", "normal", "extended", "rate",
        "duration", "deliveryType", "carbInput", "nutrition", "dose", "formulation", "reportedIntensity")


@st.composite
def mutated_records(draw) -> list:
    records = [dict(r) for r in draw(st.sampled_from([day()[20:], day()[:3]]))]
    for _ in range(draw(st.integers(0, 6))):
        record = draw(st.sampled_from(records))
        record[draw(st.sampled_from(KEYS))] = draw(JSON | st.sampled_from(
            ["bolus", "basal", "cbg", "mmol/L", "dual/square", "2018-05-14T08:00:00Z", {"simple": {"actingType": "long"}},
             {"carbohydrate": {"net": "7"}}, {"value": 1, "units": "hours"}, 1e300, -5, 0]))
    return records + draw(st.lists(JSON, max_size=3))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=mutated_records())
def test_generated_records_never_make_the_reader_raise_and_the_counts_add_up(records):
    result = read(records)
    assert result.report.lines == (len(records) if result.report.files else 0)  # no type named: not Tidepool
