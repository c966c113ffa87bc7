"""The modern synthetic cohort (demo_modern.py), read back through the Nightscout reader as any
export would be: only the planted records rejected, every bolus the patient's known rule applied to
the carbs and glucose the files record at that moment, glucose that answers meals, corrections and
exercise, mmol/L and UTC offsets read right, same seed same bytes."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from insulin_core.data.codes import MGDL_PER_MMOL
from insulin_core.data.demo_modern import (MODERN_DEMO_LABEL, ModernDemoConfig, modern_files, planted_faults,
                                      pump_patients, write_modern_cohort)
from insulin_core.data.demo_modern_regimens import bolus_rule
from insulin_core.data.readers.detect import detect, read_files
from insulin_core.data.readers.nightscout import NightscoutReader

from .readers_contract import check_result

CFG = ModernDemoConfig()  # the default size: what a fresh clone gets
BOLUS_RECORDS = ("Meal Bolus", "Snack Bolus", "Correction Bolus")


@pytest.fixture(scope="module")
def cohort():
    files = modern_files(CFG)
    return files, read_files(files, MODERN_DEMO_LABEL)


def cgm_at(events: pd.DataFrame, patient: int, moments: pd.Series, within_min: float = 10) -> np.ndarray:
    """The latest CGM reading at or before each moment (NaN when none within `within_min`)."""
    cgm = events[(events["patient_id"] == patient) & (events["code"] == 48)]
    times, values = cgm["timestamp"].to_numpy(), cgm["value"].to_numpy()
    at = moments.to_numpy(dtype="datetime64[us]")
    i = np.searchsorted(times, at, side="right") - 1
    found = (i >= 0) & (at - times[np.maximum(i, 0)] <= np.timedelta64(int(within_min * 60), "s"))
    return np.where(found, values[np.maximum(i, 0)], np.nan)


def change_after(events: pd.DataFrame, rows: pd.DataFrame, minutes: float) -> np.ndarray:
    """CGM `minutes` after each row's moment minus CGM at it (NaN where the sensor was silent)."""
    out = [cgm_at(events, p, group["timestamp"] + pd.Timedelta(minutes=minutes)) - cgm_at(events, p, group["timestamp"])
           for p, group in rows.groupby("patient_id")]
    changes = np.concatenate(out) if out else np.array([])
    return changes[~np.isnan(changes)]


def test_the_files_are_nightscout_and_only_the_planted_records_are_rejected(cohort):
    files, result = cohort
    reader = detect(files).reader
    assert isinstance(reader, NightscoutReader)
    check_result(result, reader)
    report, faults = result.report, planted_faults(CFG)
    assert len({reason for _, _, reason in faults}) >= 10  # most of the reader's rejection paths
    assert report.rejected == dict(Counter(reason for _, _, reason in faults))
    assert not report.skipped_files and report.files == 2 * CFG.patients
    per_file = Counter((name, reason) for name, entry in report.per_file.items()
                       for reason, n in entry["rejected"].items() for _ in range(n))
    assert per_file == Counter((name, reason) for name, _, reason in faults)
    planted = {(name, line) for name, line, _ in faults}
    examples = {(e["file"], e["line"]) for shown in report.examples.values() for e in shown}
    assert examples <= planted  # each rejection shown is a planted record, at its place


def test_every_bolus_is_the_patients_rule_on_the_carbs_and_glucose_on_record(cohort):
    """The rule is checked against the files: carbs from the bolus record, glucose a fingerstick at
    that second if one is on record, else the latest CGM reading at or before it."""
    _, result = cohort
    events, patients = result.events, pump_patients(CFG)
    checked = finger = mmol = 0
    for (patient, name, line), record in events[events["record_type"].isin(BOLUS_RECORDS)].groupby(
            ["patient_id", "file", "line"]):
        moment = record["timestamp"].iloc[0]
        given = record.loc[record["code"] == 33, "value"].sum()
        carbs = record["carbs_g"].fillna(0).sum()
        meter = events[(events["patient_id"] == patient) & (events["code"] == 57) & (events["timestamp"] == moment)]
        glucose = meter["value"].iloc[0] if len(meter) else cgm_at(events, patient, record["timestamp"].iloc[:1],
                                                                    within_min=15)[0]
        assert not np.isnan(glucose), (name, line)
        assert given == pytest.approx(bolus_rule(patients[patient], carbs, glucose), abs=1e-9), (name, line)
        checked += (record["code"] == 33).sum()
        finger += len(meter)
        mmol += len(meter) and meter["unit_in"].iloc[0] == "mmol/L"
    assert checked == (events["code"] == 33).sum() > 100  # every bolus in the files, none skipped
    assert finger > 10 and mmol > 3  # boluses decided on a fingerstick, in mmol/L too


def test_rules_round_down_to_the_pump_step_and_take_a_low_off_the_meal():
    p = replace(pump_patients(ModernDemoConfig(patients=1, days=1))[1], carb_ratio=10.0, correction_factor=50.0,
                target=100.0, bolus_step=0.05)
    assert bolus_rule(p, 45, 180) == pytest.approx(4.5 + 1.6)
    assert bolus_rule(p, 45, 70) == pytest.approx(4.5 - 0.6)  # under target: units off the meal part
    assert bolus_rule(p, 0, 60) == 0 and bolus_rule(p, 30, None) == pytest.approx(3.0)
    assert bolus_rule(replace(p, bolus_step=0.5), 47, 100) == pytest.approx(4.5)  # 4.7 down to the step
    with pytest.raises(ValueError, match="carbs_g"):
        bolus_rule(p, -5, 100)


def test_glucose_answers_uncovered_meals_corrections_and_exercise(cohort):
    _, result = cohort
    events = result.events
    uncovered = events[(events["record_type"] == "Carb Correction") & (events["carbs_g"] >= 25)]  # not 15 g rescues
    rise = change_after(events, uncovered, 90)
    assert len(rise) >= 10 and (rise > 0).all() and np.median(rise) > 60
    carbs = events[events["kind"] == "meal"]
    corrections = events[(events["record_type"] == "Correction Bolus") & (events["code"] == 33)]
    no_food = [not ((carbs["patient_id"] == r.patient_id) & (carbs["timestamp"] >= r.timestamp - pd.Timedelta(hours=3))
                    & (carbs["timestamp"] <= r.timestamp + pd.Timedelta(minutes=150))).any()
               for r in corrections.itertuples()]  # no carbs still absorbing or to come
    fall = change_after(events, corrections[no_food], 150)
    assert len(fall) >= 20 and (fall < 0).mean() > 0.9 and np.median(fall) < -40
    exercise = change_after(events, events[events["kind"] == "exercise"], 45)
    assert len(exercise) >= 20 and np.median(exercise) < -10


def test_mmol_patients_glucose_comes_back_in_mg_dl(cohort):
    files, result = cohort
    events, report = result.events, result.report
    mmol_patients = [n for n, p in pump_patients(CFG).items() if p.unit == "mmol/L"]
    assert mmol_patients and report.units["mmol/L"] > 0 and report.units["mg/dL"] > 0
    meters = events[events["code"] == 57]
    in_mmol = meters[meters["unit_in"] == "mmol/L"]
    assert set(in_mmol["patient_id"]) == set(mmol_patients)
    written = sorted(r["glucose"] for n in mmol_patients for r in json.loads(files[f"p{n:02d}-treatments.json"])
                     if r.get("eventType") == "BG Check" and r.get("units") == "mmol" and "glucose" in r)
    assert sorted(in_mmol["value"]) == pytest.approx([g * MGDL_PER_MMOL for g in written])
    gap = np.concatenate([g["value"].to_numpy() - cgm_at(events, p, g["timestamp"])
                          for p, g in in_mmol.groupby("patient_id")])
    assert np.nanmedian(np.abs(gap)) < 25  # on the CGM's mg/dL scale, not 18 times below it


def test_utc_offsets_land_meals_at_the_patients_local_times(cohort):
    files, result = cohort
    events, patients = result.events, pump_patients(CFG)
    planted = {(name, line) for name, line, _ in planted_faults(CFG)}
    assert {p.utc_offset for p in patients.values()} >= {0, -300, 330}
    for number, p in patients.items():
        meals = events[(events["patient_id"] == number) & (events["record_type"] == "Meal Bolus")
                       & (events["kind"] == "meal")]
        local = (meals["timestamp"].dt.hour * 60 + meals["timestamp"].dt.minute + meals["timestamp"].dt.second / 60)
        nearest = np.min(np.abs(local.to_numpy()[:, None] - np.array(p.meal_minutes)[None, :]), axis=1)
        assert len(meals) > 20 and (nearest <= 60.5).all(), number  # each within its meal's hour
        if abs(p.utc_offset) >= 180:  # the file's own clock (UTC) is far from the patient's meals
            name = f"p{number:02d}-treatments.json"
            written = [r["created_at"] for line, r in enumerate(json.loads(files[name]), 1)
                       if r.get("eventType") == "Meal Bolus" and (name, line) not in planted]
            utc = pd.to_datetime(pd.Series(written), format="ISO8601")
            utc_min = (utc.dt.hour * 60 + utc.dt.minute).to_numpy()
            circular = np.abs((utc_min[:, None] - np.array(p.meal_minutes)[None, :] + 720) % 1440 - 720)
            assert not (circular.min(axis=1) <= 60.5).all(), number  # read as UTC, meals would stray
            local_written = (utc + pd.Timedelta(minutes=p.utc_offset)).sort_values().to_numpy(dtype="datetime64[us]")
            assert (np.sort(meals["timestamp"].to_numpy()) == local_written).all()


def test_same_seed_same_bytes_another_seed_other_bytes(tmp_path):
    small = ModernDemoConfig(patients=2, days=3, seed=7)
    first = modern_files(small)
    assert first == modern_files(small)
    assert first != modern_files(replace(small, seed=8))
    paths = write_modern_cohort(tmp_path / "a", small)
    again = write_modern_cohort(tmp_path / "a", small)  # over its own earlier copy: allowed
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in paths]
    assert {p.name: p.read_bytes() for p in paths if p.suffix == ".json"} == first


def test_the_folder_is_labelled_synthetic_and_names_the_planted_records(tmp_path):
    small = ModernDemoConfig(patients=3, days=2)
    write_modern_cohort(tmp_path, small)
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert MODERN_DEMO_LABEL.upper() in readme and "NOT REAL PATIENTS" in readme
    for name, line, reason in planted_faults(small):
        assert f"`{name}` record {line}: {reason}" in readme
    for p in pump_patients(small).values():
        assert p.settings_text() in readme  # the truth the boluses follow, in the patient's unit


@pytest.mark.parametrize("field, value, message", [
    ("patients", 0, "patients must be a whole number from 1 to 99"), ("patients", 2.0, "patients"),
    ("days", 0, "days must be"), ("seed", -1, "seed must be"), ("start", "2024-01-08", "start must be a datetime.date"),
])
def test_bad_config_values_are_refused_with_a_message(field, value, message):
    with pytest.raises(ValueError, match=message):
        ModernDemoConfig(**{field: value})
