"""HUPA-UCM preprocessed CSV files (`time;glucose;calories;heart_rate;steps;basal_rate;
bolus_volume_delivered;carb_input`, one row per 5 minutes, one file per patient such as
HUPA0001P.csv), into the one event model (base.py).

Written from the data set's description (Hidalgo et al., "HUPA-UCM diabetes dataset", Data in Brief
2024, CC BY 4.0): FreeStyle Libre glucose in mg/dL, Fitbit calories, heart rate and steps per
5-minute slot, the pump's or pen's basal rate, the bolus insulin delivered and the carbohydrate
taken in the slot. Hand-written and vectorised (pandas string kernels), row by row with reasons:
GluPredKit and `cgm-format` have no HUPA-UCM parser. Two readings of the description this reader
takes, to check against the data paper once the files are here: `basal_rate` is in U/h (so a slot
delivers basal_rate / 12 U), and `carb_input` is in grams.

- every row is a record (its line in the file; the header is line 1): glucose -> 48 (a CGM),
  bolus_volume_delivered -> 33 at the row's time, carb_input -> a meal sized against the patient's
  earlier meals, basal_rate over the 5-minute slot -> units per clock hour (35).
- exercise from steps, the only activity the files have: a slot with at least ACTIVE_STEPS steps
  (100 steps/min, the cadence of moderate-intensity walking, about 3 METs: Tudor-Locke et al. 2018),
  or, where steps are missing, a heart rate of at least ACTIVE_HEART_RATE bpm, is active; a run of
  active slots of at least MIN_BOUT_MIN minutes is one exercise, "more" at a mean cadence of 130
  steps/min or more (vigorous) else by its length (base.exercise_code), stamped when it ends (its
  length and pace are known then, not before).
- times: `time` as written (local, no offset), ISO form.
- patients: one file per patient, numbered from the file name ("HUPA0001P.csv" -> 1).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..codes import EXERCISE_CODES, GLUCOSE_METER_MAX, GLUCOSE_METER_MIN
from .base import (BOLUS, CGM, DECIMAL, EVENT_ITEM_COLUMNS, FIRST_DAY, LAST_DAY, MEAL_BY_GRAMS, exercise_code,
                   patient_ids, reasons_of)
from .contract import RecordReader
from .records import Records

COLUMNS = ("time", "glucose", "calories", "heart_rate", "steps", "basal_rate", "bolus_volume_delivered", "carb_input")
NUMBERS = COLUMNS[1:]
SLOT = pd.Timedelta(minutes=5)
ACTIVE_STEPS = 500  # per 5-minute slot: 100 steps/min
VIGOROUS_CADENCE = 130  # steps/min
ACTIVE_HEART_RATE = 120  # bpm, used only where steps are missing
MIN_BOUT_MIN = 10
TIME_SHAPE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2})?"


class HupaUcmReader(RecordReader):
    name = "HUPA-UCM"
    looked_for = "HUPA-UCM preprocessed CSV (a header line 'time;glucose;...' separated by ';')"
    record_name = "row"
    reasons = reasons_of(
        "missing_field", "bad_date", "impossible_date", "non_numeric_value", "negative_value", "glucose_out_of_range",
        wrong_field_count="not as many ';'-separated fields as the header",
    )
    actions = {
        "glucose": "mg/dL, as the data set records it",
        "boluses": "bolus_volume_delivered once per row, at the row's time",
        "basal": "basal_rate (U/h) over each 5-minute slot, as units per clock hour",
        "exercise": f"bouts of >= {MIN_BOUT_MIN} min at >= 100 steps/min (or >= {ACTIVE_HEART_RATE} bpm without "
                    "steps), stamped when they end",
    }

    def sniff(self, name: str, head: str) -> str:
        header = [c.strip().lower() for c in head.split("\n", 1)[0].lstrip("\ufeff").split(";")]
        return "HUPA-UCM CSV header (time;glucose;...)" if {"time", "glucose"} <= set(header) else ""

    def parse(self, files: list[tuple[str, str]], log: Records) -> None:
        ids = patient_ids(name.rsplit("/", 1)[-1].rsplit(".", 1)[0] for name, _ in files)
        for name, text in files:
            patient = log.patient_of_file[name] = ids[name.rsplit("/", 1)[-1].rsplit(".", 1)[0]]
            read_file(name, text, patient, log)

    def derived_events(self, items: dict[str, pd.DataFrame]) -> list[pd.DataFrame]:
        return [exercise_bouts(items["activity"])]


def read_file(name: str, text: str, patient: int, log: Records) -> None:
    lines = text.replace("\r\n", "\n").split("\n")
    if len(lines) > 1 and lines[-1] == "":  # the piece after the final newline is no row; any other line is one
        lines.pop()
    header = [c.strip().lower() for c in lines[0].lstrip("\ufeff").split(";")]
    rows = pd.Series(lines[1:], dtype=object)
    fields = rows.str.split(";", regex=False)
    reason = np.where(fields.str.len() != len(header), "wrong_field_count", "").astype(object)
    cells = pd.DataFrame([f if len(f) == len(header) else [""] * len(header) for f in fields],
                         columns=header, dtype=object) if len(rows) else pd.DataFrame(columns=header, dtype=object)
    cells = cells.loc[:, ~cells.columns.duplicated()]

    def mark(mask, why: str) -> None:
        reason[(reason == "") & np.asarray(mask, dtype=bool)] = why

    time = cells["time"].fillna("").str.strip()
    mark(time == "", "missing_field")
    shaped = time.str.fullmatch(TIME_SHAPE).fillna(False).to_numpy(dtype=bool)
    mark(~shaped, "bad_date")
    stamp = pd.to_datetime(time.where(shaped), format="ISO8601", errors="coerce").astype("datetime64[us]")
    mark(stamp.isna() | (stamp < FIRST_DAY) | (stamp >= LAST_DAY), "impossible_date")
    values = {}
    for column in NUMBERS:
        text = cells[column].fillna("").str.strip() if column in cells else pd.Series("", index=cells.index)
        plain = text.str.fullmatch(DECIMAL.pattern[1:-1]).fillna(False).to_numpy(dtype=bool)
        mark((text != "").to_numpy() & ~plain, "non_numeric_value")
        values[column] = np.where(plain, pd.to_numeric(text.where(plain), errors="coerce"), np.nan)
        mark(values[column] < 0, "negative_value")
    glucose = values["glucose"]
    mark(~np.isnan(glucose) & ((glucose < GLUCOSE_METER_MIN) | (glucose > GLUCOSE_METER_MAX)), "glucose_out_of_range")
    first = len(log.reason)
    for line, row, why in zip(range(2, len(rows) + 2), rows, reason):
        log.add(name, line, row, why)
    ok = reason == ""
    record = np.arange(first, first + len(rows))[ok]
    at = stamp.to_numpy()[ok]
    kept = {c: v[ok] for c, v in values.items()}
    for column, code, unit in (("glucose", CGM, "mg/dL"), ("bolus_volume_delivered", BOLUS, "U"),
                               ("carb_input", MEAL_BY_GRAMS, "g")):
        given = kept[column] > 0 if column != "glucose" else ~np.isnan(kept[column])
        value = kept[column][given]
        grams = code == MEAL_BY_GRAMS  # a meal's amount is its grams; its value, as AIM94's meals, 0
        log.add_frame("events", pd.DataFrame({
            "record": record[given], "patient_id": patient, "timestamp": at[given], "utc": pd.NaT, "code": code,
            "value": 0.0 if grams else value, "carbs_g": value if grams else np.nan, "unit_in": unit,
            "record_type": column}))
    basal = kept["basal_rate"] > 0
    log.add_frame("basal", pd.DataFrame({"record": record, "patient_id": patient, "start": at,
                                         "end": at + SLOT.to_timedelta64(),
                                         "rate": kept["basal_rate"], "override": False,
                                         "record_type": "basal_rate"})[basal])
    log.add_frame("activity", pd.DataFrame({"record": record, "patient_id": patient, "timestamp": at,
                                            "steps": kept["steps"], "heart_rate": kept["heart_rate"],
                                            "calories": kept["calories"]}))


def exercise_bouts(activity: pd.DataFrame) -> pd.DataFrame:
    """Exercise events from runs of active 5-minute slots (module docstring)."""
    if not len(activity):
        return pd.DataFrame(columns=EVENT_ITEM_COLUMNS)
    slots = activity.sort_values(["patient_id", "timestamp", "record"], kind="stable").drop_duplicates(
        ["patient_id", "timestamp"])
    steps, heart = slots["steps"].to_numpy(dtype=float), slots["heart_rate"].to_numpy(dtype=float)
    active = (steps >= ACTIVE_STEPS) | (np.isnan(steps) & (heart >= ACTIVE_HEART_RATE))
    pid, stamp = slots["patient_id"].to_numpy(), slots["timestamp"].to_numpy()
    follows = np.zeros(len(slots), dtype=bool)
    follows[1:] = active[1:] & active[:-1] & (pid[1:] == pid[:-1]) & (stamp[1:] - stamp[:-1] == SLOT.to_timedelta64())
    rows = np.flatnonzero(active)
    if not len(rows):
        return pd.DataFrame(columns=EVENT_ITEM_COLUMNS)
    starts = np.flatnonzero(~follows[rows])  # where each bout's run of active slots begins
    slots_in = np.diff(np.r_[starts, len(rows)])
    counted = ~np.isnan(steps[rows])
    with_steps = np.add.reduceat(counted, starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        cadence = np.add.reduceat(np.where(counted, steps[rows], 0.0), starts) / with_steps / 5  # steps/min
    by_steps = with_steps == slots_in
    long_enough = slots_in * 5 >= MIN_BOUT_MIN
    first, last = rows[starts], rows[starts + slots_in - 1]
    code = [EXERCISE_CODES["more"] if c >= VIGOROUS_CADENCE else exercise_code(5.0 * n)[0]
            for c, n in zip(np.nan_to_num(cadence), slots_in)]
    bouts = pd.DataFrame({
        "record": slots["record"].to_numpy()[first], "patient_id": pid[first],
        "timestamp": stamp[last] + SLOT.to_timedelta64(),
        "utc": pd.NaT, "code": code, "value": 0.0, "carbs_g": np.nan,
        "unit_in": np.where(by_steps, "steps/min", "bpm"), "record_type": np.where(by_steps, "steps", "heart_rate")})
    return bouts[long_enough].reset_index(drop=True)[EVENT_ITEM_COLUMNS]
